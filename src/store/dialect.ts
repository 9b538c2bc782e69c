// Builds the Kysely instance for SQLite (better-sqlite3) or PostgreSQL (pg pool), with the settings
// both dialects need to behave the same way (see types.ts), and classifies driver errors.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { CompiledQuery, Kysely, PostgresDialect, SqliteDialect, SqliteDriver, sql } from 'kysely';
import type { DatabaseConnection, Driver, SqliteDatabase } from 'kysely';
import type { Database, DialectKind } from './types.js';

/** The database settings the store reads (the `database` config section plus the data dir). */
export interface StoreConfig {
  readonly type: DialectKind;
  /** SQLite file; empty: `<dataDir>/novacron.db`. `:memory:` is accepted for tests. */
  readonly path: string;
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
  readonly poolSize: number;
  readonly ssl: boolean;
}

export interface OpenedDialect {
  readonly db: Kysely<Database>;
  readonly kind: DialectKind;
  /** `host:port` for PostgreSQL, the file path for SQLite: what operators see in messages. */
  readonly target: string;
  /** PostgreSQL pool (for its events and counters); undefined for SQLite. */
  readonly pool?: pg.Pool;
  /** Runs `select 1` on a path of its own where there is one (PostgreSQL: a one-connection pool
   *  beside the main one), so that a busy main pool is not mistaken for a dead server. */
  probe(): Promise<void>;
  /** Closes everything (the Kysely instance and any probe pool). */
  destroy(): Promise<void>;
}

/** SQLite driver whose transactions take the write lock up front (`BEGIN IMMEDIATE`), so that two
 *  processes on one file queue on busy_timeout instead of failing a lock upgrade with SQLITE_BUSY. */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: ConstructorParameters<typeof SqliteDialect>[0];
  constructor(config: ConstructorParameters<typeof SqliteDialect>[0]) {
    super(config);
    this.#config = config;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
}

/** Kysely prepares every statement afresh; SQLite parsing and planning then dominate small
 *  queries. Repositories issue a few dozen distinct SQL texts, so a bounded cache of prepared
 *  statements (better-sqlite3 statements are reusable) removes that cost. */
export function cachingSqliteDatabase(database: BetterSqlite3.Database, max = 256): SqliteDatabase {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    prepare(text: string) {
      let stmt = cache.get(text);
      if (stmt === undefined) {
        stmt = database.prepare(text);
        cache.set(text, stmt);
        if (cache.size > max) {
          const oldest = cache.keys().next();
          if (oldest.done !== true) cache.delete(oldest.value);
        }
      }
      return stmt;
    },
    close() {
      cache.clear();
      database.close();
    },
  };
}

export function sqlitePath(config: Pick<StoreConfig, 'path' | 'dataDir'>): string {
  if (config.path === ':memory:') return config.path;
  return resolve(config.path === '' ? `${config.dataDir}/novacron.db` : config.path);
}

export function openSqlite(config: Pick<StoreConfig, 'path' | 'dataDir'>): OpenedDialect {
  const file = sqlitePath(config);
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const database = new BetterSqlite3(file);
  // WAL: readers never block the writer; NORMAL sync is durable across process crashes in WAL mode.
  database.pragma('journal_mode = WAL');
  database.pragma('synchronous = NORMAL');
  database.pragma('busy_timeout = 5000');
  database.pragma('foreign_keys = ON');
  const db = new Kysely<Database>({
    dialect: new ImmediateSqliteDialect({ database: cachingSqliteDatabase(database) }),
  });
  return {
    db,
    kind: 'sqlite',
    target: file,
    probe: async () => {
      await sql`select 1`.execute(db);
    },
    destroy: () => db.destroy(),
  };
}

const PG_INT8 = 20;
const PG_JSON = 114;
const PG_JSONB = 3802;
const PG_TIMESTAMPTZ = 1184;

/** Per-pool type parsers (pg's global parsers are left alone): int8 → number, json/jsonb → raw
 *  text (parsed by the repositories, as for SQLite), timestamptz → ISO-8601 string. */
