// The two plugin points of the scheduler, in the manner of the Kubernetes scheduler framework:
// a filter says whether a node can take a VM (and why not), a scorer ranks the nodes that can.
import type { LifetimeClass, NodeSnapshot, NodeUsage, PlacementRequest, Resources } from './types.js';

/** Per-request facts a filter may need about the whole cluster, computed once per request. */
export interface FilterContext {
  /** Fewest VMs of `group` on any ready node (for spread constraints). */
  groupMin(group: string): number;
}

/**
 * A feasibility check. Contract: pure and total; returns `undefined` when the node can take the
 * VM, or a short human reason when it cannot. Filters never call each other; order is the
 * registry's and the first rejection is the one recorded.
 */
export interface FilterPlugin {
  readonly name: string;
  filter(req: PlacementRequest, node: NodeSnapshot, ctx: FilterContext): string | undefined;
}

/** Per-request inputs a scorer may need beyond the node itself. */
export interface ScoreContext {
  /** Hint scores in [0, 100] by node id for this request, when a hint provider answered in time. */
  readonly hints: ReadonlyMap<string, number> | undefined;
}

/**
 * A ranking function. Contract: pure; called only for nodes every filter accepted; returns a
 * score in [0, 100], higher is better. Scores are combined as a weighted mean by strategy weights.
 */
export interface ScorePlugin {
  readonly name: string;
  score(req: PlacementRequest, node: NodeSnapshot, ctx: ScoreContext): number;
  /**
   * Present when the score depends only on the demand and the node's capacity and allocation.
   * It is the same function `score` calls; the trace simulator calls it on bins of identical hosts.
   */
  readonly usage?: (req: UsageRequest, node: NodeUsage) => number;
}

/** The part of a request that usage scorers read. */
export interface UsageRequest {
  readonly resources: Resources;
  readonly lifetime?: LifetimeClass | undefined;
}

/** Builds a scorer whose score is a function of demand and usage only. */
export function usageScorer(name: string, fn: (demand: Resources, node: NodeUsage) => number): ScorePlugin {
  return {
    name,
    score: (req, node) => fn(req.resources, node),
    usage: (req, node) => fn(req.resources, node),
  };
}
