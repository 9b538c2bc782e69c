// Scorer: fragmentation-aware alignment, as in Tetris (Grandl et al., SIGCOMM 2014): the dot
// product of the VM's demand vector with the node's free vector, both normalised by the node's
// capacity. A node whose free space has the same shape as the demand scores high, so CPU-heavy
// VMs go where CPU is left and memory-heavy VMs where memory is left, and neither is stranded.
import { usageScorer } from '../plugin.js';
import type { NodeUsage, Resources } from '../types.js';

export const ALIGNMENT = 'alignment';

/**
 * 100 × cosine between the demand and the free capacity (both as fractions of the node), so the
 * score measures shape, not size: bin-packing decides how full, alignment decides how well.
 */
export function alignmentScore(d: Resources, n: NodeUsage): number {
  const c = n.capacity;
  const a = n.allocated;
  const dc = c.cpus > 0 ? d.cpus / c.cpus : 0;
  const dm = c.memoryMib > 0 ? d.memoryMib / c.memoryMib : 0;
  const fc = c.cpus > 0 ? (c.cpus - a.cpus) / c.cpus : 0;
  const fm = c.memoryMib > 0 ? (c.memoryMib - a.memoryMib) / c.memoryMib : 0;
  const norm = Math.sqrt(dc * dc + dm * dm) * Math.sqrt(fc * fc + fm * fm);
  return norm > 0 ? (100 * (dc * fc + dm * fm)) / norm : 0;
}

export const alignmentScorer = usageScorer(ALIGNMENT, alignmentScore);
