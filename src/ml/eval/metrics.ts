// Error metrics of one-step throughput predictions, and the sliding-window evaluation over series.
import type { ThroughputSeries } from './traces.js';
import type { OneStepPredictor } from '../models/baselines.js';

/** The figures reported for one predictor on one data set (errors in the trace unit, Mbit/s). */
export interface ErrorMetrics {
  readonly mae: number;
  readonly rmse: number;
  /** Mean absolute percentage error over samples whose true value is > 0, in percent. */
  readonly mape: number;
  /** Fraction of predictions strictly above the truth. */
  readonly overRate: number;
}

/** Running sums for ErrorMetrics; pooled over every prediction of a data set (micro average). */
export class ErrorAccumulator {
  n = 0;
  private absSum = 0;
  private sqSum = 0;
  private pctSum = 0;
  private pctN = 0;
  private over = 0;
  /** Sum of |error| / mean(series), for the scale-free MAE of wide-range traces. */
  private normSum = 0;

  add(predicted: number, actual: number, seriesMean = 0): void {
    const e = predicted - actual;
    this.n++;
    this.absSum += Math.abs(e);
    this.sqSum += e * e;
    if (actual > 0) {
      this.pctSum += Math.abs(e) / actual;
      this.pctN++;
    }
    if (predicted > actual) this.over++;
    if (seriesMean > 0) this.normSum += Math.abs(e) / seriesMean;
  }

  metrics(): ErrorMetrics {
    const n = Math.max(1, this.n);
    return {
      mae: this.absSum / n,
      rmse: Math.sqrt(this.sqSum / n),
      mape: this.pctN === 0 ? 0 : (100 * this.pctSum) / this.pctN,
      overRate: this.over / n,
    };
  }

  /** MAE divided by the mean of the series each error came from (averaged over predictions). */
  normalizedMae(): number {
    return this.normSum / Math.max(1, this.n);
  }
}

export interface SlidingWindowOptions {
  /** History the predictor sees: the last `window` samples. */
  readonly window: number;
  /** First predicted index of each series (every predictor then has this many samples). */
  readonly minHistory: number;
}

export const DEFAULT_SLIDING: SlidingWindowOptions = { window: 20, minHistory: 5 };

/**
 * Slides over every series: for each index i >= minHistory, each predictor sees samples
 * [i-window, i) and predicts sample i. Never looks ahead. Returns one accumulator per predictor.
 */
export function evaluateSliding<K extends string>(
  series: readonly ThroughputSeries[],
  predictors: Readonly<Record<K, OneStepPredictor>>,
  opts: SlidingWindowOptions = DEFAULT_SLIDING,
): Record<K, ErrorAccumulator> {
  const keys = Object.keys(predictors) as K[];
  const acc = {} as Record<K, ErrorAccumulator>;
  for (const k of keys) acc[k] = new ErrorAccumulator();
  for (const s of series) {
    const x = s.samples;
    if (x.length <= opts.minHistory) continue;
    let sum = 0;
    for (const v of x) sum += v;
    const mean = sum / x.length;
    for (let i = opts.minHistory; i < x.length; i++) {
      const hist = x.slice(Math.max(0, i - opts.window), i);
      const actual = x[i]!;
      for (const k of keys) acc[k].add(predictors[k](hist), actual, mean);
    }
  }
  return acc;
}
