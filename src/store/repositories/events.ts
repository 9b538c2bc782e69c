// The audit log: one row per state change, in a monotonic sequence (id). Append in the same
// transaction as the change it records (store.transaction), so the log never disagrees with it.
import type { Kysely, Selectable } from 'kysely';
import { clampLimit, fromJsonObject, guard, toJson, type RepoContext } from '../codec.js';
import { cachedQuery } from '../cached-query.js';
import type { Database, EventFilters, EventRecord, EventsTable, NewEvent } from '../types.js';

function toRecord(r: Selectable<EventsTable>): EventRecord {
  return {
    id: r.id,
    at: r.at,
    type: r.type,
    resourceType: r.resource_type,
    resourceId: r.resource_id,
    nodeId: r.node_id,
    data: fromJsonObject(r.data),
  };
}

export class EventRepository {
  readonly #db: Kysely<Database>;
  readonly #ctx: RepoContext;

  constructor(db: Kysely<Database>, ctx: RepoContext) {
    this.#db = db;
    this.#ctx = ctx;
  }

  async append(e: NewEvent): Promise<EventRecord> {
    const row = await guard(this.#ctx, () =>
      this.#db
        .insertInto('events')
        .values({
          at: e.at ?? this.#ctx.now().toISOString(),
          type: e.type,
          resource_type: e.resourceType,
          resource_id: e.resourceId,
          node_id: e.nodeId ?? null,
          data: toJson(e.data ?? {}),
        })
        .returningAll()
        .executeTakeFirstOrThrow(),
    );
    return toRecord(row);
  }

  /** Appends several events in one statement, in order (their ids follow that order). */
  async appendMany(events: readonly NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    const at = this.#ctx.now().toISOString();
    const rows = events.map((e) => ({
      at: e.at ?? at,
      type: e.type,
      resource_type: e.resourceType,
      resource_id: e.resourceId,
      node_id: e.nodeId ?? null,
      data: toJson(e.data ?? {}),
    }));
    const insert = () => this.#db.insertInto('events').values(rows);
    await guard(this.#ctx, async () => {
      await (rows.length <= 8
        ? cachedQuery(
            this.#db,
            this.#ctx,
            `events.insert:${rows.length}`,
            insert,
            rows.flatMap((r) => Object.values(r)),
          )
        : insert().execute());
    });
  }

  /** Events in sequence order (oldest first), at most `limit` (default 100, max 1000); resume a
   *  watch with `afterId` = the last id seen. `newest: true` returns the last `limit` events instead
   *  (still oldest first). */
  async list(
    filters: EventFilters = {},
    options: { limit?: number; newest?: boolean } = {},
  ): Promise<readonly EventRecord[]> {
    const limit = clampLimit(options.limit);
    let q = this.#db.selectFrom('events').selectAll();
    if (filters.type !== undefined) q = q.where('type', '=', filters.type);
    if (filters.resourceType !== undefined) q = q.where('resource_type', '=', filters.resourceType);
    if (filters.resourceId !== undefined) q = q.where('resource_id', '=', filters.resourceId);
    if (filters.afterId !== undefined) q = q.where('id', '>', filters.afterId);
    const rows = await guard(this.#ctx, () =>
      q
        .orderBy('id', options.newest === true ? 'desc' : 'asc')
        .limit(limit)
        .execute(),
    );
    const records = rows.map(toRecord);
    return options.newest === true ? records.reverse() : records;
  }
}
