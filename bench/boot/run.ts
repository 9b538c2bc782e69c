// bench/boot — how fast a node is ready, and what parallel boot buys.
//   1. process start -> ready of the real CLI (dist/) on the embedded defaults, median of N runs,
//      with parallel_execution true and false in the same run;
//   2. the orchestrator on a component graph shaped like a full node with realistic I/O waits,
//      parallel vs sequential, against the critical-path bound (the best any parallel boot can do).
// Run: npm run bench:boot  (builds first). Writes bench/boot/results/latest.json.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Registry } from 'prom-client';
import { BootOrchestrator } from '../../src/boot/orchestrator.js';
import { criticalPathMs } from '../../src/boot/plan.js';
import type { BootContext, BootPhase, Component } from '../../src/boot/component.js';
import { EventBus } from '../../src/boot/events.js';
import { defaultConfig } from '../../src/config/defaults.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RUNS = Number(process.env.BENCH_RUNS ?? 9);

interface StartSample {
  wallMs: number;
  sinceProcessStartMs: number;
  bootMs: number;
}

/** Makes sure the PostgreSQL database the `servers` runs use exists (machine's server, trust auth). */
async function ensureBenchDatabase(name: string): Promise<boolean> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' });
  try {
    await client.connect();
    const r = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (r.rowCount === 0) await client.query(`create database ${name}`);
    return true;
  } catch (err) {
    console.warn(
      `PostgreSQL on 127.0.0.1:5432 not usable, skipping the servers case: ${(err as Error).message}`,
    );
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const SERVERS_DB = 'novacron_bench_boot';
const SERVER_FLAGS = [
  '--set',
  'database.type=postgresql',
  '--set',
  `database.database=${SERVERS_DB}`,
  '--set',
  'cache.type=redis',
  '--set',
  'cache.address=127.0.0.1:6379',
];

async function startOnce(parallel: boolean, extra: readonly string[] = []): Promise<StartSample> {
  const dataDir = mkdtempSync(join(tmpdir(), 'nc-bench-boot-'));
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [
      'bin/novacron.js',
      'start',
      '--data-dir',
      dataDir,
      '--set',
      'api.rest_port=0',
      '--set',
      'api.grpc_port=0',
      '--set',
      'dwcp.listen_port=0',
      '--set',
      `initialization.parallel_execution=${parallel}`,
      ...extra,
    ],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NOVACRON_SYSTEM__LOG_FORMAT: 'json' },
    },
  );
  let buf = '';
  try {
    return await new Promise<StartSample>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        buf += chunk.toString();
        for (const line of buf.split('\n')) {
          if (!line.includes('"msg":"ready in')) continue;
          const wallMs = performance.now() - t0;
          const rec = JSON.parse(line) as { sinceProcessStartMs: number; bootMs: number };
          resolve({ wallMs, sinceProcessStartMs: rec.sinceProcessStartMs, bootMs: rec.bootMs });
          return;
        }
      });
      child.stderr.on('data', (chunk: Buffer) => (buf += chunk.toString()));
      child.once('exit', (code) => reject(new Error(`novacron exited ${code} before ready:\n${buf}`)));
    });
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/**
 * The shape of a full node (the seed's Init v2 graph), with I/O waits typical of each component
 * measured or expected on these machines: PostgreSQL connect + migrations, Redis connect, TLS
 * material, QEMU probe, gRPC connect to the ML service, listeners.
 */
const SYNTHETIC: { name: string; phase: BootPhase; deps: string[]; ms: number }[] = [
  { name: 'environment', phase: 'pre', deps: [], ms: 25 },
  { name: 'data-dir', phase: 'pre', deps: [], ms: 3 },
  { name: 'log-file', phase: 'pre', deps: ['data-dir'], ms: 5 },
  { name: 'resources', phase: 'pre', deps: ['data-dir'], ms: 10 },
  { name: 'security', phase: 'core', deps: ['data-dir'], ms: 40 },
  { name: 'database', phase: 'core', deps: ['security', 'resources'], ms: 120 },
  { name: 'cache', phase: 'core', deps: ['security', 'resources'], ms: 30 },
  { name: 'network', phase: 'core', deps: ['resources', 'environment'], ms: 20 },
  { name: 'vm-driver', phase: 'core', deps: ['resources'], ms: 150 },
  { name: 'dwcp', phase: 'core', deps: ['network', 'security'], ms: 60 },
  { name: 'scheduler', phase: 'service', deps: ['database'], ms: 15 },
  { name: 'vms', phase: 'service', deps: ['database', 'vm-driver', 'scheduler', 'cache'], ms: 40 },
  { name: 'ml-engine', phase: 'service', deps: ['network'], ms: 80 },
  { name: 'monitoring', phase: 'service', deps: ['resources'], ms: 20 },
  { name: 'api', phase: 'service', deps: ['vms', 'security', 'dwcp'], ms: 50 },
  { name: 'grpc', phase: 'service', deps: ['vms', 'security'], ms: 30 },
  { name: 'registration', phase: 'post', deps: ['api', 'grpc'], ms: 15 },
];

