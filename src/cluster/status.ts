// Cluster status (pure): the `GET /api/v1/cluster` view from the durable node records, the live members and the leader.
import type { NodeInfo } from './membership.js';

export const NodeStatus = {
  Ready: 'ready',
  Down: 'down',
  Draining: 'draining',
  Partitioned: 'partitioned',
} as const;
export type NodeStatus = (typeof NodeStatus)[keyof typeof NodeStatus];

export interface ClusterNodeView {
  readonly id: string;
  readonly status: NodeStatus;
  readonly address: string;
}

export interface ClusterView {
  readonly leader: string | null;
  readonly nodes: readonly ClusterNodeView[];
}

export interface StatusInputs {
  /** Every node that ever registered (durable records). */
  readonly known: readonly NodeInfo[];
  /** Nodes whose lease is alive (live membership). */
  readonly live: readonly NodeInfo[];
  readonly leader: string | null;
  /** The node producing the view, and whether it is cut off from etcd (then its own entry says partitioned and the rest is its last view). */
  readonly self?: { readonly id: string; readonly partitioned: boolean };
}

/**
 * Status rules: a live member is `ready`, or `draining` if it says so; a known node without a live
 * lease is `down`; this node, when fenced, is `partitioned` (others see it as `ready` until its
 * lease expires, then `down`). A partitioned node reports no leader: it cannot know one.
 * Nodes are sorted by id.
 */
export function buildClusterView(input: StatusInputs): ClusterView {
  const live = new Map(input.live.map((n) => [n.id, n]));
  const all = new Map(input.known.map((n) => [n.id, n]));
  for (const n of input.live) all.set(n.id, n);
  const partitionedSelf = input.self?.partitioned === true ? input.self.id : undefined;
  const nodes = [...all.values()]
    .map((n): ClusterNodeView => {
      const l = live.get(n.id);
      let status: NodeStatus;
      if (n.id === partitionedSelf) status = NodeStatus.Partitioned;
      else if (!l) status = NodeStatus.Down;
      else status = l.draining ? NodeStatus.Draining : NodeStatus.Ready;
      return { id: n.id, status, address: (l ?? n).addresses[0] ?? '' };
    })
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { leader: partitionedSelf ? null : input.leader, nodes };
}
