// Public surface of the scheduler: what the VM lifecycle, the API and the ML bridge import.
export {
  nodeScores,
  placeVm,
  placeVms,
  schedulerOptionsFromConfig,
  unschedulableError,
} from './scheduler.js';
export type { PlacementOutcome } from './scheduler.js';
export { placeVmsWithHints, gatherHints } from './hint.js';
export type { PlacementHintProvider, HintOptions, HintedDecision, HintFallback } from './hint.js';
export { BASELINES, DEFAULT_STRATEGY, FILTERS, SCORERS, STRATEGIES, resolveStrategy } from './registry.js';
export type { Strategy, ResolvedStrategy } from './registry.js';
export type { FilterPlugin, ScorePlugin, FilterContext, ScoreContext } from './plugin.js';
export { NodeStatus, LifetimeClass } from './types.js';
export type * from './types.js';
export { ANCHOR_AGE_SECONDS } from './scorers/anchor.js';
export { lifetimeFromBatchSize, SHORT_BATCH_THRESHOLD } from './scorers/lifetime.js';
