// The classic one-step throughput estimators: last value, harmonic mean of the last 5, EWMA, moving average.

/** A one-step-ahead predictor: from the samples seen so far (oldest first), the next sample. */
export type OneStepPredictor = (history: readonly number[]) => number;

/** The last sample (0 with no history). */
export function lastValue(history: readonly number[]): number {
  return history.length === 0 ? 0 : history[history.length - 1]!;
}

/**
 * Harmonic mean of the last `n` samples (the Pensieve/MPC estimator). A zero sample makes the
 * harmonic mean 0, which is what the estimator means: a stalled link dominates.
 */
export function harmonicMean(history: readonly number[], n = 5): number {
  const from = Math.max(0, history.length - n);
  let inv = 0;
  let k = 0;
  for (let i = from; i < history.length; i++) {
    const v = history[i]!;
    if (v <= 0) return 0;
    inv += 1 / v;
    k++;
  }
  return k === 0 ? 0 : k / inv;
}

/** Exponentially weighted moving average over the history, seeded with its first sample. */
export function ewma(history: readonly number[], alpha = 0.3): number {
  if (history.length === 0) return 0;
  let e = history[0]!;
  for (let i = 1; i < history.length; i++) e = alpha * history[i]! + (1 - alpha) * e;
  return e;
}

/** Arithmetic mean of the last `n` samples: the seed's heuristic fallback. */
export function movingAverage(history: readonly number[], n = 10): number {
  const from = Math.max(0, history.length - n);
  let s = 0;
  for (let i = from; i < history.length; i++) s += history[i]!;
  return history.length === from ? 0 : s / (history.length - from);
}

export const BASELINES = {
  last: lastValue,
  harmonic: (h: readonly number[]) => harmonicMean(h, 5),
  ewma: (h: readonly number[]) => ewma(h, 0.3),
} as const satisfies Record<string, OneStepPredictor>;
export type BaselineName = keyof typeof BASELINES;
