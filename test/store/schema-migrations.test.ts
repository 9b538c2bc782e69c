// Schema migrations against real databases: applied once, idempotent on re-run, safe when several
// clients (PostgreSQL pools, SQLite processes) migrate the same database at once, transactional.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { sql } from 'kysely';
import {
  openStore,
  runSchemaMigrations,
  SCHEMA_MIGRATIONS,
  type SchemaMigration,
} from '../../src/store/index.js';
import { baseConfig, createTestDatabase, missing, tempSqlitePath, usePostgres } from './fixtures.js';

const pgUp = await usePostgres();
const LATEST = Math.max(...SCHEMA_MIGRATIONS.map((m) => m.version));
const ALL = SCHEMA_MIGRATIONS.map((m) => m.version);
const pgSkip = pgUp ? false : missing('PostgreSQL (127.0.0.1:5432 or initdb/pg_ctl)');
const root = new URL('../..', import.meta.url).pathname;

describe('schema migrations (postgresql)', { skip: pgSkip }, () => {
  it('apply once when run twice', async () => {
    const db = await createTestDatabase();
    try {
      const a = await openStore(baseConfig({ type: 'postgresql', database: db.name }));
      assert.equal(a.schemaVersion, LATEST);
      const again = await a.migrate();
      assert.deepEqual(again, { applied: [], version: LATEST });
      await a.close();
      const b = await openStore(baseConfig({ type: 'postgresql', database: db.name }));
      assert.deepEqual(await b.migrate(), { applied: [], version: LATEST });
      const rows = await b.db.selectFrom('schema_migrations').selectAll().execute();
      assert.equal(rows.length, SCHEMA_MIGRATIONS.length);
      await b.close();
    } finally {
      await db.drop();
    }
  });

  it('apply exactly once when four clients boot against the same database at once', async () => {
    const db = await createTestDatabase();
    try {
      const config = baseConfig({ type: 'postgresql', database: db.name, poolSize: 2 });
      // Separate pools (separate sessions), all migrating concurrently.
      const stores = await Promise.all(
        Array.from({ length: 4 }, () => openStore(config, { migrate: false })),
      );
      const results = await Promise.all(stores.map((s) => s.migrate()));
      assert.deepEqual(results.map((r) => r.applied.length).sort(), [0, 0, 0, ALL.length]);
      for (const r of results) assert.equal(r.version, LATEST);
      const rows = await stores[0]!.db.selectFrom('schema_migrations').selectAll().execute();
      assert.deepEqual(
        rows.map((r) => r.version),
        ALL,
      );
      await Promise.all(stores.map((s) => s.close()));
    } finally {
      await db.drop();
    }
  });

  it('roll back a failing migration entirely', async () => {
    const db = await createTestDatabase();
    try {
      const store = await openStore(baseConfig({ type: 'postgresql', database: db.name }));
      const broken: SchemaMigration = {
        version: 99_999,
        name: 'broken',
        async up(tx) {
          await tx.schema.createTable('half_done').addColumn('id', 'integer').execute();
          await sql`select * from no_such_table`.execute(tx);
        },
      };
      await assert.rejects(
        runSchemaMigrations(store.db, 'postgresql', () => new Date(), [...SCHEMA_MIGRATIONS, broken]),
        /no_such_table/,
      );
      const tables = await sql<{
        n: number;
      }>`select count(*)::int as n from pg_tables where tablename = 'half_done'`.execute(store.db);
      assert.equal(tables.rows[0]?.n, 0);
      assert.deepEqual(await store.migrate(), { applied: [], version: LATEST });
      await store.close();
    } finally {
      await db.drop();
    }
  });

  it('refuse a database whose schema is newer than this build', async () => {
    const db = await createTestDatabase();
    try {
      const store = await openStore(baseConfig({ type: 'postgresql', database: db.name }));
      await store.db
        .insertInto('schema_migrations')
        .values({ version: 99, name: 'future', applied_at: new Date().toISOString() })
        .execute();
      await store.close();
      await assert.rejects(
        openStore(baseConfig({ type: 'postgresql', database: db.name })),
        new RegExp(`database schema version 99 is newer than this NovaCron \\(knows up to ${LATEST}\\)`),
      );
    } finally {
      await db.drop();
    }
  });
});

