// Wires every filter and scorer plugin and names the strategies (weight sets over the scorers).
// Plugins never call each other; this file is the only place that knows them all.
import { ValidationError } from '../errors.js';
import { capacityFilter } from './filters/capacity.js';
import { driverCapabilityFilter } from './filters/driver-capability.js';
import { antiAffinityFilter, spreadFilter } from './filters/group-placement.js';
import { labelSelectorFilter } from './filters/label-selector.js';
import { nodeStatusFilter } from './filters/node-status.js';
import type { FilterPlugin, ScorePlugin } from './plugin.js';
import { alignmentScorer } from './scorers/alignment.js';
import { balancedAllocationScorer } from './scorers/balanced-allocation.js';
import { binpackScorer } from './scorers/binpack.js';
import { dominantScorer } from './scorers/dominant.js';
import { anchorScorer } from './scorers/anchor.js';
import { lifetimeScorer } from './scorers/lifetime.js';
import { leastAllocatedScorer, mostAllocatedScorer } from './scorers/kube-allocated.js';
import { mlHintScorer } from './scorers/ml-hint.js';
import { spreadScorer } from './scorers/spread.js';
import type { SchedulerOptions } from './types.js';

/** Filters in the order they run; cheap and common rejections first, capacity last. */
export const FILTERS: readonly FilterPlugin[] = [
  nodeStatusFilter,
  driverCapabilityFilter,
  labelSelectorFilter,
  antiAffinityFilter,
  spreadFilter,
  capacityFilter,
];

/** Every scorer by name. */
export const SCORERS: ReadonlyMap<string, ScorePlugin> = new Map(
  [
    binpackScorer,
    spreadScorer,
    alignmentScorer,
    balancedAllocationScorer,
    mostAllocatedScorer,
    leastAllocatedScorer,
    mlHintScorer,
    lifetimeScorer,
    dominantScorer,
    anchorScorer,
  ].map((s) => [s.name, s]),
);

/** How equally scored nodes are ordered: snapshot order, or a seeded random rank (tie-break.ts). */
export const TieBreak = { Order: 'order', Seeded: 'seeded' } as const;
export type TieBreak = (typeof TieBreak)[keyof typeof TieBreak];

/** A named weight set over the scorers. */
export interface Strategy {
  readonly name: string;
  readonly description: string;
  readonly weights: Readonly<Record<string, number>>;
  readonly tieBreak: TieBreak;
  /** A textbook or Kubernetes baseline, kept for comparison in the simulator. */
  readonly baseline: boolean;
}

/** The strategy `scheduler.strategy` selects when unset. */
export const DEFAULT_STRATEGY = 'balanced';

export const STRATEGIES: ReadonlyMap<string, Strategy> = new Map(
  (
    [
      {
        name: 'balanced',
        description:
          'fill hosts anchored by a VM up for an hour or more first (they stay in use anyway), best-fit within',
        weights: { binpack: 1, anchor: 1 },
        tieBreak: TieBreak.Order,
        baseline: false,
      },
      {
        name: 'binpack',
        description: 'fullest feasible host first (continuous most-allocated)',
        weights: { binpack: 1 },
        tieBreak: TieBreak.Order,
        baseline: false,
      },
      {
        name: 'dominant',
        description: 'fullest host by its scarcest resource first, then by the mean',
        weights: { dominant: 1, binpack: 0.1 },
        tieBreak: TieBreak.Order,
        baseline: false,
      },
      {
        name: 'spread',
        description: 'emptiest host first, with balanced CPU/memory use; for headroom on a fixed cluster',
        weights: { spread: 1, 'balanced-allocation': 0.5 },
        tieBreak: TieBreak.Seeded,
        baseline: false,
      },
      {
        name: 'tetris',
        description: 'Tetris: alignment of demand and free capacity, with a little packing',
        weights: { alignment: 1, binpack: 0.25 },
        tieBreak: TieBreak.Order,
        baseline: false,
      },
      {
        name: 'first-fit',
        description: 'baseline: the first node in snapshot order that fits',
        weights: {},
        tieBreak: TieBreak.Order,
        baseline: true,
      },
      {
        name: 'best-fit',
        description:
          'baseline: the node left with the least normalised free capacity (L1), ties in snapshot order',
        weights: { binpack: 1 },
        tieBreak: TieBreak.Order,
        baseline: true,
      },
      {
        name: 'least-allocated',
        description: "baseline: Kubernetes' LeastAllocated (integer scores, seeded ties)",
        weights: { 'least-allocated': 1 },
        tieBreak: TieBreak.Seeded,
        baseline: true,
      },
      {
        name: 'most-allocated',
        description: "baseline: Kubernetes' MostAllocated (integer scores, seeded ties)",
        weights: { 'most-allocated': 1 },
        tieBreak: TieBreak.Seeded,
        baseline: true,
      },
    ] satisfies Strategy[]
  ).map((s) => [s.name, s]),
);

/** The baselines every simulation runs beside the chosen strategy. */
export const BASELINES: readonly string[] = ['first-fit', 'best-fit', 'least-allocated', 'most-allocated'];

/** A strategy with its config overrides applied: the scorers that count and their weights. */
export interface ResolvedStrategy {
  readonly name: string;
  readonly tieBreak: TieBreak;
  readonly scorers: readonly { readonly plugin: ScorePlugin; readonly weight: number }[];
  readonly seed: number;
}

/**
 * Resolves options into a strategy: the named strategy's weights overlaid with `options.weights`
 * (weight 0 drops a scorer). Throws ValidationError for an unknown strategy or scorer name, or a
 * negative or non-finite weight.
 */
export function resolveStrategy(options: SchedulerOptions): ResolvedStrategy {
  const strategy = STRATEGIES.get(options.strategy);
  if (!strategy)
    throw new ValidationError(`unknown scheduler strategy: ${options.strategy}`, {
      key: 'scheduler.strategy',
      hint: `one of ${[...STRATEGIES.keys()].join(', ')}`,
    });
  const weights: Record<string, number> = { ...strategy.weights, ...(options.weights ?? {}) };
  const scorers: { plugin: ScorePlugin; weight: number }[] = [];
  for (const name of Object.keys(weights).sort()) {
    const plugin = SCORERS.get(name);
    const weight = weights[name] ?? 0;
    if (!plugin)
      throw new ValidationError(`unknown scorer in scheduler.weights: ${name}`, {
        key: `scheduler.weights.${name}`,
        hint: `one of ${[...SCORERS.keys()].join(', ')}`,
      });
    if (!Number.isFinite(weight) || weight < 0)
      throw new ValidationError(`scheduler weight for ${name} must be a finite number >= 0`, {
        key: `scheduler.weights.${name}`,
      });
    if (weight > 0) scorers.push({ plugin, weight });
  }
  return { name: strategy.name, tieBreak: strategy.tieBreak, scorers, seed: options.seed ?? 0 };
}
