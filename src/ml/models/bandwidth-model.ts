// PBA bandwidth model: regime-binned linear quantile regression on scale-free lag features, with a tie snap.
//
// Pure: no I/O. `trainBandwidthModel` fits parameters from series; `predictNext` answers one window.
// Why this shape (see docs/ml.md for figures): throughput is close to a random walk, so the last
// value is hard to beat in MAE, and over-estimation hurts callers more than under-estimation. The
// model therefore predicts a conditional *quantile* slightly below the median, with the quantile
// level chosen per volatility regime as the over-estimation rate the harmonic mean has in that
// regime on the training data ("as cautious as the harmonic mean, regime by regime"). Features are
// divided by the mean of the last 5 samples, so one model serves any unit and link speed.
import { ewma, harmonicMean } from './baselines.js';
import { ValidationError } from '../../errors.js';

export const BANDWIDTH_MODEL_KIND = 'bandwidth-quantile-linear';
export const BANDWIDTH_FEATURES = [
  'bias',
  'last',
  'lag2',
  'lag3',
  'lag4',
  'harmonic5',
  'ewma0.3',
  'ewma0.7',
  'median5',
  'min5',
  'max5',
  'mean10',
  'mean20',
  'cv5',
  'trend3',
] as const;

/** One volatility regime: windows whose cv10 is below `maxCv` (and above the previous bin's). */
export interface RegimeBin {
  readonly maxCv: number;
  /** Quantile level the `point` weights were fitted for (the harmonic mean's over-rate here). */
  readonly tau: number;
  readonly point: readonly number[];
  readonly lower: readonly number[];
  readonly upper: readonly number[];
  /** Relative dead band: a prediction within snap * scale of the last value is the last value. */
  readonly snap: number;
}

export interface BandwidthModelParams {
  readonly kind: typeof BANDWIDTH_MODEL_KIND;
  readonly features: readonly string[];
  readonly bins: readonly RegimeBin[];
  /** Quantile levels of the interval bounds. */
  readonly interval: readonly [number, number];
}

export interface BandwidthPrediction {
  readonly predicted: number;
  readonly lower: number;
  readonly upper: number;
  /** 1 minus the relative width of the interval, clamped to [0, 1]. */
  readonly confidence: number;
}

/** Scale and regime of a window plus its features; `scale` 0 means the link looks idle. */
export interface WindowFeatures {
  readonly scale: number;
  readonly cv10: number;
  readonly f: readonly number[];
}

const mean = (xs: readonly number[]): number =>
  xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;

/** Features of the last `20` samples of `history` (shorter histories are padded with their first sample). */
export function windowFeatures(history: readonly number[]): WindowFeatures {
  const h0 = history.length > 20 ? history.slice(-20) : history;
  if (h0.length === 0) return { scale: 0, cv10: 0, f: [] };
  const h = h0.length >= 5 ? h0 : [...new Array<number>(5 - h0.length).fill(h0[0]!), ...h0];
  const n = h.length;
  const last5 = h.slice(-5);
  const s = mean(last5);
  if (!(s > 0) || !Number.isFinite(s)) return { scale: 0, cv10: 0, f: [] };
  const last10 = h.slice(-10);
  const m10 = mean(last10);
  let v10 = 0;
  for (const v of last10) v10 += (v - m10) ** 2;
  const cv10 = m10 > 0 ? Math.sqrt(v10 / last10.length) / m10 : 0;
  let v5 = 0;
  for (const v of last5) v5 += (v - s) ** 2;
  const sorted = [...last5].sort((a, b) => a - b);
  const last = h[n - 1]!;
  const f = [
    1,
    last / s,
    h[n - 2]! / s,
    h[n - 3]! / s,
    h[n - 4]! / s,
    harmonicMean(h, 5) / s,
    ewma(h, 0.3) / s,
    ewma(h, 0.7) / s,
    sorted[2]! / s,
    sorted[0]! / s,
    sorted[4]! / s,
    m10 / s,
    mean(h) / s,
    Math.sqrt(v5 / 5) / s,
    (last - h[n - 3]!) / s,
  ];
  return { scale: s, cv10, f };
}

const dot = (w: readonly number[], f: readonly number[]): number => {
  let p = 0;
  for (let j = 0; j < f.length; j++) p += (w[j] ?? 0) * f[j]!;
  return p;
};

function binOf(params: BandwidthModelParams, cv: number): RegimeBin {
  for (const b of params.bins) if (cv <= b.maxCv) return b;
  return params.bins[params.bins.length - 1]!;
}

