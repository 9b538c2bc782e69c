// bench/vm-api: VM creates over real HTTP against a real node (the CLI in a child process, sim
// driver): creates/s and P50/P99 latency with 1,000 requests in flight, against two baselines of the
// same run (GET /health/live at the same concurrency: the HTTP stack alone; creates one at a time:
// the service without contention). Then real-QEMU create-to-running (median of a few) when QEMU is
// installed. Prints a table; writes bench/vm-api/results/latest.json.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { detectQemu } from '../../src/vm/drivers/qemu/driver.js';
import { waitForSerialLine } from '../../src/vm/drivers/qemu/serial.js';
import { GUEST_READY_LINE, ensureTestGuest } from '../../test/vm/guest.js';
import { startNodeProcess, type NodeProcess } from '../../test/vm-api/node-process.js';

const CONCURRENCY = Number(process.env['VM_BENCH_CONCURRENCY'] ?? 1000);
const ROUNDS = Number(process.env['VM_BENCH_ROUNDS'] ?? 3);
const QEMU_RUNS = Number(process.env['VM_BENCH_QEMU_RUNS'] ?? 3);
const here = fileURLToPath(new URL('.', import.meta.url));

interface Batch {
  readonly requests: number;
  readonly errors: number;
  readonly wallMs: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

function summarise(lat: number[], errors: number, wallMs: number): Batch {
  const s = [...lat].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    requests: lat.length,
    errors,
    wallMs: r(wallMs),
    perSecond: r((lat.length - errors) / (wallMs / 1000)),
    p50Ms: r(pct(s, 50)),
    p99Ms: r(pct(s, 99)),
    maxMs: r(s[s.length - 1] ?? 0),
  };
}

async function timed(f: () => Promise<Response>): Promise<{ ms: number; ok: boolean; status: number }> {
  const t = performance.now();
  try {
    const res = await f();
    await res.arrayBuffer();
    return { ms: performance.now() - t, ok: res.ok, status: res.status };
  } catch {
    return { ms: performance.now() - t, ok: false, status: 0 };
  }
}

function createReq(node: NodeProcess, name: string): () => Promise<Response> {
  return () =>
    fetch(`${node.url}/api/v1/vms`, {
      method: 'POST',
      headers: { authorization: `Bearer ${node.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name, cpus: 1, memoryMib: 64 }),
    });
}

async function burst(fs: (() => Promise<Response>)[]): Promise<Batch> {
  const t = performance.now();
  const rs = await Promise.all(fs.map(timed));
  const wall = performance.now() - t;
  const bad = rs.filter((r) => !r.ok);
  if (bad.length)
    console.error(`  ${bad.length} errors, statuses ${[...new Set(bad.map((b) => b.status))].join(',')}`);
  return summarise(
    rs.map((r) => r.ms),
    bad.length,
    wall,
  );
}

async function simBench(): Promise<Record<string, unknown>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'nc-bench-vm-'));
  const node = await startNodeProcess(dataDir, {
    'vm.driver': 'sim',
    'node.capacity.cpus': 1_000_000,
    'node.capacity.memory_mib': 1_000_000_000,
  });
  try {
    let seq = 0;
    // Warm-up (JIT, prepared statements, connection pool).
    await burst(Array.from({ length: 200 }, () => createReq(node, `warm-${seq++}`)));
    const health = await burst(
      Array.from({ length: CONCURRENCY }, () => () => fetch(`${node.url}/health/live`)),
    );
    const serialLat: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) serialLat.push((await timed(createReq(node, `seq-${seq++}`))).ms);
    const serial = summarise(serialLat, 0, performance.now() - t0);
    const rounds: Batch[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      rounds.push(await burst(Array.from({ length: CONCURRENCY }, () => createReq(node, `c-${seq++}`))));
    }
    const all = rounds.reduce(
      (a, b) => ({
        perSecond: a.perSecond + b.perSecond / rounds.length,
        p50Ms: Math.max(a.p50Ms, b.p50Ms),
        p99Ms: Math.max(a.p99Ms, b.p99Ms),
        errors: a.errors + b.errors,
      }),
      { perSecond: 0, p50Ms: 0, p99Ms: 0, errors: 0 },
    );
    return { concurrency: CONCURRENCY, rounds, healthBaseline: health, serialBaseline: serial, summary: all };
  } finally {
    await node.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function qemuBench(): Promise<Record<string, unknown>> {
  const d = await detectQemu('qemu-system-x86_64');
  if (d.status !== 'found') return { skipped: d.detail };
  const guest = await ensureTestGuest();
  const dataDir = mkdtempSync(join(tmpdir(), 'nc-bench-qemu-'));
  const node = await startNodeProcess(dataDir, {
    'vm.driver': 'qemu',
    'vm.accel': 'auto',
    'vm.stop_grace_seconds': 0,
    'node.capacity.cpus': 4,
    'node.capacity.memory_mib': 2048,
  });
  const toRunning: number[] = [];
  const toGuestReady: number[] = [];
  try {
    for (let i = 0; i < QEMU_RUNS; i++) {
      const t = performance.now();
      const res = await fetch(`${node.url}/api/v1/vms`, {
        method: 'POST',
        headers: { authorization: `Bearer ${node.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          name: `q-${i}`,
          cpus: 1,
          memoryMib: 128,
          kernel: guest.kernel,
          initrd: guest.initrd,
          cmdline: guest.cmdline,
        }),
      });
      const vm = (await res.json()) as { id: string; state: string };
      if (res.status !== 201 || vm.state !== 'running') throw new Error(`qemu create: ${JSON.stringify(vm)}`);
      toRunning.push(performance.now() - t);
      await waitForSerialLine(join(dataDir, 'vms', vm.id, 'serial.log'), new RegExp(GUEST_READY_LINE), {
        timeoutMs: 120_000,
      });
      toGuestReady.push(performance.now() - t);
      await fetch(`${node.url}/api/v1/vms/${vm.id}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${node.token}` },
      });
    }
  } finally {
    await node.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  return {
    runs: QEMU_RUNS,
    createToRunningMs: toRunning.map(Math.round),
    createToGuestReadyMs: toGuestReady.map(Math.round),
    medianCreateToRunningMs: Math.round(median(toRunning)),
    medianCreateToGuestReadyMs: Math.round(median(toGuestReady)),
  };
}

