// Region placement decisions (pure): the scheduler's snapshot of a region from its live members and
// the allocations recorded in the shared database, which VMs the leader must place, re-assign or
// move, and when a down node's HA VMs may be restarted elsewhere.
import type { ClusterSnapshot, NodeSnapshot, PlacementRequest } from '../scheduler/index.js';
import type { NodeCapacity, NodeUsage, VmRecord } from '../store/types.js';
import type { NodeInfo } from './membership.js';

/** What a member offers (its announced capacity already carries the overcommit ratios). */
export function capacityOf(n: NodeInfo): NodeCapacity {
  return {
    cpus: n.capacity.cpus,
    memoryMib: n.capacity.memoryMiB,
    diskMib: (n.capacity.diskGiB ?? 0) * 1024,
  };
}

/** The scheduler's view of the region: live members (draining ones marked so), with their usage. */
export function regionSnapshot(
  members: readonly NodeInfo[],
  usage: ReadonlyMap<string, NodeUsage>,
): ClusterSnapshot {
  const nodes: NodeSnapshot[] = members.map((m) => {
    const u = usage.get(m.id) ?? { cpus: 0, memoryMib: 0, diskMib: 0, allocations: 0 };
    return {
      id: m.id,
      status: m.draining === true ? 'draining' : 'ready',
      labels: m.labels,
      drivers: [m.driver],
      liveMigration: false,
      groups: {},
      capacity: { cpus: m.capacity.cpus, memoryMib: m.capacity.memoryMiB, diskGib: m.capacity.diskGiB ?? 0 },
      allocated: { cpus: u.cpus, memoryMib: u.memoryMib, diskGib: u.diskMib / 1024 },
    };
  });
  return { nodes };
}

/** The snapshot after `vm` was placed on `node` (so the next request in the same pass sees it). */
export function withAllocation(
  snapshot: ClusterSnapshot,
  node: string,
  res: { readonly cpus: number; readonly memoryMib: number },
): ClusterSnapshot {
  return {
    nodes: snapshot.nodes.map((n) =>
      n.id === node
        ? {
            ...n,
            allocated: {
              ...n.allocated,
              cpus: n.allocated.cpus + res.cpus,
              memoryMib: n.allocated.memoryMib + res.memoryMib,
            },
          }
        : n,
    ),
  };
}

/** A scheduler request for a VM row (name as the request id, for readable errors). */
export function placementRequestOf(
  vm: Pick<VmRecord, 'name'>,
  res: { readonly cpus: number; readonly memoryMib: number },
): PlacementRequest {
  return { id: vm.name, resources: { cpus: res.cpus, memoryMib: res.memoryMib, diskGib: 0 } };
}

/** States in which a VM on a lost node counts as supposed to run (and is restarted elsewhere under HA). */
const LIVE_STATES = new Set(['scheduled', 'starting', 'running', 'failed', 'migrating']);

export interface RegionPlan {
  /** Creates waiting for a node. */
  readonly place: readonly VmRecord[];
  /** HA VMs of nodes down long enough: to be placed on another node. */
  readonly move: readonly VmRecord[];
  /** VMs on live nodes whose assignment is missing (a leader died between the database and etcd). */
  readonly assign: readonly VmRecord[];
  /** HA VMs that their live node stopped while fenced: assigned again to the same node. */
  readonly reassign: readonly VmRecord[];
  /** Assignments (`node/vm`) whose VM row is gone or placed elsewhere. */
  readonly unassign: readonly { readonly node: string; readonly vm: string }[];
}

export interface PlanInput {
  readonly rows: readonly VmRecord[];
  readonly live: ReadonlySet<string>;
  /** Nodes whose HA VMs may be moved now (down for at least the lease TTL plus the grace). */
  readonly dueDown: ReadonlySet<string>;
  /** Existing assignments as `node/vm`. */
  readonly assignments: ReadonlySet<string>;
  /** Nodes that drain: the VMs they handed back (stopped, desired running) are placed elsewhere. */
  readonly draining?: ReadonlySet<string>;
}

/** What one pass of the leader has to do. Pure. */
export function planRegion(input: PlanInput): RegionPlan {
  const place: VmRecord[] = [];
  const move: VmRecord[] = [];
  const assign: VmRecord[] = [];
  const reassign: VmRecord[] = [];
  const placedAt = new Map<string, string | null>();
  for (const vm of input.rows) {
    placedAt.set(vm.id, vm.node);
    if (vm.desiredState !== 'running') continue;
    if (vm.node === null) {
      if (vm.state === 'pending') place.push(vm);
      continue;
    }
    if (!input.live.has(vm.node)) {
      if (input.dueDown.has(vm.node) && vm.restartPolicy === 'always' && LIVE_STATES.has(vm.state))
        move.push(vm);
      continue;
    }
    if (input.draining?.has(vm.node) === true && vm.state === 'stopped') {
      move.push(vm);
      continue;
    }
    const key = `${vm.node}/${vm.id}`;
    if (vm.state === 'scheduled' && !input.assignments.has(key)) assign.push(vm);
    else if (vm.state === 'failed' && vm.restartPolicy === 'always' && (vm.error ?? '').startsWith('fenced'))
      reassign.push(vm);
  }
  const unassign: { node: string; vm: string }[] = [];
  for (const key of input.assignments) {
    const [node = '', vm = ''] = key.split('/');
    if (placedAt.get(vm) !== node) unassign.push({ node, vm });
  }
  return { place, move, assign, reassign, unassign };
}

/** Whether a node seen down at `since` (monotonic ms) may have its HA VMs moved at `now`. */
export function downLongEnough(since: number, now: number, leaseTtlMs: number, graceMs: number): boolean {
  return now - since >= leaseTtlMs + graceMs;
}
