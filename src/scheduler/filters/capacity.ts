// Filter: the node has enough free CPU, memory and disk for the VM.
import type { FilterPlugin } from '../plugin.js';
import type { NodeUsage, Resources } from '../types.js';

export const CAPACITY = 'capacity';

/** The first resource that does not fit, as a reason, or undefined when all fit. */
export function capacityMisfit(demand: Resources, node: NodeUsage): string | undefined {
  const { capacity: c, allocated: a } = node;
  if (a.cpus + demand.cpus > c.cpus)
    return `insufficient cpu: ${fmt(c.cpus - a.cpus)} free, ${fmt(demand.cpus)} requested`;
  if (a.memoryMib + demand.memoryMib > c.memoryMib)
    return `insufficient memory: ${fmt(c.memoryMib - a.memoryMib)} MiB free, ${fmt(demand.memoryMib)} MiB requested`;
  if (a.diskGib + demand.diskGib > c.diskGib)
    return `insufficient disk: ${fmt(c.diskGib - a.diskGib)} GiB free, ${fmt(demand.diskGib)} GiB requested`;
  return undefined;
}

// Plain concatenation: this runs for every rejected node of every decision.
function fmt(n: number): string {
  return Number.isInteger(n) ? '' + n : '' + Math.round(n * 100) / 100;
}

/** Rejects nodes without room for the VM's CPU, memory and disk. */
export const capacityFilter: FilterPlugin = {
  name: CAPACITY,
  filter: (req, node) => capacityMisfit(req.resources, node),
};
