// Idempotency keys for create-style requests: the first request with a key claims it and records
// its outcome in the same transaction; a retry with the same key and body replays that outcome.
import type { Kysely } from 'kysely';
import { guard, toJson, type RepoContext } from '../codec.js';
import type { Database, IdempotencyClaim } from '../types.js';

export const DEFAULT_IDEMPOTENCY_TTL_SECONDS = 24 * 3600;

export class IdempotencyRepository {
  readonly #db: Kysely<Database>;
  readonly #ctx: RepoContext;

  constructor(db: Kysely<Database>, ctx: RepoContext) {
    this.#db = db;
    this.#ctx = ctx;
  }

  /**
   * Claims `key` in `scope` (e.g. `vm.create`) for a request whose body hashes to `requestHash`.
   * Call it inside store.transaction, before the work, and `complete` before the transaction ends:
   * a concurrent request with the same key then waits (PostgreSQL: on the key's row; SQLite: on
   * the write lock) and sees the finished outcome as a `replay`. An expired key is claimed afresh.
   */
  async claim(
    scope: string,
    key: string,
    requestHash: string,
    ttlSeconds = DEFAULT_IDEMPOTENCY_TTL_SECONDS,
  ): Promise<IdempotencyClaim> {
    return this.#ctx.atomically(async (db) => {
      const now = this.#ctx.now();
      await guard(this.#ctx, () =>
        db
          .deleteFrom('idempotency_keys')
          .where('scope', '=', scope)
          .where('key', '=', key)
          .where('expires_at', '<=', now.toISOString())
          .execute(),
      );
      const inserted = await guard(this.#ctx, () =>
        db
          .insertInto('idempotency_keys')
          .values({
            scope,
            key,
            request_hash: requestHash,
            resource_id: null,
            response: null,
            created_at: now.toISOString(),
            expires_at: new Date(now.getTime() + ttlSeconds * 1000).toISOString(),
          })
          .onConflict((oc) => oc.columns(['scope', 'key']).doNothing())
          .returning('key')
          .executeTakeFirst(),
      );
      if (inserted !== undefined) return { status: 'claimed' } as const;
      const row = await guard(this.#ctx, () =>
        db
          .selectFrom('idempotency_keys')
          .selectAll()
          .where('scope', '=', scope)
          .where('key', '=', key)
          .executeTakeFirstOrThrow(),
      );
      if (row.request_hash !== requestHash) return { status: 'mismatch' } as const;
      const response: unknown = row.response === null ? null : JSON.parse(row.response);
      return { status: 'replay', resourceId: row.resource_id, response } as const;
    });
  }

  /** Records the outcome of a claimed key (the created resource's id and the response body). */
  async complete(
    scope: string,
    key: string,
    resourceId: string | null,
    response: object | null,
  ): Promise<void> {
    await guard(this.#ctx, () =>
      this.#db
        .updateTable('idempotency_keys')
        .set({ resource_id: resourceId, response: response === null ? null : toJson(response) })
        .where('scope', '=', scope)
        .where('key', '=', key)
        .execute(),
    );
  }

  /** Deletes expired keys; returns how many. */
  async purgeExpired(): Promise<number> {
    const r = await guard(this.#ctx, () =>
      this.#db
        .deleteFrom('idempotency_keys')
        .where('expires_at', '<=', this.#ctx.now().toISOString())
        .executeTakeFirst(),
    );
    return Number(r.numDeletedRows);
  }
}
