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
}

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
  const expectedLifetimeS = p.reduce((s, pi, i) => s + pi * (params.classLifetimeS[i] ?? 0), 0);
  return { cls, probabilities: p, expectedLifetimeS };
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
  const base = { kind: LIFETIME_MODEL_KIND, flavorSizes, alpha } as const;
  for (const e of examples) {
    prior[e.cls]! += 1;
    life[e.cls]! += e.lifetimeS;
    const b = batchBucket(e.vm.batchSize);
    add(`b:${b}`, e.cls);
    const probe = { ...base, classes: [], boundsS: [], classLifetimeS: [], prior: [], counts: {} };
    const f = flavorOf(probe, e.vm);
    if (f !== undefined) {
      add(`bf:${b}:${f}`, e.cls);
      add(`bfh:${b}:${f}:${daySlot(e.vm.arrivalTimeS)}`, e.cls);
    }
  }
  return {
    ...base,
    classes: [...LIFETIME_CLASSES],
    boundsS: [...LIFETIME_BOUNDS_S],
    classLifetimeS: life.map((s, i) => (prior[i]! > 0 ? s / prior[i]! : 0)),
    prior: prior.map((c) => c / examples.length),
    counts,
  };
}
