// Scorer: lifetime segregation. A host holding one long-lived VM stays in use however many
// short-lived VMs leave it, so short VMs (batch jobs, large same-tenant batches) and long VMs
// (services) are kept on different hosts: when the short ones end, their hosts empty.
// On the Azure V1 trace, VMs from batches of more than 10 live 0.9 h on average, singletons 4.5 h.
import type { ScorePlugin } from '../plugin.js';
import type { LifetimeClass, NodeUsage } from '../types.js';

export const LIFETIME = 'lifetime';

/**
 * 100 when the node holds only VMs of the request's class, 50 when it is empty or the request's
 * class is unknown, 0 when it holds VMs of the other class. Depends only on whether each count is
 * non-zero (the simulator's bins rely on that).
 */
export function lifetimeScore(cls: LifetimeClass | undefined, node: NodeUsage): number {
  if (cls === undefined) return 50;
  const short = (node.lifetimes?.short ?? 0) > 0;
  const long = (node.lifetimes?.long ?? 0) > 0;
  const same = cls === 'short' ? short : long;
  const other = cls === 'short' ? long : short;
  if (other) return 0;
  return same ? 100 : 50;
}

export const lifetimeScorer: ScorePlugin = {
  name: LIFETIME,
  score: (req, node) => lifetimeScore(req.lifetime, node),
  usage: (req, node) => lifetimeScore(req.lifetime, node),
};

/** VMs started together in a batch larger than this are taken as short-lived (see the figures above). */
export const SHORT_BATCH_THRESHOLD = 10;

/** The lifetime class a caller may assume from the size of the batch a VM was started in. */
export function lifetimeFromBatchSize(size: number, threshold = SHORT_BATCH_THRESHOLD): LifetimeClass {
  return size > threshold ? 'short' : 'long';
}
