// Fixtures for scheduler tests and benchmarks: mock nodes and requests with sensible defaults,
// and a Harness that places batches against a snapshot it keeps up to date, recording every
// decision (in the manner of Nomad's scheduler/testing.go).
import { placeVms } from '../scheduler.js';
import type {
  ClusterSnapshot,
  NodeSnapshot,
  PlacementDecision,
  PlacementRequest,
  Resources,
  SchedulerOptions,
} from '../types.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** A ready qemu node with 16 CPUs, 64 GiB and 500 GiB, nothing allocated; override any field. */
export function mockNode(id: string, over: Partial<Mutable<NodeSnapshot>> = {}): NodeSnapshot {
  return {
    id,
    status: 'ready',
    labels: {},
    capacity: { cpus: 16, memoryMib: 65536, diskGib: 500 },
    allocated: { cpus: 0, memoryMib: 0, diskGib: 0 },
    drivers: ['qemu'],
    liveMigration: true,
    groups: {},
    ...over,
  };
}

/** A request for 2 CPUs, 4 GiB and 20 GiB; override any field. */
export function mockRequest(id: string, over: Partial<Mutable<PlacementRequest>> = {}): PlacementRequest {
  return { id, resources: { cpus: 2, memoryMib: 4096, diskGib: 20 }, ...over };
}

/** Resources shorthand. */
export function res(cpus: number, memoryMib: number, diskGib = 0): Resources {
  return { cpus, memoryMib, diskGib };
}

/** `n` identical mock nodes `node-0` … `node-(n-1)`. */
export function mockCluster(n: number, over: Partial<Mutable<NodeSnapshot>> = {}): ClusterSnapshot {
  return { nodes: Array.from({ length: n }, (_, i) => mockNode(`node-${i}`, over)) };
}

/**
 * Places batches one after another against a snapshot it updates with each decision's
 * allocations, and records every decision for assertions.
 */
export class Harness {
  readonly decisions: PlacementDecision[] = [];
  private nodes: NodeSnapshot[];

  constructor(
    snapshot: ClusterSnapshot,
    private readonly options: SchedulerOptions,
  ) {
    this.nodes = [...snapshot.nodes];
  }

  get snapshot(): ClusterSnapshot {
    return { nodes: this.nodes };
  }

  /** Places `requests`, applies the placements to the harness's snapshot and returns the decision. */
  place(requests: readonly PlacementRequest[]): PlacementDecision {
    const d = placeVms(this.snapshot, requests, this.options);
    this.decisions.push(d);
    const byId = new Map(requests.map((r) => [r.id, r]));
    for (const p of d.placements) {
      const r = byId.get(p.requestId)!;
      this.nodes = this.nodes.map((n) =>
        n.id !== p.nodeId
          ? n
          : {
              ...n,
              allocated: {
                cpus: n.allocated.cpus + r.resources.cpus,
                memoryMib: n.allocated.memoryMib + r.resources.memoryMib,
                diskGib: n.allocated.diskGib + r.resources.diskGib,
              },
              groups: addGroups(n.groups, r),
            },
      );
    }
    return d;
  }
}

function addGroups(groups: Readonly<Record<string, number>>, r: PlacementRequest): Record<string, number> {
  const g = { ...groups };
  for (const name of new Set([r.antiAffinityGroup, r.spread?.group]))
    if (name !== undefined) g[name] = (g[name] ?? 0) + 1;
  return g;
}
