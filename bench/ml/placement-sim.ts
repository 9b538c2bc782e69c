// Judges lifetime hints in the scheduler's trace simulator: the same strategy with lifetime classes
// from nothing, from the batch-size rule, from the lifetime model (cross-fitted) and from the truth.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadTrace } from '../../src/scheduler/simulate/load.js';
import { simulate } from '../../src/scheduler/simulate/engine.js';
import { resolveStrategy } from '../../src/scheduler/registry.js';
import { LIFETIME_CODE, type PlacementTrace } from '../../src/scheduler/simulate/trace.js';
import { loadAzureSplit, parseFlavorMap } from '../../src/ml/eval/azure.js';
import { lifetimeExamples } from '../../src/ml/eval/lifetime-eval.js';
import { predictLifetime, trainLifetimeModel, lifetimeClassOf } from '../../src/ml/models/lifetime-model.js';

export interface SimRow {
  readonly strategy: string;
  readonly lifetimes: string;
  readonly meanHostsOverLowerBound: number;
  readonly meanHosts: number;
  readonly peakHosts: number;
  readonly shortShare: number;
  readonly seconds: number;
}

/**
 * Replays the Azure dev split (48 vCPU / 384 GiB hosts, as many as needed) and reports the
 * time-averaged hosts in use over the lower bound. Model classes are cross-fitted over two
 * interleaved 6-hour block sets: each VM's class comes from a model that never saw its block.
 */
/** A strategy from the scheduler's registry, optionally with weight overrides (e.g. the lifetime scorer switched on). */
export interface StrategySpec {
  readonly name: string;
  readonly weights?: Readonly<Record<string, number>>;
}

export function judgeLifetimeHints(dir: string, strategies: readonly StrategySpec[]): SimRow[] {
  const loaded = loadTrace(join(dir, 'v1.dev.txt'));
  const base = loaded.trace;
  const { vms, intervals } = loadAzureSplit(dir, 'dev');
  if (vms.length !== base.count) throw new Error(`VM count mismatch: ${vms.length} vs ${base.count}`);
  const fm = parseFlavorMap(readFileSync(join(dir, 'flav_map.txt'), 'utf8'));
  const sizes = Object.fromEntries([...fm].map(([k, v]) => [k, [v.vcpus, v.memoryGb] as const]));

  let t0 = Number.POSITIVE_INFINITY;
  let t1 = Number.NEGATIVE_INFINITY;
  for (const v of vms) {
    t0 = Math.min(t0, v.arrival);
    t1 = Math.max(t1, v.arrival);
  }
  const blocks = 14;
  const fold = (t: number) => Math.floor(((t - t0) / (t1 - t0 + 1)) * blocks) % 2;
  const { examples } = lifetimeExamples(vms, intervals);
  const models = [0, 1].map((f) =>
    trainLifetimeModel(
      examples.filter((e) => fold(e.vm.arrivalTimeS) !== f),
      sizes,
    ),
  );

  // The scorer takes two classes; call a VM short when P(short) clears a threshold fitted on the
  // training blocks so that the predicted short share equals the true short share there.
  const thresholds = [0, 1].map((f) => {
    const train = examples.filter((e) => fold(e.vm.arrivalTimeS) !== f);
    const ps = train.map((e) => predictLifetime(models[f]!, e.vm).probabilities[0]!).sort((a, b) => a - b);
    const shortShare = train.filter((e) => e.cls === 0).length / train.length;
    return ps[Math.min(ps.length - 1, Math.floor((1 - shortShare) * ps.length))]!;
  });
  const variant = (codes: (i: number) => number): PlacementTrace => {
    const lifetime = new Int8Array(base.count);
    for (let i = 0; i < base.count; i++) lifetime[i] = codes(i);
    return { ...base, lifetime };
  };
  const vmFeatures = (i: number) => {
    const v = vms[i]!;
    return {
      vcpus: v.vcpus,
      memoryGb: v.memoryGb,
      flavor: v.flavor,
      batchSize: v.batchSize,
      arrivalTimeS: v.arrival,
    };
  };
  const traces: [string, PlacementTrace][] = [
    ['none (no hint)', variant(() => LIFETIME_CODE.unknown)],
    ['batch rule (>10 = short)', base],
    [
      'lifetime model',
      variant((i) => {
        const f = fold(vms[i]!.arrival);
        const p = predictLifetime(models[f]!, vmFeatures(i));
        return p.probabilities[0]! >= thresholds[f]! ? LIFETIME_CODE.short : LIFETIME_CODE.long;
      }),
    ],
    [
      'oracle (true class)',
      variant((i) => {
        const v = vms[i]!;
        if (v.censored) return LIFETIME_CODE.long;
        const hi = intervals.max[v.durationBin] ?? 0;
        return lifetimeClassOf(hi) === 0 ? LIFETIME_CODE.short : LIFETIME_CODE.long;
      }),
    ],
  ];
  const pool = { kind: 'uniform', cpuMilli: 48_000, memoryMib: 384 * 1024 } as const;
  const rows: SimRow[] = [];
  for (const spec of strategies) {
    const strategy = resolveStrategy({
      strategy: spec.name,
      seed: 0,
      ...(spec.weights ? { weights: spec.weights } : {}),
    });
    const name = spec.weights
      ? `${spec.name} + ${Object.entries(spec.weights)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`
      : spec.name;
    for (const [label, trace] of traces) {
      let short = 0;
      for (let i = 0; i < trace.count; i++) if (trace.lifetime[i] === LIFETIME_CODE.short) short++;
      const s0 = performance.now();
      const r = simulate(trace, pool, strategy);
      rows.push({
        strategy: name,
        lifetimes: label,
        meanHostsOverLowerBound: r.meanHostsOverLowerBound,
        meanHosts: r.meanHosts,
        peakHosts: r.peakHosts,
        shortShare: short / trace.count,
        seconds: (performance.now() - s0) / 1000,
      });
    }
  }
  return rows;
}
