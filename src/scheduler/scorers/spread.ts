// Scorer: spreading. Prefers the node that will be emptiest (mean free fraction of CPU and
// memory after placement), to keep headroom everywhere.
import { usageScorer } from '../plugin.js';
import type { NodeUsage, Resources } from '../types.js';

export const SPREAD_SCORE = 'spread';

/** 100 × mean(CPU, memory) free fraction once the VM is added. */
export function spreadScore(d: Resources, n: NodeUsage): number {
  const cpu = n.capacity.cpus > 0 ? (n.allocated.cpus + d.cpus) / n.capacity.cpus : 1;
  const mem = n.capacity.memoryMib > 0 ? (n.allocated.memoryMib + d.memoryMib) / n.capacity.memoryMib : 1;
  return 100 - 50 * (cpu + mem);
}

export const spreadScorer = usageScorer(SPREAD_SCORE, spreadScore);