/** Predicts the next sample of `history` (oldest first) in the unit of the history. */
export function predictNext(params: BandwidthModelParams, history: readonly number[]): BandwidthPrediction {
  const wf = windowFeatures(history);
  if (wf.scale === 0) return { predicted: 0, lower: 0, upper: 0, confidence: history.length === 0 ? 0 : 0.5 };
  const b = binOf(params, wf.cv10);
  const last = history[history.length - 1]!;
  let p = Math.max(0, dot(b.point, wf.f) * wf.scale);
  if (Math.abs(p - last) <= b.snap * wf.scale) p = last;
  const lo = Math.max(0, Math.min(p, dot(b.lower, wf.f) * wf.scale));
  const hi = Math.max(p, dot(b.upper, wf.f) * wf.scale);
  const confidence = p > 0 ? Math.min(1, Math.max(0, 1 - (hi - lo) / (2 * p))) : 0;
  return { predicted: p, lower: lo, upper: hi, confidence };
}

/** Checks a parsed JSON value is usable model parameters (a model file's `params`). */
export function validateBandwidthParams(v: unknown): BandwidthModelParams {
  const p = v as Partial<BandwidthModelParams> | null;
  const nf = BANDWIDTH_FEATURES.length;
  const okVec = (w: unknown) => Array.isArray(w) && w.length === nf && w.every((x) => Number.isFinite(x));
  if (
    !p ||
    p.kind !== BANDWIDTH_MODEL_KIND ||
    !Array.isArray(p.bins) ||
    p.bins.length === 0 ||
    !p.bins.every(
      (b) =>
        okVec(b.point) &&
        okVec(b.lower) &&
        okVec(b.upper) &&
        Number.isFinite(b.snap) &&
        Number.isFinite(b.maxCv),
    ) ||
    !Array.isArray(p.interval)
  ) {
    throw new ValidationError(`not ${BANDWIDTH_MODEL_KIND} parameters with ${nf} features per bin`);
  }
  return p as BandwidthModelParams;
}

// ---- training ----

/** One training row: features, target divided by the scale, and its weight. */
export interface TrainingRow {
  readonly f: readonly number[];
  readonly y: number;
  readonly w: number;
  readonly cv: number;
  /** Whether the harmonic mean of the last 5 over-estimated this sample. */
  readonly harmonicOver: boolean;
  readonly last: number;
}

/**
 * Rows of one data set from its series (window 20, first target at index 5). Weights make each
 * data set count the same, and within it weight a row by its scale, so that the fitted loss is the
 * absolute (not relative) error the evaluation reports.
 */
export function trainingRows(series: readonly (readonly number[])[]): TrainingRow[] {
  const out: {
    f: readonly number[];
    y: number;
    w: number;
    cv: number;
    harmonicOver: boolean;
    last: number;
  }[] = [];
  let tot = 0;
  for (const x of series) {
    for (let i = 5; i < x.length; i++) {
      const hist = x.slice(Math.max(0, i - 20), i);
      const wf = windowFeatures(hist);
      if (wf.scale === 0) continue;
      const y = x[i]!;
      out.push({
        f: wf.f,
        y: y / wf.scale,
        w: wf.scale,
        cv: wf.cv10,
        harmonicOver: harmonicMean(hist, 5) > y,
        last: hist[hist.length - 1]! / wf.scale,
      });
      tot += wf.scale;
    }
  }
  const norm = out.length / Math.max(tot, 1e-12);
  for (const r of out) r.w = (r.w * norm) / Math.max(1, out.length);
  return out;
}

/** Solves the symmetric system A x = b (Gaussian elimination with partial pivoting and a ridge). */
function solve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]!]);
  for (let i = 0; i < n; i++) m[i]![i]! += 1e-9;
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[piv]![c]!)) piv = r;
    [m[c], m[piv]] = [m[piv]!, m[c]!];
    const d = m[c]![c]!;
    if (Math.abs(d) < 1e-15) continue;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const k = m[r]![c]! / d;
      if (k === 0) continue;
      for (let j = c; j <= n; j++) m[r]![j]! -= k * m[c]![j]!;
    }
  }
  return m.map((row, i) => (Math.abs(row[i]!) < 1e-15 ? 0 : row[n]! / row[i]!));
}

/** Weighted linear quantile regression by iteratively reweighted least squares. */
export function fitQuantile(rows: readonly TrainingRow[], tau: number, iterations = 40): number[] {
  const d = BANDWIDTH_FEATURES.length;
  let beta = new Array<number>(d).fill(0);
  beta[1] = 1; // start at "last value"
  for (let it = 0; it < iterations; it++) {
    const A = Array.from({ length: d }, () => new Array<number>(d).fill(0));
    const B = new Array<number>(d).fill(0);
    for (const r of rows) {
      const res = r.y - dot(beta, r.f);
      const c = (res >= 0 ? tau : 1 - tau) / Math.max(Math.abs(res), 1e-4);
      const wt = r.w * c;
      for (let i = 0; i < d; i++) {
        const fi = r.f[i]! * wt;
        B[i]! += fi * r.y;
        const Ai = A[i]!;
        for (let j = i; j < d; j++) Ai[j]! += fi * r.f[j]!;
      }
    }
    for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) A[i]![j] = A[j]![i]!;
    const next = solve(A, B);
    const delta = next.reduce((s, v, i) => s + Math.abs(v - beta[i]!), 0);
    beta = next;
    if (delta < 1e-7) break;
  }
  return beta;
}

