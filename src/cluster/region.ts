// The region's leader at work: while this node leads, it places creates recorded `pending` in the
// shared database with the scheduler over the region's snapshot (members from etcd, allocations from
// PostgreSQL), writes assignments guarded by its term, restarts the HA VMs of lost nodes elsewhere
// after the lease TTL plus a grace, moves VMs off draining nodes, and removes stale assignments.
// Every placement is one database transaction (generation-checked row update + allocation) before
// its assignment, so two leaders can never both place a VM, and a leader that dies in between
// leaves a `scheduled` row that the next one assigns: nothing is lost or duplicated.
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { placeVm, type SchedulerOptions } from '../scheduler/index.js';
import type { Store, StoreTx } from '../store/index.js';
import type { NodeUsage, VmRecord } from '../store/types.js';
import { appendVmStateEvent } from '../vm/audit.js';
import { parseStoredSpec } from '../vm/model.js';
import { removeAssignment, writeAssignment } from './assignments.js';
import type { Term } from './election.js';
import type { EtcdConnection } from './etcd-client.js';
import { relativeKey } from './etcd-client.js';
import { Keys } from './keys.js';
import type { MemberWatch, NodeInfo } from './membership.js';
import {
  capacityOf,
  downLongEnough,
  placementRequestOf,
  planRegion,
  regionSnapshot,
  withAllocation,
} from './placement.js';
import type { Session } from './session.js';
import { resilientWatch } from './watch.js';

export interface RegionLeaderOptions {
  readonly conn: EtcdConnection;
  readonly session: Session;
  readonly region: string;
  readonly nodeId: string;
  readonly store: Store;
  readonly members: MemberWatch;
  readonly scheduler: SchedulerOptions;
  readonly leaseTtlMs: number;
  readonly graceMs: number;
  readonly logger: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  /** Full pass at least this often (ms), besides the passes triggered by creates and member changes. */
  readonly periodMs?: number;
  /** Published on the node's bus: `cluster.placed`, `cluster.rescheduled`. */
  readonly publish?: (type: string, data: Record<string, unknown>) => void;
}

export interface PassSummary {
  readonly placed: number;
  readonly moved: number;
  readonly assigned: number;
  readonly unplaceable: number;
}

/** Runs passes while this node leads; `lead(term)` on election, `stop()` when deposed. */
export class RegionLeader {
  readonly #o: RegionLeaderOptions;
  #term: Term | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #cancelWatch: (() => Promise<void>) | undefined;
  #offMembers: (() => void) | undefined;
  /** Monotonic ms at which this leader first saw each node not live (for HA waits). */
  readonly #downSince = new Map<string, number>();
  /** Last re-assignment per VM (rate limit of fenced HA VMs put back to their node). */
  readonly #reassignedAt = new Map<string, number>();
  /** Pending markers seen without a VM row in the last pass. */
  #unknownMarkers = new Set<string>();

  constructor(options: RegionLeaderOptions) {
    this.#o = options;
  }

  get term(): Term | undefined {
    return this.#term;
  }