async function syntheticBoot(parallel: boolean): Promise<number> {
  const components: Component[] = SYNTHETIC.map((c) => ({
    name: c.name,
    phase: c.phase,
    dependsOn: c.deps,
    critical: true,
    start: () => new Promise<void>((r) => setTimeout(r, c.ms)),
  }));
  const o = new BootOrchestrator(components, {
    parallel,
    defaultTimeoutMs: 10_000,
    bootTimeoutMs: 60_000,
    shutdownTimeoutMs: 1000,
  });
  const config = defaultConfig();
  const logger = pino({ level: 'silent' });
  const metrics = new Registry();
  const events = new EventBus();
  const report = await o.boot((_c, signal): BootContext => ({
    config,
    mode: 'datacenter',
    logger,
    metrics,
    events,
    services: {},
    signal,
  }));
  return report.totalMs ?? 0;
}

async function main() {
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: `${cpus().length} cpus, ${cpus()[0]?.model ?? ''}`,
    node: process.version,
  };
  const real: Record<string, StartSample[]> = { parallel: [], sequential: [] };
  for (let i = 0; i < RUNS; i++) {
    real.parallel!.push(await startOnce(true));
    real.sequential!.push(await startOnce(false));
  }
  const summary = (xs: StartSample[]) => ({
    runs: xs.length,
    wallMedianMs: Math.round(median(xs.map((x) => x.wallMs))),
    wallP90Ms: Math.round(
      pct(
        xs.map((x) => x.wallMs),
        90,
      ),
    ),
    sinceProcessStartMedianMs: Math.round(median(xs.map((x) => x.sinceProcessStartMs))),
    bootMedianMs: Math.round(median(xs.map((x) => x.bootMs)) * 10) / 10,
  });
  const realPar = summary(real.parallel!);
  const realSeq = summary(real.sequential!);
  results.real = {
    parallel: realPar,
    sequential: realSeq,
    bootSpeedup: +(realSeq.bootMedianMs / realPar.bootMedianMs).toFixed(2),
  };
  let servers: ReturnType<typeof summary> | null = null;
  if (await ensureBenchDatabase(SERVERS_DB)) {
    const xs: StartSample[] = [];
    for (let i = 0; i < RUNS; i++) xs.push(await startOnce(true, SERVER_FLAGS));
    servers = summary(xs);
    results.servers = servers;
  }

  const synth = { parallel: [] as number[], sequential: [] as number[] };
  for (let i = 0; i < 5; i++) {
    synth.parallel.push(await syntheticBoot(true));
    synth.sequential.push(await syntheticBoot(false));
  }
  const bound = criticalPathMs(
    SYNTHETIC.map((c) => ({ name: c.name, phase: c.phase, dependsOn: c.deps })),
    new Map(SYNTHETIC.map((c) => [c.name, c.ms])),
  );
  const sumMs = SYNTHETIC.reduce((a, c) => a + c.ms, 0);
  const parMs = median(synth.parallel);
  const seqMs = median(synth.sequential);
  results.synthetic = {
    components: SYNTHETIC.length,
    sumOfWaitsMs: sumMs,
    criticalPathMs: bound,
    parallelMedianMs: Math.round(parMs),
    sequentialMedianMs: Math.round(seqMs),
    speedup: +(seqMs / parMs).toFixed(2),
    idealSpeedup: +(sumMs / bound).toFixed(2),
    parallelOverCriticalPath: +(parMs / bound).toFixed(3),
  };

  console.log('\nbench/boot —', results.date, '—', results.machine, '— node', process.version);
  console.log('\nReal node (dist/, embedded defaults), median of', RUNS, 'runs:');
  console.log('  mode        spawn->ready  (p90)   process-start->ready  boot (orchestrator)');
  for (const [name, s] of [
    ['parallel', realPar],
    ['sequential', realSeq],
  ] as const) {
    console.log(
      `  ${name.padEnd(11)} ${String(s.wallMedianMs).padStart(7)} ms  ${String(s.wallP90Ms).padStart(5)} ms  ${String(s.sinceProcessStartMedianMs).padStart(12)} ms  ${String(s.bootMedianMs).padStart(12)} ms`,
    );
  }
  if (servers) {
    console.log(
      `  postgres+redis ${String(servers.wallMedianMs).padStart(4)} ms  ${String(servers.wallP90Ms).padStart(5)} ms  ${String(servers.sinceProcessStartMedianMs).padStart(12)} ms  ${String(servers.bootMedianMs).padStart(12)} ms`,
    );
  }
  const sy = results.synthetic as Record<string, number>;
  console.log(
    `\nSynthetic full-node graph (${sy.components} components, I/O waits summing to ${sy.sumOfWaitsMs} ms):`,
  );
  console.log(
    `  sequential ${sy.sequentialMedianMs} ms, parallel ${sy.parallelMedianMs} ms, critical path ${sy.criticalPathMs} ms`,
  );
  console.log(
    `  speedup ${sy.speedup}x (ideal ${sy.idealSpeedup}x); parallel / critical path = ${sy.parallelOverCriticalPath}`,
  );
  writeFileSync(join(ROOT, 'bench/boot/results/latest.json'), JSON.stringify(results, null, 2) + '\n');
}

await main();
