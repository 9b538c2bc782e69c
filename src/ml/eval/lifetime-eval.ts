// Lifetime model evaluation on the Azure trace: examples from VMs, a blocked time split, accuracy against baselines.
import type { AzureVm, IntervalMap } from './azure.js';
import {
  LIFETIME_BOUNDS_S,
  lifetimeClassOf,
  predictLifetime,
  trainLifetimeModel,
  type LifetimeExample,
  type LifetimeModelParams,
} from '../models/lifetime-model.js';

/**
 * Turns VMs into labelled examples. An ended VM's lifetime is the middle of its duration bin. A
 * censored VM is kept only when its class is already certain (it had run past the long bound);
 * otherwise it is dropped, and the count of dropped VMs is returned so reports can say so.
 */
export function lifetimeExamples(
  vms: readonly AzureVm[],
  intervals: IntervalMap,
): { examples: LifetimeExample[]; dropped: number } {
  const examples: LifetimeExample[] = [];
  let dropped = 0;
  for (const v of vms) {
    const lo = intervals.min[v.durationBin];
    const hi = intervals.max[v.durationBin];
    if (lo === undefined || hi === undefined) {
      dropped++;
      continue;
    }
    const vm = {
      vcpus: v.vcpus,
      memoryGb: v.memoryGb,
      flavor: v.flavor,
      batchSize: v.batchSize,
      arrivalTimeS: v.arrival,
    };
    if (v.censored) {
      if (lo > LIFETIME_BOUNDS_S[1]) examples.push({ vm, cls: 2, lifetimeS: lo });
      else dropped++;
      continue;
    }
    // A bin straddling a bound is classed by its upper end (bins are aligned to the bounds here).
    examples.push({ vm, cls: lifetimeClassOf(hi), lifetimeS: (lo + hi) / 2 });
  }
  return { examples, dropped };
}

export interface ClassifierMetrics {
  readonly accuracy: number;
  readonly macroF1: number;
  /** Mean negative log-likelihood of the true class (nats); undefined for hard rules. */
  readonly logLoss?: number;
  /** Accuracy of the two-way short-vs-not-short split the scheduler's `lifetime` scorer uses. */
  readonly shortAccuracy: number;
}

/** Accuracy, macro F1 and log loss of predicted probabilities (or hard classes) against labels. */
export function classifierMetrics(
  labels: readonly number[],
  predicted: readonly (readonly number[] | number)[],
): ClassifierMetrics {
  const k = 3;
  const tp = new Array<number>(k).fill(0);
  const fp = new Array<number>(k).fill(0);
  const fn = new Array<number>(k).fill(0);
  let correct = 0;
  let shortCorrect = 0;
  let ll = 0;
  let probs = true;
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i]!;
    const p = predicted[i]!;
    let c: number;
    if (typeof p === 'number') {
      c = p;
      probs = false;
    } else {
      c = 0;
      for (let j = 1; j < p.length; j++) if (p[j]! > p[c]!) c = j;
      ll -= Math.log(Math.max(1e-12, p[y] ?? 0));
    }
    if (c === y) {
      correct++;
      tp[y]! += 1;
    } else {
      fp[c]! += 1;
      fn[y]! += 1;
    }
    if ((c === 0) === (y === 0)) shortCorrect++;
  }
  const n = Math.max(1, labels.length);
  let f1 = 0;
  for (let j = 0; j < k; j++) {
    const d = 2 * tp[j]! + fp[j]! + fn[j]!;
    f1 += d === 0 ? 0 : (2 * tp[j]!) / d;
  }
  return {
    accuracy: correct / n,
    macroF1: f1 / k,
    ...(probs ? { logLoss: ll / n } : {}),
    shortAccuracy: shortCorrect / n,
  };
}

export interface LifetimeEvaluation {
  readonly trainVms: number;
  readonly testVms: number;
  readonly droppedCensored: number;
  readonly model: ClassifierMetrics;
  readonly baselines: {
    /** Always the most common training class. */
    readonly majority: ClassifierMetrics;
    /** The scheduler's rule: batches of more than 10 are short, the rest long. */
    readonly batchRule: ClassifierMetrics;
    /** The training class frequencies as probabilities (for log loss). */
    readonly prior: ClassifierMetrics;
  };
}

/**
 * Blocked time split: arrival time cut into `blocks` equal blocks, even blocks train, odd blocks
 * test (adjacent bins of one tenant rarely straddle a 6 h block edge; a random split would leak).
 */
export function evaluateLifetime(
  examples: readonly LifetimeExample[],
  flavorSizes: Readonly<Record<string, readonly [number, number]>>,
  blocks = 14,
  dropped = 0,
  alpha = 1000,
): LifetimeEvaluation {
  let t0 = Number.POSITIVE_INFINITY;
  let t1 = Number.NEGATIVE_INFINITY;
  for (const e of examples) {
    t0 = Math.min(t0, e.vm.arrivalTimeS);
    t1 = Math.max(t1, e.vm.arrivalTimeS);
  }
  const span = Math.max(1, t1 - t0 + 1);
  const isTest = (e: LifetimeExample) => Math.floor(((e.vm.arrivalTimeS - t0) / span) * blocks) % 2 === 1;
  const train = examples.filter((e) => !isTest(e));
  const test = examples.filter(isTest);
  const model: LifetimeModelParams = trainLifetimeModel(train, flavorSizes, alpha);
  const labels = test.map((e) => e.cls);
  const majority = model.prior.indexOf(Math.max(...model.prior));
  return {
    trainVms: train.length,
    testVms: test.length,
    droppedCensored: dropped,
    model: classifierMetrics(
      labels,
      test.map((e) => predictLifetime(model, e.vm).probabilities),
    ),
    baselines: {
      majority: classifierMetrics(
        labels,
        test.map(() => majority),
      ),
      batchRule: classifierMetrics(
        labels,
        test.map((e) => (e.vm.batchSize > 10 ? 0 : 2)),
      ),
      prior: classifierMetrics(
        labels,
        test.map(() => model.prior),
      ),
    },
  };
}
