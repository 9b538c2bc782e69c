// Store benchmark: throughput and latency of a VM-create transaction (idempotency claim, VM insert,
// resource reservation, audit event, idempotency completion) at 1,000 concurrent requests, on SQLite
// and PostgreSQL, against a baseline doing the same statements with the bare driver (no query layer).
//   npm run bench:store      (needs PostgreSQL on 127.0.0.1:5432, trust auth, user postgres)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { openStore, type Store, type StoreConfig } from '../../src/store/index.js';

const N = Number(process.env.BENCH_STORE_N ?? 3000);
const CONCURRENCY = 1000;
const CAPACITY = { cpus: 1e9, memoryMib: 1e12, diskMib: 1e12 };
const NODE = 'bench-node';

interface Result {
  readonly dialect: string;
  readonly variant: string;
  readonly creates: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** Runs `n` calls of `fn` with at most `concurrency` in flight; returns per-call latencies (ms). */
async function drive(
  n: number,
  concurrency: number,
  fn: (i: number) => Promise<void>,
): Promise<{ ms: number; lat: number[] }> {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        const s = performance.now();
        await fn(i);
        lat.push(performance.now() - s);
      }
    }),
  );
  return { ms: performance.now() - t0, lat: lat.sort((a, b) => a - b) };
}

function summarise(dialect: string, variant: string, r: { ms: number; lat: number[] }): Result {
  return {
    dialect,
    variant,
    creates: r.lat.length,
    perSecond: Math.round((r.lat.length / r.ms) * 1000),
    p50Ms: +pct(r.lat, 50).toFixed(2),
    p99Ms: +pct(r.lat, 99).toFixed(2),
  };
}

async function storeCreates(store: Store, tag: string): Promise<{ ms: number; lat: number[] }> {
  return drive(N, CONCURRENCY, async (i) => {
    const id = randomUUID();
    const name = `${tag}-${i}`;
    await store.transaction(async (tx) => {
      const claim = await tx.idempotency.claim('vm.create', `${tag}-key-${i}`, 'h');
      if (claim.status !== 'claimed') throw new Error('unexpected replay');
      const vm = await tx.vms.insert({
        id,
        name,
        spec: { cpus: 1, memoryMib: 256 },
        desiredState: 'running',
        state: 'pending',
        node: NODE,
      });
      const r = await tx.allocations.reserve({ vmId: id, nodeId: NODE, cpus: 1, memoryMib: 256 }, CAPACITY);
      if (!r.ok) throw new Error('unexpected shortfall');
      await tx.events.append({ type: 'vm.created', resourceType: 'vm', resourceId: id, data: { name } });
      await tx.idempotency.complete('vm.create', `${tag}-key-${i}`, vm.id, { id: vm.id });
    });
  });
}

const SQL = {
  claim: `insert into idempotency_keys (scope, key, request_hash, resource_id, response, created_at, expires_at) values ($1,$2,$3,null,null,$4,$5) on conflict do nothing`,
  vm: `insert into vms (id, name, spec, labels, node_id, desired_state, state, restart_policy, generation, error, created_at, updated_at) values ($1,$2,$3,'{}',$4,'running','pending','never',1,null,$5,$6)`,
  usage: `select coalesce(sum(cpus),0) as c, coalesce(sum(memory_mib),0) as m, coalesce(sum(disk_mib),0) as d from allocations where node_id = $1`,
  alloc: `insert into allocations (vm_id, node_id, cpus, memory_mib, disk_mib, created_at) values ($1,$2,1,256,0,$3)`,
  event: `insert into events (at, type, resource_type, resource_id, node_id, data) values ($1,'vm.created','vm',$2,null,$3)`,
  complete: `update idempotency_keys set resource_id = $1, response = $2 where scope = $3 and key = $4`,
};
const sqlite = (q: string) => q.replace(/\$\d+/g, '?');

