// Filters for VM groups: hard anti-affinity (one VM of the group per node) and even spread with a
// maximum skew (Kubernetes topology spread, the node being the topology domain).
import type { FilterPlugin } from '../plugin.js';

export const ANTI_AFFINITY = 'anti-affinity';
export const SPREAD = 'spread';

/** Rejects nodes that already hold a VM of the request's anti-affinity group. */
export const antiAffinityFilter: FilterPlugin = {
  name: ANTI_AFFINITY,
  filter: (req, node) => {
    const g = req.antiAffinityGroup;
    if (g === undefined) return undefined;
    const n = node.groups[g] ?? 0;
    return n > 0 ? `anti-affinity: ${n} VM(s) of group ${g} already here` : undefined;
  },
};

/**
 * Rejects nodes where one more VM of the spread group would put them more than `maxSkew` above
 * the least-loaded ready node.
 */
export const spreadFilter: FilterPlugin = {
  name: SPREAD,
  filter: (req, node, ctx) => {
    const s = req.spread;
    if (s === undefined) return undefined;
    const here = node.groups[s.group] ?? 0;
    const min = ctx.groupMin(s.group);
    return here + 1 - min > s.maxSkew
      ? `spread: group ${s.group} would have ${here + 1} here vs ${min} on the emptiest node (max skew ${s.maxSkew})`
      : undefined;
  },
};
