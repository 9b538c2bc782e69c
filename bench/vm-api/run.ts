// bench/vm-api: VM creates over real HTTP against a real node (the CLI in a child process, SQLite,
// sim driver). Load: a closed loop of VM_BENCH_CONCURRENCY (1,000) keep-alive connections, each
// sending its next request when the previous one is answered (undici Pool; see load.ts), so 1,000
// requests are in flight the whole time. Baselines in the same run: GET /health/live with the same
// loop (the HTTP stack alone, no auth, no database) and creates one at a time (the service without
// contention). Besides wall-clock figures it records CPU time per request of the server process
// (/proc/PID/stat) and of the load generator, which other jobs on the machine disturb far less.
// Then checks the database: one VM row and one allocation per 201, nothing else. Then real-QEMU
// create-to-running (median of a few) when QEMU is installed. Prints a table; writes
// bench/vm-api/results/latest.json.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { detectQemu } from '../../src/vm/drivers/qemu/driver.js';
import { waitForSerialLine } from '../../src/vm/drivers/qemu/serial.js';
import { GUEST_READY_LINE, ensureTestGuest } from '../../test/vm/guest.js';
import { openNodeStore, startNodeProcess } from '../../test/vm-api/node-process.js';
import { WebSocket } from 'undici';
import { LoadGenerator, type LoadRequest, type LoadResult } from './load.js';

const CONCURRENCY = Number(process.env['VM_BENCH_CONCURRENCY'] ?? 1000);
const ROUNDS = Number(process.env['VM_BENCH_ROUNDS'] ?? 3);
/** Creates per round (a closed loop with CONCURRENCY in flight). */
const PER_ROUND = Number(process.env['VM_BENCH_CREATES'] ?? 5 * CONCURRENCY);
const QEMU_RUNS = Number(process.env['VM_BENCH_QEMU_RUNS'] ?? 3);
const here = fileURLToPath(new URL('.', import.meta.url));

/** CPU time (user + system, ms) a process has used so far. */
function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the command: state(0) … utime(11) stime(12), in clock ticks (100 per second on Linux).
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

interface Measured extends LoadResult {
  /** Server CPU per request (µs), from /proc: tick resolution, 10 ms. */
  readonly serverCpuUsPerReq: number;
  /** Load generator CPU per request (µs). */
  readonly clientCpuUsPerReq: number;
  readonly loadavg1: number;
}

async function measured(pid: number, f: () => Promise<LoadResult>): Promise<Measured> {
  const s0 = processCpuMs(pid);
  const c0 = process.cpuUsage();
  const r = await f();
  const c = process.cpuUsage(c0);
  const s = processCpuMs(pid) - s0;
  return {
    ...r,
    serverCpuUsPerReq: Math.round((s * 1000) / r.requests),
    clientCpuUsPerReq: Math.round((c.user + c.system) / r.requests),
    loadavg1: Math.round(loadavg()[0]! * 100) / 100,
  };
}