describe('schema migrations (sqlite)', () => {
  it('upgrade an older schema by applying only the versions it lacks', async () => {
    const tmp = tempSqlitePath();
    try {
      const s = await openStore(baseConfig({ path: tmp.path }), { migrate: false });
      const now = () => new Date();
      assert.deepEqual(await runSchemaMigrations(s.db, 'sqlite', now, SCHEMA_MIGRATIONS.slice(0, 1)), {
        applied: [1],
        version: 1,
      });
      // Allocations made before v3 are counted in the per-node totals v3 introduces.
      for (const [id, node, cpus] of [
        ['u1', 'n1', 2],
        ['u2', 'n1', 3],
        ['u3', 'n2', 1],
      ] as const) {
        await s.vms.insert({ id, name: id, spec: {}, desiredState: 'running', state: 'running' });
        await s.db
          .insertInto('allocations')
          .values({ vm_id: id, node_id: node, cpus, memory_mib: 64, disk_mib: 0, created_at: 'x' })
          .execute();
      }
      assert.deepEqual(await s.migrate(), { applied: ALL.slice(1), version: LATEST });
      assert.deepEqual(await s.allocations.usage('n1'), {
        cpus: 5,
        memoryMib: 128,
        diskMib: 0,
        allocations: 2,
      });
      assert.deepEqual(await s.allocations.usage('n2'), await s.allocations.summedUsage('n2'));
      await s.close();
    } finally {
      tmp.cleanup();
    }
  });

  it('apply once when run twice, with WAL and foreign keys on', async () => {
    const tmp = tempSqlitePath();
    try {
      const a = await openStore(baseConfig({ path: tmp.path }));
      assert.equal(a.schemaVersion, LATEST);
      assert.deepEqual(await a.migrate(), { applied: [], version: LATEST });
      const mode = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(a.db);
      assert.equal(mode.rows[0]?.journal_mode, 'wal');
      const fk = await sql<{ foreign_keys: number }>`pragma foreign_keys`.execute(a.db);
      assert.equal(fk.rows[0]?.foreign_keys, 1);
      await a.close();
      const b = await openStore(baseConfig({ path: tmp.path }));
      assert.equal(b.schemaVersion, LATEST);
      await b.close();
    } finally {
      tmp.cleanup();
    }
  });

  it('apply exactly once when three processes open the same file at once', async () => {
    const tmp = tempSqlitePath();
    const script = `
      import { openStore } from './src/store/index.ts';
      const s = await openStore({ type: 'sqlite', path: process.argv[1], dataDir: '.', host: '', port: 0,
        database: '', user: '', password: '', poolSize: 1, ssl: false }, { migrate: false });
      const r = await s.migrate();
      await s.close();
      process.stdout.write(JSON.stringify(r));`;
    try {
      const run = () =>
        new Promise<string>((resolve, reject) => {
          const p = spawn(
            process.execPath,
            ['--import', 'tsx', '--input-type=module', '-e', script, tmp.path],
            {
              cwd: root,
              stdio: ['ignore', 'pipe', 'pipe'],
            },
          );
          let out = '';
          let err = '';
          p.stdout.on('data', (b: Buffer) => (out += b.toString()));
          p.stderr.on('data', (b: Buffer) => (err += b.toString()));
          p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${err}`))));
        });
      const outs = await Promise.all([run(), run(), run()]);
      const results = outs.map((o) => JSON.parse(o) as { applied: number[]; version: number });
      assert.deepEqual(results.map((r) => r.applied.length).sort(), [0, 0, ALL.length]);
      const s = await openStore(baseConfig({ path: tmp.path }), { migrate: false });
      const rows = await s.db.selectFrom('schema_migrations').selectAll().execute();
      assert.equal(rows.length, ALL.length);
      await s.close();
    } finally {
      tmp.cleanup();
    }
  });
});
