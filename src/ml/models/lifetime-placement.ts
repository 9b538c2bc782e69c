// Lifetime-aware node scoring: prefer hosts whose residents end about when the new VM will, so hosts empty together.
import {
  bestFitScore,
  fits,
  type NodeScoreAnswer,
  type PlacementNeed,
  type PlacementNode,
} from '../fallback.js';

/** Weight of lifetime alignment against best fit in the combined score. */
export const ALIGN_WEIGHT = 0.6;
/** Alignment of an empty host: the VM alone would keep a whole host on for its lifetime. */
export const EMPTY_HOST_ALIGNMENT = 0.5 * Math.exp(-1);

/**
 * How well a VM ending at now + lifetimeS lines up with the node's residents, in [0, 1]:
 * - the node stays busy past the VM's end anyway (it frees at `release` >= end): 0.5..1, best when
 *   the VM ends just before the node frees (it does not extend the host's life at all);
 * - the VM would outlive every resident: 0.5 * exp(-extension / lifetime), falling with the extra
 *   host time it causes;
 * - an empty node: 0.5 * exp(-1), the limit of the case above when the whole lifetime is extra host time;
 * - residents of unknown end: 0.5 (neutral).
 */
export function lifetimeAlignment(node: PlacementNode, nowS: number, lifetimeS: number): number {
  const ends = node.residentEndTimesS;
  if (ends === undefined) return 0.5;
  // The latest live end (residents still running at nowS), in one pass without a copy.
  let release = -Infinity;
  for (let i = 0; i < ends.length; i++) {
    const e = ends[i]!;
    if (e > nowS && e < Infinity && e > release) release = e;
  }
  if (release === -Infinity) return ends.length === 0 ? EMPTY_HOST_ALIGNMENT : 0.5;
  const life = Math.max(lifetimeS, 1);
  const end = nowS + life;
  if (end <= release) return 1 - (0.5 * (release - end)) / Math.max(release - nowS, 1);
  return 0.5 * Math.exp(-(end - release) / life);
}

/** Scores every node that fits, best first: ALIGN_WEIGHT * alignment + (1 - ALIGN_WEIGHT) * best fit. */
export function scoreNodesByLifetime(
  nodes: readonly PlacementNode[],
  need: PlacementNeed,
  nowS: number,
  lifetimeS: number,
): NodeScoreAnswer[] {
  const out: NodeScoreAnswer[] = [];
  for (const n of nodes) {
    if (!fits(n, need)) continue;
    const align = lifetimeAlignment(n, nowS, lifetimeS);
    const bf = bestFitScore(n, need);
    out.push({
      nodeId: n.nodeId,
      score: ALIGN_WEIGHT * align + (1 - ALIGN_WEIGHT) * bf,
      reason: `lifetime alignment ${align.toFixed(2)}, best fit ${bf.toFixed(2)}`,
    });
  }
  return out.sort((a, b) => b.score - a.score);
}
