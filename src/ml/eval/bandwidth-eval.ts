// Bandwidth evaluation and training over trace data sets: per-profile models, cross-validation by series, report rows.
import { ValidationError } from '../../errors.js';
import { evaluateSliding, type ErrorMetrics } from './metrics.js';
import type { TraceDataset, ThroughputSeries } from './traces.js';
import { BASELINES } from '../models/baselines.js';
import { predictNext, trainBandwidthModel, type TrainOptions } from '../models/bandwidth-model.js';
import type { BandwidthProfiles } from '../models/model-file.js';
import type { BandwidthModelParams } from '../models/bandwidth-model.js';

/** Name of the profile trained on every data set together, used for links of no known family. */
export const GENERIC_PROFILE = 'generic';

/** The options the shipped model was trained with (chosen by 5-fold cross-validation by series). */
export const DEFAULT_TRAIN_OPTIONS: TrainOptions = { bins: 3, margin: 0 };

/** One data set's figures: exactly the shape `novacron ml eval bandwidth --json` prints per entry. */
export interface DatasetReport {
  readonly name: string;
  readonly series: number;
  readonly model: ErrorMetrics;
  readonly baselines: {
    readonly last: ErrorMetrics;
    readonly harmonic: ErrorMetrics;
    readonly ewma: ErrorMetrics;
  };
}

/** Extra figures for tables (not in the JSON contract): predictions made and errors normalised by series mean. */
export interface DatasetExtras {
  readonly predictions: number;
  readonly profile: string;
  readonly normalizedMae: {
    readonly model: number;
    readonly last: number;
    readonly harmonic: number;
    readonly ewma: number;
  };
}

const samplesOf = (s: readonly ThroughputSeries[]) => s.map((x) => x.samples);

/** Trains one profile per data set (on that data set alone) plus the generic profile on all of them. */
export function trainBandwidthProfiles(
  datasets: readonly TraceDataset[],
  opts: TrainOptions = DEFAULT_TRAIN_OPTIONS,
): BandwidthProfiles {
  const profiles: Record<string, BandwidthModelParams> = {};
  for (const d of datasets) profiles[d.name] = trainBandwidthModel([samplesOf(d.series)], opts);
  profiles[GENERIC_PROFILE] =
    datasets.length === 1
      ? profiles[datasets[0]!.name]!
      : trainBandwidthModel(
          datasets.map((d) => samplesOf(d.series)),
          opts,
        );
  return { defaultProfile: GENERIC_PROFILE, profiles };
}

/** The profile a data set is evaluated with: an explicit choice, its own name when the model has it, else the default. */
export function profileFor(model: BandwidthProfiles, datasetName: string, explicit?: string): string {
  if (explicit !== undefined && explicit in model.profiles) return explicit;
  if (datasetName in model.profiles) return datasetName;
  return model.defaultProfile;
}

function report(
  name: string,
  seriesCount: number,
  profile: string,
  accs: ReturnType<typeof evaluateSliding<'model' | 'last' | 'harmonic' | 'ewma'>>[],
): { report: DatasetReport; extras: DatasetExtras } {
  // Pool the folds: merge accumulators by re-weighting their metrics by their counts.
  const keys = ['model', 'last', 'harmonic', 'ewma'] as const;
  const pooled = {} as Record<(typeof keys)[number], { m: ErrorMetrics; nmae: number }>;
  let predictions = 0;
  for (const k of keys) {
    let n = 0;
    let mae = 0;
    let mse = 0;
    let mape = 0;
    let over = 0;
    let nmae = 0;
    for (const a of accs) {
      const acc = a[k];
      const m = acc.metrics();
      n += acc.n;
      mae += m.mae * acc.n;
      mse += m.rmse * m.rmse * acc.n;
      mape += m.mape * acc.n;
      over += m.overRate * acc.n;
      nmae += acc.normalizedMae() * acc.n;
    }
    const d = Math.max(1, n);
    pooled[k] = {
      m: { mae: mae / d, rmse: Math.sqrt(mse / d), mape: mape / d, overRate: over / d },
      nmae: nmae / d,
    };
    predictions = n;
  }
  return {
    report: {
      name,
      series: seriesCount,
      model: pooled.model.m,
      baselines: { last: pooled.last.m, harmonic: pooled.harmonic.m, ewma: pooled.ewma.m },
    },
    extras: {
      predictions,
      profile,
      normalizedMae: {
        model: pooled.model.nmae,
        last: pooled.last.nmae,
        harmonic: pooled.harmonic.nmae,
        ewma: pooled.ewma.nmae,
      },
    },
  };
}

