// VM lifetime model: class probabilities (short/medium/long) from what is known at creation, by smoothed back-off tables.
//
// Pure. Keys go from coarse to fine: batch-size bucket, then with the flavor, then with the
// 4-hour slot of the day. Each level's counts are shrunk towards its parent's probabilities
// (Dirichlet smoothing with weight `alpha`), so rare combinations fall back to what is known.
import { ValidationError } from '../../errors.js';

export const LIFETIME_MODEL_KIND = 'lifetime-backoff-table';
export const LIFETIME_CLASSES = ['short', 'medium', 'long'] as const;
export type LifetimeClassName = (typeof LIFETIME_CLASSES)[number];
/** Class bounds in seconds: short below the first, long above the second. */
export const LIFETIME_BOUNDS_S = [3600, 86400] as const;

/** What is known about a VM when it is created. */
export interface VmCreationFeatures {
  readonly vcpus: number;
  readonly memoryGb: number;
  /** Azure flavor letter when known, else empty. */
  readonly flavor?: string;
  readonly batchSize: number;
  /** Seconds since the epoch of the trace or cluster clock; only time of day is used. */
  readonly arrivalTimeS: number;
}

export interface LifetimeModelParams {
  readonly kind: typeof LIFETIME_MODEL_KIND;
  readonly classes: readonly string[];
  readonly boundsS: readonly number[];
  /** Mean lifetime of the training VMs of each class, seconds. */
  readonly classLifetimeS: readonly number[];
  readonly alpha: number;
  readonly prior: readonly number[];
  /** Flavor letter -> [vcpus, memory GB], to recognise a flavor from a size. */
  readonly flavorSizes: Readonly<Record<string, readonly [number, number]>>;
  /** Class counts by key: `b:<bucket>`, `bf:<bucket>:<flavor>`, `bfh:<bucket>:<flavor>:<slot>`. */
  readonly counts: Readonly<Record<string, readonly number[]>>;
  /**
   * A finer lifetime distribution (model files from version 2 on): counts of training lifetimes
   * in the bins between `edgesS`, under the same keys and smoothing as `counts`. It gives the
   * median lifetime placement aligns on and the re-prediction of a VM still running at an age.
   */
  readonly histogram?: LifetimeHistogram;
}

export interface LifetimeHistogram {
  /** Increasing bin edges in seconds; bin 0 is [HIST_FLOOR_S, edgesS[0]), the last [edgesS[last], HIST_CEIL_S). */
  readonly edgesS: readonly number[];
  readonly prior: readonly number[];
  readonly counts: Readonly<Record<string, readonly number[]>>;
}

/** Default histogram edges: 10, 20, 30 min, 1, 2, 4, 8, 16 h, 1, 2, 4, 10 days. */
export const LIFETIME_HIST_EDGES_S = [
  600, 1200, 1800, 3600, 7200, 14400, 28800, 57600, 86400, 172800, 345600, 864000,
] as const;
/** Lower end of the first histogram bin and upper end of the last (the Azure trace's 5 min and 20 days). */
export const HIST_FLOOR_S = 300;
export const HIST_CEIL_S = 1_728_000;

export interface LifetimePrediction {
  readonly cls: number;
  readonly probabilities: readonly number[];
  readonly expectedLifetimeS: number;
}

export function batchBucket(size: number): string {
  if (size <= 1) return '1';
  if (size <= 3) return '2-3';
  if (size <= 10) return '4-10';
  if (size <= 50) return '11-50';
  return '51+';
}

export function daySlot(arrivalTimeS: number): number {
  const sod = ((arrivalTimeS % 86400) + 86400) % 86400;
  return Math.floor(sod / 14400);
}

function flavorOf(params: LifetimeModelParams, vm: VmCreationFeatures): string | undefined {
  if (vm.flavor && vm.flavor in params.flavorSizes) return vm.flavor;
  for (const [k, [c, m]] of Object.entries(params.flavorSizes)) {
    if (c === vm.vcpus && Math.abs(m - vm.memoryGb) < 1e-6) return k;
  }
  return undefined;
}

function shrink(counts: readonly number[] | undefined, parent: readonly number[], alpha: number): number[] {
  if (!counts) return [...parent];
  const n = counts.reduce((a, b) => a + b, 0);
  return parent.map((p, i) => ((counts[i] ?? 0) + alpha * p) / (n + alpha));
}