const sim = await simBench();
const qemu = await qemuBench();
const s = sim['summary'] as { perSecond: number; p50Ms: number; p99Ms: number; errors: number };
const h = sim['healthBaseline'] as Batch;
const q = sim['serialBaseline'] as Batch;
const rows: [string, string, string][] = [
  ['creates/s at ' + CONCURRENCY + ' concurrent (sim)', s.perSecond.toFixed(0), '≥ 2000'],
  ['  P50 / P99 latency (ms)', `${s.p50Ms} / ${s.p99Ms}`, 'P99 < 50'],
  ['  errors', String(s.errors), '0'],
  ['baseline: GET /health/live at same concurrency, req/s', h.perSecond.toFixed(0), ''],
  ['  P50 / P99 (ms)', `${h.p50Ms} / ${h.p99Ms}`, ''],
  ['baseline: creates one at a time, /s', q.perSecond.toFixed(0), ''],
  ['  P50 / P99 (ms)', `${q.p50Ms} / ${q.p99Ms}`, ''],
  ['ratio creates/s ÷ health req/s', (s.perSecond / h.perSecond).toFixed(3), ''],
  ['ratio creates/s concurrent ÷ sequential', (s.perSecond / q.perSecond).toFixed(2), ''],
  [
    'QEMU create-to-running, median ms',
    'skipped' in qemu ? `skipped: ${String(qemu['skipped'])}` : String(qemu['medianCreateToRunningMs']),
    '< 10000',
  ],
  ['QEMU create-to-guest-ready, median ms', String(qemu['medianCreateToGuestReadyMs'] ?? '-'), ''],
];
const w = Math.max(...rows.map((r) => r[0].length));
console.log(`${'metric'.padEnd(w)}  ${'value'.padStart(14)}  bar`);
for (const [k, v, b] of rows) console.log(`${k.padEnd(w)}  ${v.padStart(14)}  ${b}`);
const result = {
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
  sim,
  qemu,
};
writeFileSync(join(here, 'results/latest.json'), JSON.stringify(result, null, 2) + '\n');
console.log('wrote bench/vm-api/results/latest.json');
