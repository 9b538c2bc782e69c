// Scorer: anchoring. VM lifetimes are heavy-tailed: a VM that has been up for an hour will
// most likely run for hours more, so its host stays in use anyway. New VMs are steered to such
// anchored hosts, where they cost nothing extra, rather than to hosts of young VMs that might
// otherwise empty soon and be released.
import type { ScorePlugin } from '../plugin.js';
import type { NodeUsage } from '../types.js';

export const ANCHOR = 'anchor';

/**
 * Uptime after which a VM anchors its host, in seconds. Snapshot builders count the VMs running
 * at least this long into `NodeSnapshot.longRunning`; the simulator does the same from the trace.
 */
export const ANCHOR_AGE_SECONDS = 3600;

/** 100 when the node runs at least one long-running VM, else 0 (empty nodes included). */
export function anchorScore(node: NodeUsage): number {
  return (node.longRunning ?? 0) > 0 ? 100 : 0;
}

export const anchorScorer: ScorePlugin = {
  name: ANCHOR,
  score: (_req, node) => anchorScore(node),
  usage: (_req, node) => anchorScore(node),
};
