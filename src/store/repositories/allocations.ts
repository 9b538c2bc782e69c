// Resource accounting: what each VM holds on each node. `reserve` checks and records in one
// serialised step per node, so concurrent creates can never overcommit a node.
import { sql } from 'kysely';
import type { Kysely, Selectable } from 'kysely';
import { guard, type RepoContext } from '../codec.js';
import { cachedQuery } from '../cached-query.js';
import type {
  AllocationRecord,
  AllocationRequest,
  AllocationsTable,
  Database,
  NodeCapacity,
  NodeUsage,
  ReserveResult,
} from '../types.js';

function toRecord(r: Selectable<AllocationsTable>): AllocationRecord {
  return {
    vmId: r.vm_id,
    nodeId: r.node_id,
    cpus: r.cpus,
    memoryMib: r.memory_mib,
    diskMib: r.disk_mib,
    createdAt: r.created_at,
  };
}

/** Pure: which resource, if any, does not fit. Checked in a stable order: cpus, memory, disk. */
export function firstShortfall(
  usage: NodeUsage,
  capacity: NodeCapacity,
  req: Required<Pick<AllocationRequest, 'cpus' | 'memoryMib' | 'diskMib'>>,
): Exclude<ReserveResult, { ok: true }> | undefined {
  const checks = [
    ['cpus', req.cpus, capacity.cpus - usage.cpus],
    ['memory_mib', req.memoryMib, capacity.memoryMib - usage.memoryMib],
    ['disk_mib', req.diskMib, capacity.diskMib - usage.diskMib],
  ] as const;
  for (const [what, requested, free] of checks) {
    if (requested > free) return { ok: false, what, requested, free: Math.max(0, free) };
  }
  return undefined;
}

export class AllocationRepository {
  readonly #db: Kysely<Database>;
  readonly #ctx: RepoContext;

  constructor(db: Kysely<Database>, ctx: RepoContext) {
    this.#db = db;
    this.#ctx = ctx;
  }

  /** What is allocated on a node (its running totals: one row read, whatever the number of VMs). */
  async usage(nodeId: string): Promise<NodeUsage> {
    return usageOn(this.#db, this.#ctx, nodeId);
  }

  /** The same figures summed from the allocations one by one: `usage` must always equal this. */
  async summedUsage(nodeId: string): Promise<NodeUsage> {
    return summedUsage(this.#db, this.#ctx, nodeId);
  }

  async list(
    filters: { readonly nodeId?: string; readonly vmId?: string } = {},
  ): Promise<readonly AllocationRecord[]> {
    let q = this.#db.selectFrom('allocations').selectAll();
    if (filters.nodeId !== undefined) q = q.where('node_id', '=', filters.nodeId);
    if (filters.vmId !== undefined) q = q.where('vm_id', '=', filters.vmId);
    const rows = await guard(this.#ctx, () => q.orderBy('created_at').orderBy('vm_id').execute());
    return rows.map(toRecord);
  }

  /**
   * Records the allocation if it fits in `capacity` (already multiplied by any overcommit ratio)
   * given everything else allocated on the node; returns which resource is short otherwise.
   * The VM row must exist (foreign key; insert the VM first in the same transaction). Runs in the
   * caller's transaction when called on `tx`, else in its own. Serialised per node: an advisory
   * transaction lock on PostgreSQL, the database write lock on SQLite. A second reservation of the
   * same VM on the same node is a ConflictError.
   */
  async reserve(req: AllocationRequest, capacity: NodeCapacity): Promise<ReserveResult> {
    const want = { cpus: req.cpus, memoryMib: req.memoryMib, diskMib: req.diskMib ?? 0 };
    return this.#ctx.atomically(async (db) => {
      if (this.#ctx.kind === 'postgresql') {
        await guard(this.#ctx, () =>
          sql`select pg_advisory_xact_lock(hashtextextended(${`novacron.allocations:${req.nodeId}`}, 0))`.execute(
            db,
          ),
        );
      }
      const usage = await usageOn(db, this.#ctx, req.nodeId);
      const short = firstShortfall(usage, capacity, want);
      if (short !== undefined) return short;
      const row = {
        vm_id: req.vmId,
        node_id: req.nodeId,
        cpus: want.cpus,
        memory_mib: want.memoryMib,
        disk_mib: want.diskMib,
        created_at: this.#ctx.now().toISOString(),
      };
      await guard(
        this.#ctx,
        () =>
          cachedQuery(
            db,
            this.#ctx,
            'allocations.insert',
            () => db.insertInto('allocations').values(row),
            Object.values(row),
          ),
        () => `vm ${req.vmId} already holds an allocation on node ${req.nodeId}`,
      );
      return { ok: true, allocation: toRecord(row) };
    });
  }

  /** Frees what the VM holds (on one node, or everywhere); returns how many allocations went. */
  async release(vmId: string, nodeId?: string): Promise<number> {
    let q = this.#db.deleteFrom('allocations').where('vm_id', '=', vmId);
    if (nodeId !== undefined) q = q.where('node_id', '=', nodeId);
    const r = await guard(this.#ctx, () => q.executeTakeFirst());
    return Number(r.numDeletedRows);
  }
}

/** A node's totals: one row of node_allocated (kept by triggers, see schema-migrations.ts v3). */
async function usageOn(db: Kysely<Database>, ctx: RepoContext, nodeId: string): Promise<NodeUsage> {
  const result = await guard(ctx, () =>
    cachedQuery(
      db,
      ctx,
      'node_allocated.usage',
      () =>
        db
          .selectFrom('node_allocated')
          .where('node_id', '=', nodeId)
          .select(['cpus', 'memory_mib', 'disk_mib', 'allocations']),
      [nodeId],
    ),
  );
  const r = result.rows[0];
  if (r === undefined) return { cpus: 0, memoryMib: 0, diskMib: 0, allocations: 0 };
  return {
    cpus: Number(r.cpus),
    memoryMib: Number(r.memory_mib),
    diskMib: Number(r.disk_mib),
    allocations: Number(r.allocations),
  };
}

/** The per-node sums computed from the allocations themselves (what node_allocated must equal);
 *  for audits and tests. */
export async function summedUsage(
  db: Kysely<Database>,
  ctx: RepoContext,
  nodeId: string,
): Promise<NodeUsage> {
  const r = await guard(ctx, () =>
    db
      .selectFrom('allocations')
      .where('node_id', '=', nodeId)
      .select((eb) => [
        eb.fn.coalesce(eb.fn.sum<number>('cpus'), sql.lit(0)).as('cpus'),
        eb.fn.coalesce(eb.fn.sum<number>('memory_mib'), sql.lit(0)).as('memory_mib'),
        eb.fn.coalesce(eb.fn.sum<number>('disk_mib'), sql.lit(0)).as('disk_mib'),
        eb.fn.countAll<number>().as('n'),
      ])
      .executeTakeFirstOrThrow(),
  );
  // PostgreSQL's sum() of bigint is numeric, which pg returns as a string.
  return {
    cpus: Number(r.cpus),
    memoryMib: Number(r.memory_mib),
    diskMib: Number(r.disk_mib),
    allocations: Number(r.n),
  };
}