  /** Starts leading under `term`: watches `pending/`, passes on member changes and every period. */
  async lead(term: Term): Promise<void> {
    await this.stop();
    this.#term = term;
    this.#downSince.clear();
    const { conn } = this.#o;
    this.#offMembers = this.#o.members.onChange(() => this.kick());
    try {
      // (read again after etcd cancels it, e.g. on a compacted resume; each re-read kicks a pass)
      const watch = await resilientWatch(
        conn,
        { prefix: Keys.pendingPrefix },
        {
          onSnapshot: (_kvs, _rev, resync) => {
            if (resync) this.kick();
          },
          onPut: () => this.kick(),
          onDelete: () => undefined,
          onTrouble: (message) => this.#o.logger.warn({ watch: 'pending' }, `leader: ${message}`),
        },
      );
      this.#cancelWatch = () => watch.cancel();
    } catch (err) {
      this.#o.logger.warn(
        { err: (err as Error).message },
        'leader: cannot watch pending creates (periodic passes only)',
      );
    }
    const period = this.#o.periodMs ?? 1000;
    this.#timer = setInterval(() => this.kick(), period);
    this.#timer.unref();
    this.kick();
  }

  /** Stops leading (deposed or shutting down); waits for a pass in flight. */
  async stop(): Promise<void> {
    this.#term = undefined;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#offMembers?.();
    this.#offMembers = undefined;
    const cancel = this.#cancelWatch;
    this.#cancelWatch = undefined;
    await cancel?.().catch(() => undefined);
    await this.#running;
  }

  /** Asks for a pass (coalesced: one runs at a time, and one more after it if asked meanwhile). */
  kick(): void {
    if (this.#term === undefined) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        const term = this.#term;
        if (term === undefined) break;
        try {
          await this.pass(term);
        } catch (err) {
          this.#o.logger.warn({ err: (err as Error).message }, 'leader pass failed (retried)');
        }
      } while (this.#again && this.#term !== undefined);
      this.#running = undefined;
    })();
  }

  /** One placement in the caller's transaction: generation-checked row update, allocation, audit. */
  async #apply(tx: StoreTx, d: Decision): Promise<void> {
    const { vm, spec, res, target, info, from, reason } = d;
    let u = vm;
    if (from !== null && !['failed', 'scheduled', 'stopped'].includes(u.state)) {
      u = await tx.vms.update(vm.id, u.generation, {
        state: 'failed',
        spec: { ...spec, handle: null },
        error: reason,
      });
      await appendVmStateEvent(tx, u, vm.state, { reason });
    }
    if (from !== null) await tx.allocations.release(vm.id);
    const r = await tx.allocations.reserve(
      { vmId: vm.id, nodeId: target, cpus: res.cpus, memoryMib: res.memoryMib, diskMib: 0 },
      capacityOf(info),
    );
    if (!r.ok) throw new Error(`node ${target}: ${r.what} short (requested ${r.requested}, free ${r.free})`);
    const before = u.state;
    u = await tx.vms.update(vm.id, u.generation, {
      state: 'scheduled',
      node: target,
      error: null,
      ...(from === null ? {} : { spec: { ...spec, handle: null } }),
    });
    await appendVmStateEvent(
      tx,
      u,
      before,
      from === null ? { placedBy: this.#o.nodeId } : { rescheduled: true, from, reason },
    );
  }

  /** One pass over the region under `term`. Exposed for tests. */
  async pass(term: Term): Promise<PassSummary> {
    const { store, conn, members } = this.#o;
    const now = performance.now();
    const liveInfo = new Map<string, NodeInfo>(members.nodes().map((n) => [n.id, n]));
    const live = new Set(liveInfo.keys());
    const rows = await allRows(store);
    const asg = await conn.kv.getAll().prefix(Keys.assignmentsRoot).keys();
    const assignments = new Set(
      asg.map((k) => relativeKey(conn, k).slice(Keys.assignmentsRoot.length)).filter((k) => k.includes('/')),
    );
    for (const id of [...this.#downSince.keys()]) if (live.has(id)) this.#downSince.delete(id);
    for (const vm of rows)
      if (vm.node !== null && !live.has(vm.node) && !this.#downSince.has(vm.node))
        this.#downSince.set(vm.node, now);
    const dueDown = new Set(
      [...this.#downSince]
        .filter(([, since]) => downLongEnough(since, now, this.#o.leaseTtlMs, this.#o.graceMs))
        .map(([id]) => id),
    );
    // Draining nodes take no new VMs (the scheduler skips them); the node itself hands its VMs back.
    const draining = new Set([...liveInfo.values()].filter((n) => n.draining === true).map((n) => n.id));
    const plan = planRegion({ rows, live, dueDown, assignments, draining });
    const tPlan = performance.now();

    const ready = [...liveInfo.values()];
    const usage = new Map<string, NodeUsage>();
    if (plan.place.length + plan.move.length > 0)
      for (const n of ready) usage.set(n.id, await store.allocations.usage(n.id));
    let snapshot = regionSnapshot(ready, usage);
    let placed = 0;
    let moved = 0;
    let assigned = 0;
    let unplaceable = 0;

    // Decide every placement of this pass on the snapshot (pure), then commit them in one
    // transaction (each unit alone when the batch fails), then write their assignments in parallel.
    const decisions: Decision[] = [];
    for (const vm of [...plan.place, ...plan.move]) {
      const spec = parseStoredSpec(vm.spec);
      const res = { cpus: spec.cpus, memoryMib: spec.memoryMib };
      const outcome = placeVm(snapshot, placementRequestOf(vm, res), this.#o.scheduler);
      if (outcome.status !== 'placed') {
        unplaceable++;
        this.#o.logger.warn(
          { vm: vm.name, reasons: outcome.reasons.map((r) => `${r.nodeId}: ${r.reason}`) },
          `leader: no node can take vm ${vm.name} now (retried)`,
        );
        continue;
      }
      const info = liveInfo.get(outcome.nodeId);
      if (!info) continue;
      const from = vm.node;
      const reason =
        from === null ? 'placed' : draining.has(from) ? `node ${from} is draining` : `node ${from} is down`;
      decisions.push({ vm, spec, res, target: outcome.nodeId, info, from, reason });
      snapshot = withAllocation(snapshot, outcome.nodeId, res);
    }
    const tDecide = performance.now();
    let deposed = false;
    // etcd side of one committed placement: the assignment (guarded by the term), then cleanup
    const announce = async (d: Decision): Promise<void> => {
      if (deposed || this.#term !== term) return;
      const { vm, from, target, reason } = d;
      try {
        if (from !== null)
          await removeAssignment(conn, this.#o.region, term, from, vm.id).catch(() => undefined);
        await writeAssignment(conn, this.#o.session, this.#o.region, term, { vm: vm.id, node: target });
        assigned++;
      } catch (err) {
        // the next leader assigns the rows left `scheduled` without an assignment
        this.#o.logger.warn({ vm: vm.name, err: (err as Error).message }, 'leader: assignment not written');
        deposed = true;
        return;
      }
      if (from === null) {
        placed++;
        await conn.kv
          .delete()
          .key(Keys.pending(vm.id))
          .catch(() => undefined);
        this.#o.publish?.('cluster.placed', { id: vm.id, name: vm.name, node: target, term: term.revision });
      } else {
        moved++;
        this.#o.logger.info(
          { vm: vm.name, from, to: target, reason },
          `leader: vm ${vm.name} moved ${from} → ${target} (${reason})`,
        );
        this.#o.publish?.('cluster.rescheduled', { id: vm.id, name: vm.name, from, to: target, reason });
      }
    };
    // chunks commit one after the other; each chunk's assignments go out while the next commits
    const announcing: Promise<void>[] = [];
    for (let i = 0; i < decisions.length && this.#term === term && !deposed; i += BATCH) {
      const chunk = decisions.slice(i, i + BATCH);
      const together = await store
        .transaction(async (tx) => {
          for (const d of chunk) await this.#apply(tx, d);
        })
        .then(
          () => true,
          () => false,
        );
      const committed: Decision[] = together ? chunk : [];
      if (!together)
        for (const d of chunk) {
          try {
            await store.transaction((tx) => this.#apply(tx, d));
            committed.push(d);
          } catch (err) {
            // a concurrent change (generation), a deleted row or a full node: seen again next pass
            this.#o.logger.debug({ vm: d.vm.name, err: (err as Error).message }, 'leader: placement skipped');
          }
        }
      announcing.push(inParallel(committed, ETCD_PARALLEL, announce));
    }
    const tDb = performance.now();
    await Promise.all(announcing);

    for (const vm of plan.assign) {
      if (this.#term !== term || vm.node === null) break;
      await writeAssignment(conn, this.#o.session, this.#o.region, term, { vm: vm.id, node: vm.node });
      assigned++;
    }
    for (const vm of plan.reassign) {
      if (this.#term !== term || vm.node === null) break;
      const last = this.#reassignedAt.get(vm.id) ?? -Infinity;
      if (now - last < 5000) continue;
      this.#reassignedAt.set(vm.id, now);
      await writeAssignment(conn, this.#o.session, this.#o.region, term, { vm: vm.id, node: vm.node });
      assigned++;
    }
    for (const a of plan.unassign) {
      if (this.#term !== term) break;
      await removeAssignment(conn, this.#o.region, term, a.node, a.vm).catch(() => undefined);
    }
    // Pending markers whose VM is placed, or whose row was already missing in the previous pass
    // (deleted while pending); a marker of a create newer than this pass's read is kept.
    const rowById = new Map(rows.map((r) => [r.id, r]));
    const markers = (await conn.kv.getAll().prefix(Keys.pendingPrefix).keys()).map((k) =>
      relativeKey(conn, k).slice(Keys.pendingPrefix.length),
    );
    const stale = markers.filter((id) => {
      const r = rowById.get(id);
      return r === undefined ? this.#unknownMarkers.has(id) : r.node !== null;
    });
    this.#unknownMarkers = new Set(markers.filter((id) => !rowById.has(id)));
    await inParallel(stale, ETCD_PARALLEL, async (id) => {
      await conn.kv
        .delete()
        .key(Keys.pending(id))
        .catch(() => undefined);
    });
    if (placed + moved > 0)
      this.#o.logger.info(
        {
          placed,
          moved,
          readMs: Math.round(tPlan - now),
          decideMs: Math.round(tDecide - tPlan),
          dbMs: Math.round(tDb - tDecide),
          etcdMs: Math.round(performance.now() - tDb),
        },
        `leader pass: placed ${placed}, moved ${moved}`,
      );
    return { placed, moved, assigned, unplaceable };
  }
}

/** Placements committed together in one transaction (small enough that nodes start early). */
const BATCH = 32;
/** Assignment writes in flight at once. */
const ETCD_PARALLEL = 16;

interface Decision {
  readonly vm: VmRecord;
  readonly spec: ReturnType<typeof parseStoredSpec>;
  readonly res: { readonly cpus: number; readonly memoryMib: number };
  readonly target: string;
  readonly info: NodeInfo;
  readonly from: string | null;
  readonly reason: string;
}

async function inParallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

async function allRows(store: Store): Promise<VmRecord[]> {
  const rows: VmRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.vms.list({ limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
    rows.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return rows;
}
