// Scorer: dominant-resource packing. Prefers the node whose scarcest resource will be most used
// after placement: on CPU-bound hosts it packs by CPU alone instead of diluting the fit with the
// memory that is left over anyway.
import { usageScorer } from '../plugin.js';
import type { NodeUsage, Resources } from '../types.js';

export const DOMINANT = 'dominant';

/** 100 × max(CPU, memory) utilisation once the VM is added. */
export function dominantScore(d: Resources, n: NodeUsage): number {
  const cpu = n.capacity.cpus > 0 ? (n.allocated.cpus + d.cpus) / n.capacity.cpus : 1;
  const mem = n.capacity.memoryMib > 0 ? (n.allocated.memoryMib + d.memoryMib) / n.capacity.memoryMib : 1;
  return 100 * Math.max(cpu, mem);
}

export const dominantScorer = usageScorer(DOMINANT, dominantScore);
