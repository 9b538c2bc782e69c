// The scheduler's vocabulary: the frozen cluster snapshot it reads, the requests it places and the
// decision it returns. No behaviour here, only shapes.

/** Node health as the scheduler sees it; only `ready` nodes take new VMs. */
export const NodeStatus = {
  Ready: 'ready',
  Down: 'down',
  Draining: 'draining',
  Partitioned: 'partitioned',
  Cordoned: 'cordoned',
} as const;
export type NodeStatus = (typeof NodeStatus)[keyof typeof NodeStatus];

/** An amount of the three resources the scheduler accounts for. */
export interface Resources {
  readonly cpus: number;
  readonly memoryMib: number;
  readonly diskGib: number;
}

/** Expected lifetime of a VM, when the caller knows it (a service vs a batch job). */
export const LifetimeClass = { Short: 'short', Long: 'long' } as const;
export type LifetimeClass = (typeof LifetimeClass)[keyof typeof LifetimeClass];

/** What a scorer may look at: a node's capacity and what is already allocated on it. */
export interface NodeUsage {
  readonly capacity: Resources;
  readonly allocated: Resources;
  /** VMs on the node by lifetime class; absent counts as none. */
  readonly lifetimes?: { readonly short: number; readonly long: number };
  /** VMs on the node running for at least `ANCHOR_AGE_SECONDS` (one hour; see scorers/anchor.ts). */
  readonly longRunning?: number;
}

/** One node in a snapshot. Immutable: the scheduler never writes to it. */
export interface NodeSnapshot extends NodeUsage {
  readonly id: string;
  readonly status: NodeStatus;
  readonly labels: Readonly<Record<string, string>>;
  /** Hypervisor drivers this node can run, e.g. ['qemu'] or ['sim']. */
  readonly drivers: readonly string[];
  /** Whether the node can send and receive live migrations. */
  readonly liveMigration: boolean;
  /** VMs already on this node per anti-affinity / spread group name. */
  readonly groups: Readonly<Record<string, number>>;
}

/** The immutable view of the cluster one scheduling pass reads. Node order is the tie-break order for `order` strategies. */
export interface ClusterSnapshot {
  readonly nodes: readonly NodeSnapshot[];
}

/** One VM to place. */
export interface PlacementRequest {
  /** Caller's id for the VM; echoed in the decision. Must be unique within a batch. */
  readonly id: string;
  readonly resources: Resources;
  /** Required driver (e.g. 'qemu'); any driver when absent. */
  readonly driver?: string;
  /** The node must be able to live-migrate (for VMs that must be evacuable without downtime). */
  readonly requireLiveMigration?: boolean;
  /** Every key must be present on the node with this exact value. */
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /** At most one VM of this group per node (hard anti-affinity). */
  readonly antiAffinityGroup?: string;
  /**
   * Spread a group evenly: the node may hold at most `maxSkew` more VMs of the group than the
   * least-loaded eligible node (Kubernetes' topology spread with the node as topology key).
   */
  readonly spread?: { readonly group: string; readonly maxSkew: number };
  /**
   * Expected lifetime, when known: short (batch jobs, large same-tenant batches) or long
   * (services). The `lifetime` scorer keeps the two apart so that hosts empty when short VMs end.
   */
  readonly lifetime?: LifetimeClass;
}

/** Why one filter rejected one node. */
export interface NodeRejection {
  readonly nodeId: string;
  /** Name of the filter plugin that rejected the node. */
  readonly filter: string;
  readonly reason: string;
}

/** A scorer that took part in a decision, with its weight. */
export interface ScoreSource {
  readonly scorer: string;
  readonly weight: number;
}

/** The score of one feasible node: the weighted mean of its components (see `nodeScores`). */
export interface NodeScore {
  readonly nodeId: string;
  readonly total: number;
  /** Each scorer's score in [0, 100] before weighting, aligned with `Placement.sources`. */
  readonly components: readonly number[];
}

/**
 * The scores of every feasible node, by column so that a decision over 10,000 nodes stays cheap:
 * row i is node `nodeIds[i]`. `nodeScores()` turns it into one object per node.
 */
export interface ScoreTable {
  /** Feasible node ids, in snapshot order. */
  readonly nodeIds: readonly string[];
  /** Weighted mean per node. */
  readonly totals: readonly number[];
  /** One column per scorer (aligned with `Placement.sources`): its score in [0, 100] per node. */
  readonly byScorer: readonly (readonly number[])[];
}

/** A request that was placed, with the full explanation. */
export interface Placement {
  readonly requestId: string;
  readonly nodeId: string;
  /** The scorers and weights behind `scores.byScorer`, in the same order. */
  readonly sources: readonly ScoreSource[];
  /** Every feasible node's score, in snapshot order (the chosen node has the highest total). */
  readonly scores: ScoreTable;
  /** Every node that was filtered out, and why. */
  readonly rejections: readonly NodeRejection[];
}

/** A request no node could take: an expected outcome, not an exception. */
export interface Unschedulable {
  readonly requestId: string;
  /** One entry per node: the first filter that rejected it. */
  readonly reasons: readonly NodeRejection[];
  /** How many nodes each filter rejected, for a one-line summary. */
  readonly byFilter: Readonly<Record<string, number>>;
}

/** The result of one scheduling pass over a batch. Placements are in the order they were made. */
export interface PlacementDecision {
  readonly strategy: string;
  readonly placements: readonly Placement[];
  readonly unschedulable: readonly Unschedulable[];
}

/** How to rank nodes; read from config keys `scheduler.strategy`, `scheduler.weights`, `scheduler.seed`. */
export interface SchedulerOptions {
  /** A strategy name from the registry (see docs/scheduler.md). */
  readonly strategy: string;
  /** Weights by scorer name; override the strategy's own weights (0 switches a scorer off). */
  readonly weights?: Readonly<Record<string, number>>;
  /** Seed of the one random choice: the tie-break order of equally scored nodes. */
  readonly seed?: number;
  /** Scores in [0, 100] by request id then node id from a hint provider (see hint.ts); used by the `ml-hint` scorer. */
  readonly hints?: ReadonlyMap<string, ReadonlyMap<string, number>>;
}