async function bareSqlite(file: string, tag: string): Promise<{ ms: number; lat: number[] }> {
  const db = new BetterSqlite3(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  const st = Object.fromEntries(Object.entries(SQL).map(([k, q]) => [k, db.prepare(sqlite(q))])) as Record<
    keyof typeof SQL,
    BetterSqlite3.Statement
  >;
  const create = db.transaction((i: number) => {
    const id = randomUUID();
    const at = new Date().toISOString();
    st.claim.run('vm.create', `${tag}-key-${i}`, 'h', at, at);
    st.vm.run(id, `${tag}-${i}`, JSON.stringify({ cpus: 1, memoryMib: 256 }), NODE, at, at);
    st.usage.get(NODE);
    st.alloc.run(id, NODE, at);
    st.event.run(at, id, JSON.stringify({ name: `${tag}-${i}` }));
    st.complete.run(id, JSON.stringify({ id }), 'vm.create', `${tag}-key-${i}`);
  });
  create.immediate(-1); // warm the statements (and fail fast on a schema mismatch)
  const r = await drive(N, CONCURRENCY, async (i) => {
    create.immediate(i);
  });
  db.close();
  return r;
}

async function barePostgres(config: StoreConfig, tag: string): Promise<{ ms: number; lat: number[] }> {
  const pool = new pg.Pool({
    host: config.host,
    port: config.port,
    user: config.user,
    database: config.database,
    max: config.poolSize,
  });
  pool.on('error', () => undefined);
  const r = await drive(N, CONCURRENCY, async (i) => {
    const c = await pool.connect();
    try {
      const id = randomUUID();
      const at = new Date().toISOString();
      await c.query('begin');
      await c.query(SQL.claim, ['vm.create', `${tag}-key-${i}`, 'h', at, at]);
      await c.query(SQL.vm, [id, `${tag}-${i}`, JSON.stringify({ cpus: 1, memoryMib: 256 }), NODE, at, at]);
      await c.query(`select pg_advisory_xact_lock(hashtextextended($1, 0))`, [
        `novacron.allocations:${NODE}`,
      ]);
      await c.query(SQL.usage, [NODE]);
      await c.query(SQL.alloc, [id, NODE, at]);
      await c.query(SQL.event, [at, id, JSON.stringify({ name: `${tag}-${i}` })]);
      await c.query(SQL.complete, [id, JSON.stringify({ id }), 'vm.create', `${tag}-key-${i}`]);
      await c.query('commit');
    } catch (err) {
      await c.query('rollback');
      throw err;
    } finally {
      c.release();
    }
  });
  await pool.end();
  return r;
}

const base: Omit<StoreConfig, 'type' | 'path' | 'database'> = {
  dataDir: '.',
  host: '127.0.0.1',
  port: 5432,
  user: 'postgres',
  password: '',
  poolSize: 10,
  ssl: false,
};

const results: Result[] = [];
const dir = mkdtempSync(join(tmpdir(), 'novacron-bench-store-'));
try {
  const file = join(dir, 'novacron.db');
  const s = await openStore({ ...base, type: 'sqlite', path: file, database: '' });
  results.push(summarise('sqlite', 'baseline: bare better-sqlite3', await bareSqlite(file, 'bare')));
  results.push(summarise('sqlite', 'NovaCron store', await storeCreates(s, 'store')));
  await s.close();

  const dbName = `novacron_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ host: base.host, port: base.port, user: base.user, database: 'postgres' });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  try {
    const config: StoreConfig = { ...base, type: 'postgresql', path: '', database: dbName };
    const p = await openStore(config);
    results.push(summarise('postgresql', 'baseline: bare pg (pool 10)', await barePostgres(config, 'bare')));
    results.push(summarise('postgresql', 'NovaCron store (pool 10)', await storeCreates(p, 'store')));
    await p.close();
  } finally {
    await admin.query(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const rows = results.map((r) => {
  const baseline = results.find((b) => b.dialect === r.dialect && b.variant.startsWith('baseline'));
  const ratio = baseline === undefined ? 1 : r.perSecond / baseline.perSecond;
  return { ...r, ratioToBaseline: +ratio.toFixed(3) };
});
console.log(`store: ${N} VM-create transactions at ${CONCURRENCY} concurrent, per dialect`);
console.log('| dialect | variant | creates/s | P50 ms | P99 ms | throughput vs baseline |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.dialect} | ${r.variant} | ${r.perSecond} | ${r.p50Ms} | ${r.p99Ms} | ${r.ratioToBaseline} |`,
  );
}
const out = join(new URL('.', import.meta.url).pathname, 'results');
mkdirSync(out, { recursive: true });
writeFileSync(
  join(out, 'latest.json'),
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        model: cpus()[0]?.model,
        memGiB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
      },
      n: N,
      concurrency: CONCURRENCY,
      results: rows,
    },
    null,
    2,
  )}\n`,
);
