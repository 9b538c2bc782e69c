// VM migration records (live and cold moves between nodes): state, phase and progress figures.
// Not to be confused with schema migrations (schema-migrations.ts).
import type { Kysely, Selectable, Updateable } from 'kysely';
import { ConflictError, NotFoundError } from '../../errors.js';
import { fromJsonObject, guard, toJson, type RepoContext } from '../codec.js';
import type {
  Database,
  MigrationFilters,
  MigrationPatch,
  MigrationRecord,
  MigrationsTable,
  NewMigration,
} from '../types.js';
import { ACTIVE_MIGRATION_STATES } from '../types.js';

function toRecord(r: Selectable<MigrationsTable>): MigrationRecord {
  return {
    id: r.id,
    vmId: r.vm_id,
    kind: r.kind === 'cold' ? 'cold' : 'live',
    sourceNode: r.source_node,
    targetNode: r.target_node,
    state: r.state,
    phase: r.phase,
    bytesSent: r.bytes_sent,
    bytesTotal: r.bytes_total,
    bytesRemaining: r.bytes_remaining,
    downtimeMs: r.downtime_ms,
    totalMs: r.total_ms,
    maxDowntimeMs: r.max_downtime_ms,
    progress: fromJsonObject(r.progress),
    error: r.error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    finishedAt: r.finished_at,
  };
}

export class MigrationRepository {
  readonly #db: Kysely<Database>;
  readonly #ctx: RepoContext;

  constructor(db: Kysely<Database>, ctx: RepoContext) {
    this.#db = db;
    this.#ctx = ctx;
  }

  /** Inserts a migration (default state `pending`, phase `prepare`). ConflictError when the VM
   *  already has an active (pending or running) migration: the database allows one at a time. */
  async insert(m: NewMigration): Promise<MigrationRecord> {
    const at = this.#ctx.now().toISOString();
    const row = {
      id: m.id,
      vm_id: m.vmId,
      kind: m.kind,
      source_node: m.sourceNode,
      target_node: m.targetNode,
      state: m.state ?? 'pending',
      phase: m.phase ?? 'prepare',
      bytes_sent: 0,
      bytes_total: m.bytesTotal ?? null,
      bytes_remaining: null,
      downtime_ms: null,
      total_ms: null,
      max_downtime_ms: m.maxDowntimeMs ?? null,
      progress: '{}',
      error: null,
      created_at: at,
      updated_at: at,
      finished_at: null,
    };
    await guard(
      this.#ctx,
      () => this.#db.insertInto('migrations').values(row).execute(),
      () => `vm ${m.vmId} already has an active migration`,
    );
    return toRecord(row);
  }

  async get(id: string): Promise<MigrationRecord | undefined> {
    const r = await guard(this.#ctx, () =>
      this.#db.selectFrom('migrations').selectAll().where('id', '=', id).executeTakeFirst(),
    );
    return r === undefined ? undefined : toRecord(r);
  }

  /** The VM's pending or running migration, if any. */
  async activeForVm(vmId: string): Promise<MigrationRecord | undefined> {
    const r = await guard(this.#ctx, () =>
      this.#db
        .selectFrom('migrations')
        .selectAll()
        .where('vm_id', '=', vmId)
        .where('state', 'in', [...ACTIVE_MIGRATION_STATES])
        .executeTakeFirst(),
    );
    return r === undefined ? undefined : toRecord(r);
  }

  /** Newest first. */
  async list(filters: MigrationFilters = {}, limit = 100): Promise<readonly MigrationRecord[]> {
    let q = this.#db.selectFrom('migrations').selectAll();
    if (filters.vmId !== undefined) q = q.where('vm_id', '=', filters.vmId);
    if (filters.state !== undefined) {
      q = q.where('state', 'in', typeof filters.state === 'string' ? [filters.state] : [...filters.state]);
    }
    if (filters.node !== undefined) {
      const node = filters.node;
      q = q.where((eb) => eb.or([eb('source_node', '=', node), eb('target_node', '=', node)]));
    }
    const rows = await guard(this.#ctx, () =>
      q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute(),
    );
    return rows.map(toRecord);
  }

  /** Updates progress, phase or state; NotFoundError for an unknown id. With `expectedState`, only
   *  while the migration is in that state (ConflictError otherwise): e.g. cancel only if running. */
  async update(id: string, patch: MigrationPatch, expectedState?: string): Promise<MigrationRecord> {
    const set: Updateable<MigrationsTable> = {
      updated_at: this.#ctx.now().toISOString(),
    };
    if (patch.state !== undefined) set.state = patch.state;
    if (patch.phase !== undefined) set.phase = patch.phase;
    if (patch.bytesSent !== undefined) set.bytes_sent = patch.bytesSent;
    if (patch.bytesTotal !== undefined) set.bytes_total = patch.bytesTotal;
    if (patch.bytesRemaining !== undefined) set.bytes_remaining = patch.bytesRemaining;
    if (patch.downtimeMs !== undefined) set.downtime_ms = patch.downtimeMs;
    if (patch.totalMs !== undefined) set.total_ms = patch.totalMs;
    if (patch.progress !== undefined) set.progress = toJson(patch.progress);
    if (patch.error !== undefined) set.error = patch.error;
    if (patch.finishedAt !== undefined) set.finished_at = patch.finishedAt;
    let q = this.#db.updateTable('migrations').set(set).where('id', '=', id);
    if (expectedState !== undefined) q = q.where('state', '=', expectedState);
    const row = await guard(
      this.#ctx,
      () => q.returningAll().executeTakeFirst(),
      () => `migration ${id}: the VM already has an active migration`,
    );
    if (row !== undefined) return toRecord(row);
    const current = await this.get(id);
    if (current === undefined) throw new NotFoundError('migration', id);
    throw new ConflictError(`migration ${id} is ${current.state}, not ${expectedState ?? '?'}`, {
      key: id,
      details: { expected: expectedState, actual: current.state },
    });
  }
}
