// Scorer: the ML hint. Reads the score a hint provider gave this node for this request (see
// ../hint.ts); nodes without a hint, or every node when no provider answered, score 0, which
// leaves the ranking to the local scorers.
import type { ScorePlugin } from '../plugin.js';

export const ML_HINT = 'ml-hint';

/** Clamps a provider's score into [0, 100]; anything not finite counts as no hint. */
export function clampHint(v: number | undefined): number {
  if (v === undefined || !Number.isFinite(v)) return 0;
  return Math.min(100, Math.max(0, v));
}

export const mlHintScorer: ScorePlugin = {
  name: ML_HINT,
  score: (_req, node, ctx) => clampHint(ctx.hints?.get(node.id)),
};