/**
 * Evaluates a trained model on a data set: sliding window of 20, first prediction at index 5,
 * model and baselines on the very same predictions. MAPE is pooled per prediction with truth > 0.
 */
export function evaluateBandwidthModel(
  dataset: TraceDataset,
  model: BandwidthProfiles,
  explicitProfile?: string,
): { report: DatasetReport; extras: DatasetExtras } {
  const profile = profileFor(model, dataset.name, explicitProfile);
  const params = model.profiles[profile]!;
  const acc = evaluateSliding(dataset.series, {
    model: (h) => predictNext(params, h).predicted,
    ...BASELINES,
  });
  return report(dataset.name, dataset.series.length, profile, [acc]);
}

/**
 * K-fold cross-validation by series: series i is in fold i mod K; each fold is predicted by a model
 * trained on the other folds of the same data set only. No series is ever both trained and tested on.
 */
export function crossValidateBandwidth(
  dataset: TraceDataset,
  folds = 5,
  opts: TrainOptions = DEFAULT_TRAIN_OPTIONS,
): { report: DatasetReport; extras: DatasetExtras } {
  const accs = [];
  for (let k = 0; k < folds; k++) {
    const test = dataset.series.filter((_, i) => i % folds === k);
    const train = dataset.series.filter((_, i) => i % folds !== k);
    if (test.length === 0) continue;
    const params = trainBandwidthModel([samplesOf(train)], opts);
    accs.push(evaluateSliding(test, { model: (h) => predictNext(params, h).predicted, ...BASELINES }));
  }
  return report(dataset.name, dataset.series.length, `cv${folds}:${dataset.name}`, accs);
}

/** One test series' totals under cross-validation: predictions, and |error| summed per predictor. */
export interface SeriesErrors {
  readonly n: number;
  readonly absModel: number;
  readonly absBest: number;
}

/**
 * Per-series absolute errors of the model and of one baseline under K-fold cross-validation by
 * series (the same folds and predictions as crossValidateBandwidth), for a bootstrap over series.
 */
export function crossValidatedSeriesErrors(
  dataset: TraceDataset,
  baseline: 'last' | 'harmonic' | 'ewma',
  folds = 5,
  opts: TrainOptions = DEFAULT_TRAIN_OPTIONS,
): SeriesErrors[] {
  const out: SeriesErrors[] = [];
  for (let k = 0; k < folds; k++) {
    const test = dataset.series.filter((_, i) => i % folds === k);
    const train = dataset.series.filter((_, i) => i % folds !== k);
    if (test.length === 0) continue;
    const params = trainBandwidthModel([samplesOf(train)], opts);
    for (const s of test) {
      const acc = evaluateSliding([s], {
        model: (h) => predictNext(params, h).predicted,
        best: BASELINES[baseline],
      });
      if (acc.model.n === 0) continue;
      out.push({
        n: acc.model.n,
        absModel: acc.model.metrics().mae * acc.model.n,
        absBest: acc.best.metrics().mae * acc.best.n,
      });
    }
  }
  return out;
}

/**
 * Percentile bootstrap over series of the pooled MAE ratio model ÷ baseline: resample whole series
 * with replacement (errors within a series are correlated, so samples are not independent),
 * `resamples` times with a fixed seed. Returns the ratio on all series and the 2.5 % / 97.5 %
 * quantiles, and the share of resamples in which the model is not better (ratio ≥ 1).
 */
export function bootstrapMaeRatio(
  series: readonly SeriesErrors[],
  resamples = 2000,
  seed = 1,
): { ratio: number; lo: number; hi: number; notBetter: number } {
  if (series.length === 0) throw new ValidationError('bootstrap needs at least one series');
  let state = seed >>> 0 || 1;
  const rand = () => {
    // xorshift32: deterministic, good enough to pick indices.
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
  const ratioOf = (pick: (i: number) => SeriesErrors) => {
    let m = 0;
    let b = 0;
    for (let i = 0; i < series.length; i++) {
      const s = pick(i);
      m += s.absModel;
      b += s.absBest;
    }
    return b === 0 ? (m === 0 ? 1 : Infinity) : m / b;
  };
  const ratio = ratioOf((i) => series[i]!);
  const rs: number[] = [];
  let notBetter = 0;
  for (let r = 0; r < resamples; r++) {
    const x = ratioOf(() => series[Math.floor(rand() * series.length)]!);
    rs.push(x);
    if (x >= 1) notBetter++;
  }
  rs.sort((a, b) => a - b);
  const q = (p: number) => rs[Math.min(rs.length - 1, Math.floor(p * rs.length))]!;
  return { ratio, lo: q(0.025), hi: q(0.975), notBetter: notBetter / resamples };
}
