// Scorer: balanced allocation (Kubernetes' NodeResourcesBalancedAllocation): prefers nodes whose
// CPU and memory utilisation stay close to each other after placement, so that neither resource
// runs out while the other is left idle.
import { usageScorer } from '../plugin.js';
import type { NodeUsage, Resources } from '../types.js';

export const BALANCED_ALLOCATION = 'balanced-allocation';

/** 100 × (1 − standard deviation of the CPU and memory utilisation fractions after placement). */
export function balancedAllocationScore(d: Resources, n: NodeUsage): number {
  const cpu = n.capacity.cpus > 0 ? (n.allocated.cpus + d.cpus) / n.capacity.cpus : 1;
  const mem = n.capacity.memoryMib > 0 ? (n.allocated.memoryMib + d.memoryMib) / n.capacity.memoryMib : 1;
  return 100 * (1 - Math.abs(cpu - mem) / 2);
}

export const balancedAllocationScorer = usageScorer(BALANCED_ALLOCATION, balancedAllocationScore);