export interface TrainOptions {
  /** Number of volatility bins (edges at training quantiles of cv10). */
  readonly bins?: number;
  /** Subtracted from each bin's harmonic over-rate to get its quantile level. */
  readonly margin?: number;
  /**
   * Calibration rounds: after a bin is fitted, its over-estimation rate on the training rows
   * (after the snap) is compared with the target (the harmonic mean's rate there minus `margin`
   * and CALIBRATION_SAFETY) and the quantile level moved by the difference, refitting, while the
   * rate stays at or under that target. 0 (the default) fits once at the target as the quantile level.
   */
  readonly calibrate?: number;
}

/**
 * Fits the model on data sets (each a list of series). Each data set gets equal total weight so a
 * large trace family does not drown a small one.
 */
export function trainBandwidthModel(
  datasets: readonly (readonly (readonly number[])[])[],
  opts: TrainOptions = {},
): BandwidthModelParams {
  const nb = opts.bins ?? 5;
  const margin = opts.margin ?? 0.015;
  const rows: TrainingRow[] = [];
  const used = datasets.filter((d) => d.length > 0);
  for (const ds of used) {
    for (const r of trainingRows(ds)) rows.push({ ...r, w: r.w / used.length });
  }
  if (rows.length < 50)
    throw new ValidationError(`too few training samples (${rows.length}); need at least 50`);
  const cvs = rows.map((r) => r.cv).sort((a, b) => a - b);
  const edges: number[] = [];
  for (let k = 1; k < nb; k++) edges.push(cvs[Math.floor((k * cvs.length) / nb)]!);
  edges.push(Number.POSITIVE_INFINITY);
  const bins: RegimeBin[] = [];
  let lo = Number.NEGATIVE_INFINITY;
  for (const hi of edges) {
    const inBin = rows.filter((r) => r.cv > lo && r.cv <= hi);
    const part = inBin.length >= 50 ? inBin : rows;
    let wOver = 0;
    let wAll = 0;
    for (const r of part) {
      wAll += 1;
      if (r.harmonicOver) wOver += 1;
    }
    const target = wOver / wAll - margin;
    let tau = Math.min(0.5, Math.max(0.05, target));
    let point = fitQuantile(part, tau);
    let snap = chooseSnap(part, point);
    // Calibration aims half a point under the target: the training rate is in-sample.
    const calTarget = target - CALIBRATION_SAFETY;
    for (let round = 0; round < (opts.calibrate ?? 0); round++) {
      const gap = calTarget - overRate(part, point, snap);
      if (gap <= 0.001) break;
      const t2 = Math.min(0.5, tau + gap);
      if (t2 <= tau) break;
      const p2 = fitQuantile(part, t2);
      const s2 = chooseSnap(part, p2);
      if (overRate(part, p2, s2) > calTarget) break;
      tau = t2;
      point = p2;
      snap = s2;
    }
    bins.push({
      maxCv: hi === Number.POSITIVE_INFINITY ? 1e9 : hi,
      tau,
      point,
      lower: fitQuantile(part, 0.1, 25),
      upper: fitQuantile(part, 0.9, 25),
      snap,
    });
    lo = hi;
  }
  return { kind: BANDWIDTH_MODEL_KIND, features: [...BANDWIDTH_FEATURES], bins, interval: [0.1, 0.9] };
}

/** How far under its target over-estimation rate calibration keeps a bin on the training rows. */
export const CALIBRATION_SAFETY = 0.005;

/** Share of rows the point prediction (after the snap) over-estimates, unweighted as the evaluation counts it. */
function overRate(rows: readonly TrainingRow[], point: readonly number[], snap: number): number {
  let over = 0;
  for (const r of rows) {
    let p = Math.max(0, dot(point, r.f));
    if (Math.abs(p - r.last) <= snap) p = r.last;
    if (p > r.y) over++;
  }
  return rows.length > 0 ? over / rows.length : 0;
}

/** The dead band (relative to scale) that minimises the weighted absolute error on the rows. */
function chooseSnap(rows: readonly TrainingRow[], point: readonly number[]): number {
  let best = 0;
  let bestErr = Number.POSITIVE_INFINITY;
  for (const snap of [0, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03]) {
    let err = 0;
    for (const r of rows) {
      let p = Math.max(0, dot(point, r.f));
      if (Math.abs(p - r.last) <= snap) p = r.last;
      err += r.w * Math.abs(p - r.y);
    }
    if (err < bestErr - 1e-12) {
      bestErr = err;
      best = snap;
    }
  }
  return best;
}