async function simBench(): Promise<Record<string, unknown>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'nc-bench-vm-'));
  const node = await startNodeProcess(dataDir, {
    'vm.driver': 'sim',
    'node.capacity.cpus': 100_000_000,
    'node.capacity.memory_mib': 100_000_000_000,
  });
  const pid = node.cli.child.pid!;
  const origin = new URL(node.url).origin;
  const load = new LoadGenerator(origin, CONCURRENCY);
  const single = new LoadGenerator(origin, 1);
  const auth = { authorization: `Bearer ${node.token}`, 'content-type': 'application/json' };
  const create =
    (prefix: string) =>
    (i: number): LoadRequest => ({
      method: 'POST',
      path: '/api/v1/vms',
      headers: auth,
      body: JSON.stringify({ name: `${prefix}-${i}`, cpus: 1, memoryMib: 64 }),
    });
  const health = (): LoadRequest => ({ method: 'GET', path: '/health/live' });
  const is = (code: number) => (status: number) => status === code;
  let created = 0;
  const count = (r: LoadResult) => {
    created += r.requests - r.errors;
    return r;
  };
  const loadStart = loadavg().map((x) => Math.round(x * 100) / 100);
  try {
    process.stdout.write(`sim: opening ${CONCURRENCY} connections, warming up\n`);
    await load.warm(health);
    count(await load.run(2 * CONCURRENCY, create('warm'), is(201)));
    await load.run(2 * CONCURRENCY, health, is(200));
    process.stdout.write('sim: baseline GET /health/live\n');
    const healthBaseline = await measured(pid, () => load.run(10 * CONCURRENCY, health, is(200)));
    process.stdout.write('sim: baseline creates one at a time\n');
    const serialBaseline = await measured(pid, async () =>
      count(await single.run(300, create('seq'), is(201))),
    );
    const rounds: Measured[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      process.stdout.write(`sim: round ${r + 1}/${ROUNDS}: ${PER_ROUND} creates, ${CONCURRENCY} in flight\n`);
      rounds.push(
        await measured(pid, async () => count(await load.run(PER_ROUND, create(`c${r}`), is(201)))),
      );
    }
    // One more round with a dashboard-like /ws subscriber (vm. events): the cost of publishing, and
    // a check that every state change of every create reaches it (3 per create).
    process.stdout.write(`sim: round with a /ws subscriber: ${PER_ROUND} creates\n`);
    const wsUrl = `${node.url.replace(/^http/, 'ws')}/ws?types=vm.&token=${encodeURIComponent(node.token)}`;
    const ws = new WebSocket(wsUrl);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () => reject(new Error(`cannot open ${node.url}/ws`)));
    });
    let wsEvents = 0;
    const want = 3 * PER_ROUND;
    let seenAll!: () => void;
    const allSeen = new Promise<void>((resolve) => (seenAll = resolve));
    ws.addEventListener('message', (m) => {
      const e = JSON.parse(String(m.data)) as { type: string; data: { name?: string } };
      if (e.type === 'vm.state' && e.data.name?.startsWith('ws-') === true && ++wsEvents === want) seenAll();
    });
    const withWs = await measured(pid, async () => count(await load.run(PER_ROUND, create('ws'), is(201))));
    await Promise.race([allSeen, new Promise((r) => setTimeout(r, 30_000))]);
    ws.close();
    if (wsEvents !== want) throw new Error(`/ws subscriber got ${wsEvents} vm.state events, want ${want}`);
    const mean = (k: keyof Measured) => rounds.reduce((a, b) => a + (b[k] as number), 0) / rounds.length;
    const summary = {
      perSecond: Math.round(mean('perSecond')),
      p50Ms: Math.max(...rounds.map((r) => r.p50Ms)),
      p99Ms: Math.max(...rounds.map((r) => r.p99Ms)),
      meanMs: Math.round(mean('meanMs')),
      errors: rounds.reduce((a, b) => a + b.errors, 0),
      serverCpuUsPerCreate: Math.round(mean('serverCpuUsPerReq')),
      clientCpuUsPerCreate: Math.round(mean('clientCpuUsPerReq')),
    };
    await load.close();
    await single.close();
    await node.stop();
    // Every 201 is one VM row holding one allocation; no other rows.
    const store = await openNodeStore(dataDir);
    let integrity: Record<string, unknown>;
    try {
      const vms = await store.vms.count();
      const running = await store.vms.count({ state: 'running' });
      const allocs = await store.allocations.list();
      const cpusHeld = allocs.reduce((a, b) => a + b.cpus, 0);
      integrity = { created, vms, running, allocations: allocs.length, cpusHeld };
      if (vms !== created || running !== created || allocs.length !== created || cpusHeld !== created)
        throw new Error(`integrity check failed: ${JSON.stringify(integrity)}`);
    } finally {
      await store.close();
    }
    return {
      concurrency: CONCURRENCY,
      createsPerRound: PER_ROUND,
      loadGenerator: `undici ${CONCURRENCY}-connection keep-alive Pool, closed loop, separate process`,
      loadavgStart: loadStart,
      loadavgEnd: loadavg().map((x) => Math.round(x * 100) / 100),
      rounds,
      withWsSubscriber: { ...withWs, wsEvents },
      healthBaseline,
      serialBaseline,
      summary,
      integrity,
    };
  } finally {
    await load.close().catch(() => undefined);
    await single.close().catch(() => undefined);
    await node.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function qemuBench(): Promise<Record<string, unknown>> {
  if (QEMU_RUNS <= 0) return { skipped: 'VM_BENCH_QEMU_RUNS=0' };
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
interface Summary {
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  errors: number;
  serverCpuUsPerCreate: number;
  clientCpuUsPerCreate: number;
}
const s = sim['summary'] as Summary;
const h = sim['healthBaseline'] as Measured;
const q = sim['serialBaseline'] as Measured;
const sub = sim['withWsSubscriber'] as Measured & { wsEvents: number };
const rows: [string, string, string][] = [
  [`creates/s at ${CONCURRENCY} in flight (sim)`, s.perSecond.toFixed(0), '≥ 2000'],
  ['  P50 / P99 latency (ms), worst round', `${s.p50Ms} / ${s.p99Ms}`, 'P99 < 50'],
  [`  Little's law: ${CONCURRENCY} / throughput (ms)`, (CONCURRENCY / (s.perSecond / 1000)).toFixed(0), ''],
  ['  errors', String(s.errors), '0'],
  ['  server / client CPU per create (µs)', `${s.serverCpuUsPerCreate} / ${s.clientCpuUsPerCreate}`, ''],
  [
    'creates/s with a /ws subscriber (vm.), P99 ms',
    `${sub.perSecond.toFixed(0)}, ${sub.p99Ms}`,
    `${sub.wsEvents} events`,
  ],
  ['  server CPU per create (µs)', String(sub.serverCpuUsPerReq), ''],
  ['baseline: GET /health/live, same loop, req/s', h.perSecond.toFixed(0), ''],
  ['  P50 / P99 (ms)', `${h.p50Ms} / ${h.p99Ms}`, ''],
  ['  server / client CPU per request (µs)', `${h.serverCpuUsPerReq} / ${h.clientCpuUsPerReq}`, ''],
  ['baseline: creates one at a time, /s', q.perSecond.toFixed(0), ''],
  ['  P50 / P99 (ms)', `${q.p50Ms} / ${q.p99Ms}`, ''],
  ['ratio creates/s ÷ health req/s', (s.perSecond / h.perSecond).toFixed(3), ''],
  ['ratio server CPU per create ÷ per health', (s.serverCpuUsPerCreate / h.serverCpuUsPerReq).toFixed(2), ''],
  [
    'load average at start / end (1 min)',
    `${String((sim['loadavgStart'] as number[])[0])} / ${String((sim['loadavgEnd'] as number[])[0])}`,
    '',
  ],
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