/** Class probabilities and expected lifetime for one VM. */
export function predictLifetime(params: LifetimeModelParams, vm: VmCreationFeatures): LifetimePrediction {
  const b = batchBucket(vm.batchSize);
  let p = shrink(params.counts[`b:${b}`], params.prior, params.alpha);
  const f = flavorOf(params, vm);
  if (f !== undefined) {
    p = shrink(params.counts[`bf:${b}:${f}`], p, params.alpha);
    p = shrink(params.counts[`bfh:${b}:${f}:${daySlot(vm.arrivalTimeS)}`], p, params.alpha);
  }
  let cls = 0;
  for (let i = 1; i < p.length; i++) if (p[i]! > p[cls]!) cls = i;
  // The class-weighted mean. The histogram's median was tried as the point placement aligns on
  // and did no better in the replay (docs/ml.md), so the answer's meaning is unchanged.
  const expectedLifetimeS = p.reduce((s, pi, i) => s + pi * (params.classLifetimeS[i] ?? 0), 0);
  return { cls, probabilities: p, expectedLifetimeS };
}

/** The smoothed histogram probabilities for one VM (throws when the model has no histogram). */
export function lifetimeDistribution(params: LifetimeModelParams, vm: VmCreationFeatures): number[] {
  const h = params.histogram;
  if (!h) throw new ValidationError('this lifetime model has no histogram (retrain it)');
  const b = batchBucket(vm.batchSize);
  let p = shrink(h.counts[`b:${b}`], h.prior, params.alpha);
  const f = flavorOf(params, vm);
  if (f !== undefined) {
    p = shrink(h.counts[`bf:${b}:${f}`], p, params.alpha);
    p = shrink(h.counts[`bfh:${b}:${f}:${daySlot(vm.arrivalTimeS)}`], p, params.alpha);
  }
  return p;
}

/**
 * The q-quantile of the lifetime given that the VM has already run `ageS` seconds (0 at creation),
 * with the mass spread log-uniformly within each bin. Returns the total lifetime in seconds (>= ageS).
 */
export function lifetimeQuantileS(
  edgesS: readonly number[],
  probs: readonly number[],
  q: number,
  ageS = 0,
): number {
  const lo = (i: number) => (i === 0 ? HIST_FLOOR_S : edgesS[i - 1]!);
  const hi = (i: number) => (i === edgesS.length ? Math.max(HIST_CEIL_S, edgesS[i - 1]! * 2) : edgesS[i]!);
  // Mass of bin i above `x` (log-uniform within the bin).
  const above = (i: number, x: number) => {
    const a = lo(i);
    const b = hi(i);
    if (x <= a) return probs[i]!;
    if (x >= b) return 0;
    return (probs[i]! * Math.log(b / x)) / Math.log(b / a);
  };
  let survive = 0;
  for (let i = 0; i < probs.length; i++) survive += above(i, ageS);
  if (!(survive > 1e-12)) return Math.max(ageS * 2, ageS + 3600);
  // Walk bins from the top down until the mass above reaches (1 - q) of the surviving mass.
  let want = (1 - q) * survive;
  for (let i = probs.length - 1; i >= 0; i--) {
    const m = above(i, ageS);
    if (m >= want && m > 0) {
      const a = Math.max(lo(i), ageS);
      const b = hi(i);
      // Inside bin i: mass above x is probs[i]·ln(b/x)/ln(b/lo); solve for x.
      const x = b / Math.exp((want / probs[i]!) * Math.log(b / lo(i)));
      return Math.min(b, Math.max(a, x));
    }
    want -= m;
  }
  return Math.max(ageS, HIST_FLOOR_S);
}

/** The histogram bin of a lifetime. */
function histBin(edgesS: readonly number[], seconds: number): number {
  let i = 0;
  while (i < edgesS.length && seconds >= edgesS[i]!) i++;
  return i;
}

