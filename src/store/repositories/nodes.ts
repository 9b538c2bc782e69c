// Node records: what each node offers (capacity, labels, driver) and its last known status.
// In a region the live membership is in etcd; these rows are the durable copy the API lists.
import type { Kysely, Selectable } from 'kysely';
import { NotFoundError } from '../../errors.js';
import { fromJsonLabels, fromJsonObject, guard, toJson, type RepoContext } from '../codec.js';
import type { Database, NodeCapacity, NodeInput, NodeRecord, NodesTable } from '../types.js';

function toCapacity(text: string): NodeCapacity {
  const o = fromJsonObject(text);
  const n = (v: unknown) => (typeof v === 'number' ? v : 0);
  return { cpus: n(o.cpus), memoryMib: n(o.memoryMib), diskMib: n(o.diskMib) };
}

function toRecord(r: Selectable<NodesTable>): NodeRecord {
  return {
    id: r.id,
    name: r.name,
    address: r.address,
    status: r.status,
    driver: r.driver,
    capacity: toCapacity(r.capacity),
    labels: fromJsonLabels(r.labels),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    lastSeenAt: r.last_seen_at,
  };
}

export class NodeRepository {
  readonly #db: Kysely<Database>;
  readonly #ctx: RepoContext;

  constructor(db: Kysely<Database>, ctx: RepoContext) {
    this.#db = db;
    this.#ctx = ctx;
  }

  /** Inserts the node or replaces its fields (keeping created_at); marks it seen now. */
  async upsert(node: NodeInput): Promise<NodeRecord> {
    const at = this.#ctx.now().toISOString();
    const fields = {
      name: node.name ?? node.id,
      address: node.address,
      status: node.status,
      driver: node.driver,
      capacity: toJson(node.capacity),
      labels: toJson(node.labels ?? {}),
      updated_at: at,
      last_seen_at: at,
    };
    const row = await guard(this.#ctx, () =>
      this.#db
        .insertInto('nodes')
        .values({ id: node.id, ...fields, created_at: at })
        .onConflict((oc) => oc.column('id').doUpdateSet(fields))
        .returningAll()
        .executeTakeFirstOrThrow(),
    );
    return toRecord(row);
  }

  async get(id: string): Promise<NodeRecord | undefined> {
    const r = await guard(this.#ctx, () =>
      this.#db.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirst(),
    );
    return r === undefined ? undefined : toRecord(r);
  }

  async list(filters: { readonly status?: string } = {}): Promise<readonly NodeRecord[]> {
    let q = this.#db.selectFrom('nodes').selectAll();
    if (filters.status !== undefined) q = q.where('status', '=', filters.status);
    const rows = await guard(this.#ctx, () => q.orderBy('id').execute());
    return rows.map(toRecord);
  }

  /** Sets the status; throws NotFoundError for an unknown node. */
  async setStatus(id: string, status: string): Promise<NodeRecord> {
    const row = await guard(this.#ctx, () =>
      this.#db
        .updateTable('nodes')
        .set({ status, updated_at: this.#ctx.now().toISOString() })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirst(),
    );
    if (row === undefined) throw new NotFoundError('node', id);
    return toRecord(row);
  }

  /** Records that the node was seen now; returns false for an unknown node. */
  async touch(id: string): Promise<boolean> {
    const r = await guard(this.#ctx, () =>
      this.#db
        .updateTable('nodes')
        .set({ last_seen_at: this.#ctx.now().toISOString() })
        .where('id', '=', id)
        .executeTakeFirst(),
    );
    return Number(r.numUpdatedRows) > 0;
  }

  async delete(id: string): Promise<boolean> {
    const r = await guard(this.#ctx, () =>
      this.#db.deleteFrom('nodes').where('id', '=', id).executeTakeFirst(),
    );
    return Number(r.numDeletedRows) > 0;
  }
}
