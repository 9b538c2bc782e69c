// The Store: opens SQLite or PostgreSQL, waits for it within a deadline, applies schema migrations,
// and hands out the repositories, transactions and a live health check.
import { setTimeout as delay } from 'node:timers/promises';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { ComponentHealth } from '../boot/component.js';
import { UnavailableError, errorMessage } from '../errors.js';
import { mapDbError, type RepoContext } from './codec.js';
import {
  classifyDbError,
  describeDbCause,
  openPostgres,
  openSqlite,
  type OpenedDialect,
  type StoreConfig,
} from './dialect.js';
import { AllocationRepository } from './repositories/allocations.js';
import { BandwidthRepository } from './repositories/bandwidth.js';
import { EventRepository } from './repositories/events.js';
import { IdempotencyRepository } from './repositories/idempotency.js';
import { MigrationRepository } from './repositories/migrations.js';
import { NodeRepository } from './repositories/nodes.js';
import { VmRepository } from './repositories/vms.js';
import { runSchemaMigrations, type MigrationResult } from './schema-migrations.js';
import type { Database, DialectKind } from './types.js';

/** The repositories, bound either to the store (each call its own statement) or to a transaction. */
export interface StoreTx {
  readonly dialect: DialectKind;
  readonly vms: VmRepository;
  readonly nodes: NodeRepository;
  readonly allocations: AllocationRepository;
  /** VM migrations (live/cold moves), not schema migrations. */
  readonly migrations: MigrationRepository;
  readonly events: EventRepository;
  readonly bandwidth: BandwidthRepository;
  readonly idempotency: IdempotencyRepository;
}

export interface OpenStoreOptions {
  /** Clock for every timestamp the store writes. */
  readonly now?: () => Date;
  readonly logger?: Pick<Logger, 'info' | 'warn'>;
  /** Give up connecting after this long (ms). Default 30 000. */
  readonly connectTimeoutMs?: number;
  /** Aborts the connection attempts (the boot's signal). */
  readonly signal?: AbortSignal;
  /** Apply pending schema migrations (default true). */
  readonly migrate?: boolean;
  /** Longest a health probe may take before the database is reported down (ms). Default 2000. */
  readonly healthTimeoutMs?: number;
}

const RETRY_DELAY_MS = 200;

/** Causes that will not go away by retrying: report them at once. */
function isPermanent(err: unknown): boolean {
  const code =
    typeof err === 'object' && err !== null && 'code' in err ? (err as { code: unknown }).code : undefined;
  // 28P01 bad password, 28000 no pg_hba entry / role, 3D000 no such database, 42501 no privilege.
  return code === '28P01' || code === '28000' || code === '3D000' || code === '42501';
}

function unavailable(target: string, cause: unknown, hint?: string): UnavailableError {
  return new UnavailableError(`database unavailable: ${target}: ${describeDbCause(cause)}`, {
    cause,
    key: 'database',
    hint: hint ?? 'check database.host, database.port and that PostgreSQL is running and reachable',
  });
}

/**
 * Opens the configured database. PostgreSQL: retries the connection until `connectTimeoutMs`
 * (or `signal`) runs out, then throws UnavailableError `database unavailable: <host>:<port>: <cause>`;
 * permanent causes (authentication, missing database) are thrown at once. Then applies migrations.
 */
export async function openStore(config: StoreConfig, options: OpenStoreOptions = {}): Promise<Store> {
  const now = options.now ?? (() => new Date());
  const deadline = Date.now() + (options.connectTimeoutMs ?? 30_000);
  let opened: OpenedDialect;
  if (config.type === 'postgresql') {
    const window = Math.max(100, Math.min(3000, deadline - Date.now()));
    opened = openPostgres(
      config,
      (err) =>
        options.logger?.warn({ err: errorMessage(err) }, 'database connection lost; the pool will reconnect'),
      window,
    );
  } else {
    opened = openSqlite(config);
  }
  try {
    if (opened.kind === 'postgresql') await waitForPostgres(opened, deadline, options.signal);
    const store = new Store(opened, now, options.healthTimeoutMs ?? 2000);
    if (options.migrate !== false) {
      const result = await store.migrate();
      if (result.applied.length > 0) {
        options.logger?.info(
          { applied: result.applied, version: result.version },
          'database schema migrated',
        );
      }
    }
    return store;
  } catch (err) {
    await opened.destroy().catch(() => undefined);
    if (err instanceof UnavailableError) throw err;
    if (opened.kind === 'postgresql' && classifyDbError(err) === 'connection')
      throw unavailable(opened.target, err);
    throw err;
  }
}

async function waitForPostgres(
  opened: OpenedDialect,
  deadline: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  let last: unknown;
  for (;;) {
    try {
      await sql`select 1`.execute(opened.db);
      return;
    } catch (err) {
      last = err;
      if (isPermanent(err)) {
        throw unavailable(
          opened.target,
          err,
          'check database.user, database.password and database.database (create it with createdb if missing)',
        );
      }
    }
    if (signal?.aborted === true || Date.now() + RETRY_DELAY_MS >= deadline)
      throw unavailable(opened.target, last);
    try {
      await delay(RETRY_DELAY_MS, undefined, signal === undefined ? {} : { signal });
    } catch {
      throw unavailable(opened.target, last);
    }
  }
}

