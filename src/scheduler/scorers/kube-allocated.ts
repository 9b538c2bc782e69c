// Scorers: Kubernetes' NodeResourcesFit MostAllocated and LeastAllocated, reproduced with their
// integer arithmetic (scores 0..100, truncated), so that they serve as faithful baselines.
import { usageScorer } from '../plugin.js';
import type { NodeUsage, Resources } from '../types.js';

export const MOST_ALLOCATED = 'most-allocated';
export const LEAST_ALLOCATED = 'least-allocated';

function used(d: number, a: number, c: number, most: boolean): number {
  if (c <= 0) return 0;
  const req = a + d;
  if (req > c) return 0;
  return most ? Math.floor((req * 100) / c) : Math.floor(((c - req) * 100) / c);
}

/** floor(mean over CPU and memory of floor(requested × 100 / capacity)). */
export function mostAllocatedScore(d: Resources, n: NodeUsage): number {
  const c = n.capacity;
  const a = n.allocated;
  return Math.floor(
    (used(d.cpus, a.cpus, c.cpus, true) + used(d.memoryMib, a.memoryMib, c.memoryMib, true)) / 2,
  );
}

/** floor(mean over CPU and memory of floor((capacity − requested) × 100 / capacity)). */
export function leastAllocatedScore(d: Resources, n: NodeUsage): number {
  const c = n.capacity;
  const a = n.allocated;
  return Math.floor(
    (used(d.cpus, a.cpus, c.cpus, false) + used(d.memoryMib, a.memoryMib, c.memoryMib, false)) / 2,
  );
}

export const mostAllocatedScorer = usageScorer(MOST_ALLOCATED, mostAllocatedScore);
export const leastAllocatedScorer = usageScorer(LEAST_ALLOCATED, leastAllocatedScore);
