// Scorer: bin-packing. Prefers the node that will be fullest (mean of CPU and memory
// utilisation after placement), which is best-fit by the L1 norm of the normalised residual.
import { usageScorer } from '../plugin.js';
import type { NodeUsage, Resources } from '../types.js';

export const BINPACK = 'binpack';

/** 100 × mean(CPU, memory) utilisation once the VM is added. */
export function binpackScore(d: Resources, n: NodeUsage): number {
  const cpu = n.capacity.cpus > 0 ? (n.allocated.cpus + d.cpus) / n.capacity.cpus : 1;
  const mem = n.capacity.memoryMib > 0 ? (n.allocated.memoryMib + d.memoryMib) / n.capacity.memoryMib : 1;
  return 50 * (cpu + mem);
}

export const binpackScorer = usageScorer(BINPACK, binpackScore);