const pgTypeParsers: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === PG_INT8) return (v: string) => Number(v);
    if (oid === PG_JSON || oid === PG_JSONB) return (v: string) => v;
    if (oid === PG_TIMESTAMPTZ) {
      const parseDate = pg.types.getTypeParser(PG_TIMESTAMPTZ, 'text') as (v: string) => Date;
      return (v: string) => parseDate(v).toISOString();
    }
    return format === undefined ? pg.types.getTypeParser(oid) : pg.types.getTypeParser(oid, format);
  }) as pg.CustomTypesConfig['getTypeParser'],
};

export function openPostgres(
  config: Pick<StoreConfig, 'host' | 'port' | 'database' | 'user' | 'password' | 'poolSize' | 'ssl'>,
  onPoolError: (err: Error) => void,
  connectTimeoutMs = 3000,
): OpenedDialect {
  // pg-pool's connectionTimeoutMillis also bounds the wait for a free pooled client, so 1,000
  // concurrent requests on a pool of 10 would fail as "timeout exceeded when trying to connect".
  // Bound only the TCP/startup handshake, per client; waiting in the pool's queue is unbounded.
  class BoundedConnectClient extends pg.Client {
    constructor(clientConfig?: string | pg.ClientConfig) {
      super(
        typeof clientConfig === 'object'
          ? { ...clientConfig, connectionTimeoutMillis: connectTimeoutMs }
          : clientConfig,
      );
    }
  }
  const poolOptions: pg.PoolConfig = {
    Client: BoundedConnectClient,
    host: config.host,
    port: config.port,
    database: config.database,
    user: config.user,
    ...(config.password === '' ? {} : { password: config.password }),
    max: config.poolSize,
    ssl: config.ssl,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    types: pgTypeParsers,
    application_name: 'novacron',
  };
  const pool = new pg.Pool(poolOptions);
  // An idle client whose server went away emits 'error' on the pool; unhandled, it would crash the
  // process. The pool drops that client and later queries open fresh connections: that is recovery.
  pool.on('error', onPoolError);
  const probePool = new pg.Pool({ ...poolOptions, max: 1, application_name: 'novacron-health' });
  probePool.on('error', () => undefined);
  // A client that is checked out when the server goes away emits 'error' too, and pg-pool only
  // listens on idle ones: without this, a server restart during a query is an uncaught exception.
  // The query itself still rejects, and the pool discards the client on release (not queryable).
  for (const p of [pool, probePool]) {
    p.on('connect', (client) => {
      client.on('error', () => undefined);
    });
  }
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    kind: 'postgresql',
    target: `${config.host}:${config.port}`,
    pool,
    probe: async () => {
      await probePool.query('select 1');
    },
    destroy: async () => {
      await Promise.all([db.destroy(), probePool.end()]);
    },
  };
}

/** Error kinds the store reacts to; everything else is passed through. */
export type DbErrorKind = 'unique' | 'foreign_key' | 'connection' | 'other';

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up / shutting down)
  '08000',
  '08001',
  '08003',
  '08006',
]);

const CONNECTION_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error',
  'Connection ended',
  'connect ECONNREFUSED',
  'terminating connection',
];

function codeOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const c = (err as { code: unknown }).code;
    if (typeof c === 'string') return c;
  }
  return undefined;
}

/** Classifies a driver error (pg or better-sqlite3). Pure. */
export function classifyDbError(err: unknown): DbErrorKind {
  const code = codeOf(err);
  if (code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    return 'unique';
  }
  if (code === '23503' || code === 'SQLITE_CONSTRAINT_FOREIGNKEY') return 'foreign_key';
  if (code !== undefined && CONNECTION_CODES.has(code)) return 'connection';
  if (err instanceof AggregateError && err.errors.some((e) => classifyDbError(e) === 'connection')) {
    return 'connection';
  }
  const message = err instanceof Error ? err.message : '';
  if (CONNECTION_MESSAGES.some((m) => message.includes(m))) return 'connection';
  return 'other';
}

/** A short cause for `database unavailable: <target>: <cause>`. */
export function describeDbCause(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return describeDbCause(err.errors[0]);
  const code = codeOf(err);
  const message = err instanceof Error && err.message !== '' ? err.message : (code ?? String(err));
  return message;
}
