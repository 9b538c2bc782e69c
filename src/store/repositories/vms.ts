// VM records: insert, lookups, filtered and paginated listing, and updates guarded by the
// generation number (optimistic concurrency: an update names the generation it read).
import { sql } from 'kysely';
import type { Kysely, Selectable, Updateable } from 'kysely';
import { ConflictError, NotFoundError } from '../../errors.js';
import {
  clampLimit,
  decodeCursor,
  encodeCursor,
  fromJsonLabels,
  fromJsonObject,
  guard,
  toJson,
  type RepoContext,
} from '../codec.js';
import { cachedQuery } from '../cached-query.js';
import type {
  Database,
  ListOptions,
  NewVm,
  Page,
  RestartPolicy,
  VmFilters,
  VmPatch,
  VmRecord,
  VmsTable,
} from '../types.js';

function toRecord(r: Selectable<VmsTable>): VmRecord {
  return {
    id: r.id,
    name: r.name,
    spec: fromJsonObject(r.spec),
    labels: fromJsonLabels(r.labels),
    node: r.node_id,
    desiredState: r.desired_state,
    state: r.state,
    restartPolicy: r.restart_policy === 'always' ? 'always' : 'never',
    generation: r.generation,
    error: r.error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export class VmRepository {
  readonly #db: Kysely<Database>;
  readonly #ctx: RepoContext;

  constructor(db: Kysely<Database>, ctx: RepoContext) {
    this.#db = db;
    this.#ctx = ctx;
  }

  /** Inserts a VM at generation 1 (or `vm.generation`). Throws ConflictError when the id or the name is taken. */
  async insert(vm: NewVm): Promise<VmRecord> {
    const at = this.#ctx.now().toISOString();
    const row = {
      id: vm.id,
      name: vm.name,
      spec: toJson(vm.spec),
      labels: toJson(vm.labels ?? {}),
      node_id: vm.node ?? null,
      desired_state: vm.desiredState,
      state: vm.state,
      restart_policy: (vm.restartPolicy ?? 'never') satisfies RestartPolicy,
      generation: vm.generation ?? 1,
      error: null,
      created_at: at,
      updated_at: at,
    };
    await guard(
      this.#ctx,
      () =>
        cachedQuery(
          this.#db,
          this.#ctx,
          'vms.insert',
          () => this.#db.insertInto('vms').values(row),
          Object.values(row),
        ),
      () => `vm already exists: ${vm.name}`,
    );
    return toRecord(row);
  }

  async get(id: string): Promise<VmRecord | undefined> {
    const r = await guard(this.#ctx, () =>
      this.#db.selectFrom('vms').selectAll().where('id', '=', id).executeTakeFirst(),
    );
    return r === undefined ? undefined : toRecord(r);
  }

  async getByName(name: string): Promise<VmRecord | undefined> {
    const r = await guard(this.#ctx, () =>
      this.#db.selectFrom('vms').selectAll().where('name', '=', name).executeTakeFirst(),
    );
    return r === undefined ? undefined : toRecord(r);
  }

  /** Like `get`, but a missing VM is a NotFoundError. */
  async require(id: string): Promise<VmRecord> {
    const vm = await this.get(id);
    if (vm === undefined) throw new NotFoundError('vm', id);
    return vm;
  }

  #filtered(filters: VmFilters | undefined) {
    let q = this.#db.selectFrom('vms');
    if (filters === undefined) return q;
    if (filters.state !== undefined) {
      const states = typeof filters.state === 'string' ? [filters.state] : [...filters.state];
      q = states.length === 0 ? q.where(sql.lit(false)) : q.where('state', 'in', states);
    }
    if (filters.desiredState !== undefined) q = q.where('desired_state', '=', filters.desiredState);
    if (filters.node !== undefined) {
      q = filters.node === null ? q.where('node_id', 'is', null) : q.where('node_id', '=', filters.node);
    }
    if (filters.restartPolicy !== undefined) q = q.where('restart_policy', '=', filters.restartPolicy);
    if (filters.namePrefix !== undefined && filters.namePrefix !== '') {
      // Range instead of LIKE: no escaping of % and _, and it uses the unique index on name.
      q = q.where('name', '>=', filters.namePrefix).where('name', '<', `${filters.namePrefix}\uffff`);
    }
    for (const [k, v] of Object.entries(filters.labels ?? {})) {
      q =
        this.#ctx.kind === 'postgresql'
          ? q.where(sql<boolean>`labels @> ${JSON.stringify({ [k]: v })}::jsonb`)
          : q.where(sql<boolean>`json_extract(labels, ${`$."${k.replaceAll('"', '""')}"`}) = ${v}`);
    }
    return q;
  }

  /** VMs in creation order (then id), `limit` per page (default 100, at most 1000). */
  async list(options: ListOptions<VmFilters> = {}): Promise<Page<VmRecord>> {
    const limit = clampLimit(options.limit);
    let q = this.#filtered(options.filters).selectAll();
    if (options.cursor !== undefined) {
      const c = decodeCursor(options.cursor);
      q = q.where((eb) =>
        eb.or([
          eb('created_at', '>', c.createdAt),
          eb.and([eb('created_at', '=', c.createdAt), eb('id', '>', c.id)]),
        ]),
      );
    }
    const rows = await guard(this.#ctx, () =>
      q
        .orderBy('created_at')
        .orderBy('id')
        .limit(limit + 1)
        .execute(),
    );
    const items = rows.slice(0, limit).map(toRecord);
    const last = items[items.length - 1];
    return rows.length > limit && last !== undefined
      ? { items, nextCursor: encodeCursor({ createdAt: last.createdAt, id: last.id }) }
      : { items };
  }

  async count(filters?: VmFilters): Promise<number> {
    const r = await guard(this.#ctx, () =>
      this.#filtered(filters)
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow(),
    );
    return Number(r.n);
  }

  /**
   * Applies `patch` if the VM is still at `expectedGeneration`, and returns the VM at the next
   * generation. Throws NotFoundError if it is gone, ConflictError (details: expected, actual) if
   * someone else updated it first — re-read and retry — or if a new name is taken.
   */
  async update(id: string, expectedGeneration: number, patch: VmPatch): Promise<VmRecord> {
    const set: Updateable<VmsTable> = {
      generation: expectedGeneration + 1,
      updated_at: this.#ctx.now().toISOString(),
    };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.spec !== undefined) set.spec = toJson(patch.spec);
    if (patch.labels !== undefined) set.labels = toJson(patch.labels);
    if (patch.node !== undefined) set.node_id = patch.node;
    if (patch.desiredState !== undefined) set.desired_state = patch.desiredState;
    if (patch.state !== undefined) set.state = patch.state;
    if (patch.restartPolicy !== undefined) set.restart_policy = patch.restartPolicy;
    if (patch.error !== undefined) set.error = patch.error;
    const row = await guard(
      this.#ctx,
      () =>
        this.#db
          .updateTable('vms')
          .set(set)
          .where('id', '=', id)
          .where('generation', '=', expectedGeneration)
          .returningAll()
          .executeTakeFirst(),
      () => `vm already exists: ${patch.name ?? id}`,
    );
    if (row !== undefined) return toRecord(row);
    const current = await this.get(id);
    if (current === undefined) throw new NotFoundError('vm', id);
    throw new ConflictError(
      `vm ${current.name} was modified concurrently (expected generation ${expectedGeneration}, found ${current.generation})`,
      { key: id, details: { expected: expectedGeneration, actual: current.generation }, retryable: true },
    );
  }

  /** Deletes the VM (its allocations and migrations go with it). With `expectedGeneration`, only at
   *  that generation (ConflictError otherwise). Returns false when it did not exist. */
  async delete(id: string, expectedGeneration?: number): Promise<boolean> {
    let q = this.#db.deleteFrom('vms').where('id', '=', id);
    if (expectedGeneration !== undefined) q = q.where('generation', '=', expectedGeneration);
    const r = await guard(this.#ctx, () => q.executeTakeFirst());
    if (Number(r.numDeletedRows) > 0) return true;
    if (expectedGeneration === undefined) return false;
    const current = await this.get(id);
    if (current === undefined) return false;
    throw new ConflictError(
      `vm ${current.name} was modified concurrently (expected generation ${expectedGeneration}, found ${current.generation})`,
      { key: id, details: { expected: expectedGeneration, actual: current.generation }, retryable: true },
    );
  }
}