export function validateLifetimeParams(v: unknown): LifetimeModelParams {
  const p = v as Partial<LifetimeModelParams> | null;
  const k = LIFETIME_CLASSES.length;
  const okVec = (w: unknown) =>
    Array.isArray(w) && w.length === k && w.every((x) => Number.isFinite(x) && x >= 0);
  if (
    !p ||
    p.kind !== LIFETIME_MODEL_KIND ||
    !okVec(p.prior) ||
    !okVec(p.classLifetimeS) ||
    !(typeof p.alpha === 'number' && p.alpha > 0) ||
    typeof p.counts !== 'object' ||
    p.counts === null ||
    !Object.values(p.counts).every(okVec) ||
    typeof p.flavorSizes !== 'object' ||
    p.flavorSizes === null
  ) {
    throw new ValidationError(`not ${LIFETIME_MODEL_KIND} parameters with ${k} classes`);
  }
  if (p.histogram !== undefined) {
    const h = p.histogram as Partial<LifetimeHistogram> | null;
    const edges = h?.edgesS;
    const nb = Array.isArray(edges) ? edges.length + 1 : 0;
    const okHist = (w: unknown) =>
      Array.isArray(w) && w.length === nb && w.every((x) => Number.isFinite(x) && x >= 0);
    if (
      !h ||
      !Array.isArray(edges) ||
      edges.length === 0 ||
      !edges.every((e, i) => Number.isFinite(e) && e > 0 && (i === 0 || e > edges[i - 1]!)) ||
      !okHist(h.prior) ||
      typeof h.counts !== 'object' ||
      h.counts === null ||
      !Object.values(h.counts).every(okHist)
    ) {
      throw new ValidationError(
        `${LIFETIME_MODEL_KIND} histogram: increasing positive edgesS and count vectors of edgesS.length + 1`,
      );
    }
  }
  return p as LifetimeModelParams;
}

/** A training example: creation features plus the observed class and lifetime. */
export interface LifetimeExample {
  readonly vm: VmCreationFeatures;
  readonly cls: number;
  readonly lifetimeS: number;
}

/** The class of a lifetime in seconds. */
export function lifetimeClassOf(seconds: number): number {
  if (seconds < LIFETIME_BOUNDS_S[0]) return 0;
  if (seconds <= LIFETIME_BOUNDS_S[1]) return 1;
  return 2;
}

export function trainLifetimeModel(
  examples: readonly LifetimeExample[],
  flavorSizes: Readonly<Record<string, readonly [number, number]>>,
  alpha = 1000,
): LifetimeModelParams {
  if (examples.length === 0) throw new ValidationError('no lifetime examples to train on');
  const k = LIFETIME_CLASSES.length;
  const counts: Record<string, number[]> = {};
  const add = (key: string, cls: number) => {
    const c = (counts[key] ??= new Array<number>(k).fill(0));
    c[cls]! += 1;
  };
  const prior = new Array<number>(k).fill(0);
  const life = new Array<number>(k).fill(0);
  const edges = [...LIFETIME_HIST_EDGES_S];
  const nb = edges.length + 1;
  const hcounts: Record<string, number[]> = {};
  const hprior = new Array<number>(nb).fill(0);
  const hadd = (key: string, bin: number) => {
    const c = (hcounts[key] ??= new Array<number>(nb).fill(0));
    c[bin]! += 1;
  };
  const base = { kind: LIFETIME_MODEL_KIND, flavorSizes, alpha } as const;
  for (const e of examples) {
    prior[e.cls]! += 1;
    life[e.cls]! += e.lifetimeS;
    const b = batchBucket(e.vm.batchSize);
    const hb = histBin(edges, e.lifetimeS);
    hprior[hb]! += 1;
    add(`b:${b}`, e.cls);
    hadd(`b:${b}`, hb);
    const probe = { ...base, classes: [], boundsS: [], classLifetimeS: [], prior: [], counts: {} };
    const f = flavorOf(probe, e.vm);
    if (f !== undefined) {
      add(`bf:${b}:${f}`, e.cls);
      add(`bfh:${b}:${f}:${daySlot(e.vm.arrivalTimeS)}`, e.cls);
      hadd(`bf:${b}:${f}`, hb);
      hadd(`bfh:${b}:${f}:${daySlot(e.vm.arrivalTimeS)}`, hb);
    }
  }
  return {
    ...base,
    classes: [...LIFETIME_CLASSES],
    boundsS: [...LIFETIME_BOUNDS_S],
    classLifetimeS: life.map((s, i) => (prior[i]! > 0 ? s / prior[i]! : 0)),
    prior: prior.map((c) => c / examples.length),
    counts,
    histogram: { edgesS: edges, prior: hprior.map((c) => c / examples.length), counts: hcounts },
  };
}