export class Store implements StoreTx {
  readonly dialect: DialectKind;
  /** `host:port` (PostgreSQL) or the SQLite file. */
  readonly target: string;
  readonly vms: VmRepository;
  readonly nodes: NodeRepository;
  readonly allocations: AllocationRepository;
  readonly migrations: MigrationRepository;
  readonly events: EventRepository;
  readonly bandwidth: BandwidthRepository;
  readonly idempotency: IdempotencyRepository;
  readonly #opened: OpenedDialect;
  readonly #now: () => Date;
  readonly #healthTimeoutMs: number;
  #probe: Promise<ComponentHealth> | undefined;
  /** SQL texts of hot statements, compiled once (codec.ts cachedQuery). */
  readonly #statements = new Map<string, string>();
  #schemaVersion = 0;
  #closed = false;

  /** Use openStore(); this constructor does no I/O. */
  constructor(opened: OpenedDialect, now: () => Date, healthTimeoutMs = 2000) {
    this.#opened = opened;
    this.#now = now;
    this.#healthTimeoutMs = healthTimeoutMs;
    this.dialect = opened.kind;
    this.target = opened.target;
    const repos = this.#bind(opened.db, false);
    this.vms = repos.vms;
    this.nodes = repos.nodes;
    this.allocations = repos.allocations;
    this.migrations = repos.migrations;
    this.events = repos.events;
    this.bandwidth = repos.bandwidth;
    this.idempotency = repos.idempotency;
  }

  /** The underlying Kysely instance, for queries the repositories do not cover. */
  get db(): Kysely<Database> {
    return this.#opened.db;
  }

  get schemaVersion(): number {
    return this.#schemaVersion;
  }

  #bind(db: Kysely<Database>, inTransaction: boolean): StoreTx {
    const ctx: RepoContext = {
      kind: this.#opened.kind,
      now: this.#now,
      target: this.#opened.target,
      statements: this.#statements,
      inTransaction,
      atomically: inTransaction ? (fn) => fn(db) : (fn) => this.#opened.db.transaction().execute(fn),
    };
    return {
      dialect: this.#opened.kind,
      vms: new VmRepository(db, ctx),
      nodes: new NodeRepository(db, ctx),
      allocations: new AllocationRepository(db, ctx),
      migrations: new MigrationRepository(db, ctx),
      events: new EventRepository(db, ctx),
      bandwidth: new BandwidthRepository(db, ctx),
      idempotency: new IdempotencyRepository(db, ctx),
    };
  }

  /**
   * Runs `fn` in one transaction: everything it does through `tx` commits together or not at all
   * (e.g. a VM state change and its audit event). A throw rolls back and is rethrown. Use only `tx`
   * inside `fn` — on SQLite the store's own repositories wait for the transaction to end.
   * SQLite transactions take the write lock at BEGIN; PostgreSQL ones run at READ COMMITTED, with
   * the repositories' conditional updates (generation, state) doing the concurrency control.
   */
  async transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    try {
      return await this.#opened.db.transaction().execute((trx) => fn(this.#bind(trx, true)));
    } catch (err) {
      throw mapDbError(err, this.#opened.target);
    }
  }

  /** Applies pending schema migrations (idempotent, safe concurrently; see schema-migrations.ts). */
  async migrate(): Promise<MigrationResult> {
    try {
      const result = await runSchemaMigrations(this.#opened.db, this.#opened.kind, this.#now);
      this.#schemaVersion = result.version;
      return result;
    } catch (err) {
      throw mapDbError(err, this.#opened.target);
    }
  }

  /** A live `select 1`: up with the backend in the detail, or down with the cause. Never throws;
   *  concurrent calls share one probe. Reports down after `healthTimeoutMs` if the server hangs. */
  health(): Promise<ComponentHealth> {
    this.#probe ??= this.#runProbe().finally(() => {
      this.#probe = undefined;
    });
    return this.#probe;
  }

  async #runProbe(): Promise<ComponentHealth> {
    if (this.#closed) return { status: 'down', detail: `${this.dialect} ${this.target}: closed` };
    const ac = new AbortController();
    const timeout = delay(this.#healthTimeoutMs, undefined, { signal: ac.signal }).then(
      () => {
        throw new Error(`no answer to a health query within ${this.#healthTimeoutMs} ms`);
      },
      () => undefined,
    );
    try {
      await Promise.race([this.#opened.probe(), timeout]);
      const pool = this.#opened.pool;
      const extra =
        pool === undefined ? '' : `, pool ${pool.totalCount - pool.idleCount}/${pool.totalCount} busy`;
      return {
        status: 'up',
        detail: `${this.dialect} ${this.target} (schema v${this.#schemaVersion}${extra})`,
      };
    } catch (err) {
      return { status: 'down', detail: `database unavailable: ${this.target}: ${describeDbCause(err)}` };
    } finally {
      ac.abort();
    }
  }

  /** Closes the pool or the file. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#opened.destroy();
  }
}
