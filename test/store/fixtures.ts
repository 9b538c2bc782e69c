// Test fixtures for the store: a fresh database on the machine's PostgreSQL (127.0.0.1:5432, trust
// auth) per test run, a throwaway PostgreSQL instance (initdb/pg_ctl as user postgres on a free
// port) for tests that stop the server, and a temp SQLite file.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, chmodSync, chownSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import pg from 'pg';
import type { StoreConfig } from '../../src/store/index.js';

export const SHARED_PG = { host: '127.0.0.1', port: 5432, user: 'postgres' } as const;

/** The PostgreSQL server tests use: the shared one, or a throwaway one when that is missing. */
const pgTarget: { host: string; port: number; user: string } = { ...SHARED_PG };

/**
 * Picks the PostgreSQL server for this test file: the machine's server on 127.0.0.1:5432 when it
 * answers, else a throwaway instance (initdb/pg_ctl) destroyed when the file's tests end. False when
 * neither is possible (the caller skips, or fails in CI through `missing`).
 */
export async function usePostgres(): Promise<boolean> {
  if (await sharedPgAvailable()) return true;
  if (pgBinDir() === undefined) return false;
  const server = await ThrowawayPostgres.create();
  pgTarget.port = server.port;
  after(() => server.destroy());
  return true;
}

export function baseConfig(over: Partial<StoreConfig> = {}): StoreConfig {
  return {
    type: 'sqlite',
    path: '',
    dataDir: '.novacron',
    host: pgTarget.host,
    port: pgTarget.port,
    database: 'novacron',
    user: pgTarget.user,
    password: '',
    poolSize: 5,
    ssl: false,
    ...over,
  };
}

/** Is the shared PostgreSQL server reachable? */
export async function sharedPgAvailable(): Promise<boolean> {
  const c = new pg.Client({ ...SHARED_PG, database: 'postgres', connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.end();
    return true;
  } catch {
    return false;
  }
}

/** Skip reason, or throw in CI, when a required server or binary is missing. */
export function missing(what: string): string {
  if (process.env.CI) throw new Error(`${what} is required in CI but missing`);
  return `${what} not available: skipped`;
}

/** Creates `novacron_test_<random>` on the test server (see usePostgres); returns its name and a dropper. */
export async function createTestDatabase(): Promise<{ name: string; drop: () => Promise<void> }> {
  const name = `novacron_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ ...pgTarget, database: 'postgres' });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  return {
    name,
    drop: async () => {
      const c = new pg.Client({ ...pgTarget, database: 'postgres' });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

export function tempSqlitePath(): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'novacron-store-'));
  return { path: join(dir, 'novacron.db'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export function pgBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = join(root, v, 'bin');
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl'))) return bin;
  }
  return undefined;
}

/** A PostgreSQL instance of our own, run as the unprivileged user `postgres`, that a test may stop. */
export class ThrowawayPostgres {
  readonly port: number;
  readonly #dir: string;
  readonly #bin: string;

  private constructor(bin: string, dir: string, port: number) {
    this.#bin = bin;
    this.#dir = dir;
    this.port = port;
  }

  static async create(): Promise<ThrowawayPostgres> {
    const bin = pgBinDir();
    if (bin === undefined) throw new Error('PostgreSQL binaries not found under /usr/lib/postgresql/*/bin');
    const dir = mkdtempSync(join(tmpdir(), 'novacron-pg-'));
    chmodSync(dir, 0o700);
    if (process.getuid?.() === 0) {
      // PostgreSQL refuses to run as root: hand the directory to the unprivileged user postgres.
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
      chownSync(dir, uid, gid);
    }
    const pgInstance = new ThrowawayPostgres(bin, dir, await freePort());
    pgInstance.#asPostgres('initdb', [
      '-D',
      join(dir, 'data'),
      '-A',
      'trust',
      '-U',
      'postgres',
      '--no-sync',
      '-E',
      'UTF8',
    ]);
    await pgInstance.start();
    return pgInstance;
  }

  #asPostgres(tool: string, args: string[]): void {
    const isRoot = process.getuid?.() === 0;
    const cmd = isRoot ? 'runuser' : join(this.#bin, tool);
    const argv = isRoot ? ['-u', 'postgres', '--', join(this.#bin, tool), ...args] : args;
    const r = spawnSync(cmd, argv, { encoding: 'utf8', cwd: this.#dir });
    if (r.status !== 0) throw new Error(`${tool} failed (${r.status}): ${r.stderr}${r.stdout}`);
  }

  async start(): Promise<void> {
    this.#asPostgres('pg_ctl', [
      '-D',
      join(this.#dir, 'data'),
      '-l',
      join(this.#dir, 'log'),
      '-w',
      '-o',
      `-p ${this.port} -k ${this.#dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
      'start',
    ]);
  }

  /** Fast shutdown: disconnects every client, like a crashed or stopped server. */
  async stop(): Promise<void> {
    this.#asPostgres('pg_ctl', ['-D', join(this.#dir, 'data'), '-w', '-m', 'fast', 'stop']);
  }

  async destroy(): Promise<void> {
    try {
      await this.stop();
    } catch {
      // already stopped
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
