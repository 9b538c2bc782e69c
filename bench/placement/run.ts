// bench/placement: the trace simulator on the shared traces with every strategy side by side
// (baselines first-fit, best-fit, least-allocated, most-allocated in the same run), and the
// scheduler's decision latency (P50/P99) over 1,000 and 10,000 nodes.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { placeVm } from '../../src/scheduler/scheduler.js';
import { STRATEGIES } from '../../src/scheduler/registry.js';
import { runSimulation } from '../../src/scheduler/simulate/run.js';
import type { SimulateOptions } from '../../src/scheduler/simulate/run.js';
import { mockNode, res } from '../../src/scheduler/testing/harness.js';
import type { ClusterSnapshot } from '../../src/scheduler/types.js';

const DATA = new URL('../../../shared/data/placement/', import.meta.url).pathname;
const AZ = `${DATA}azure_v1_vm_flavor_trace/`;
const AB = `${DATA}alibaba_openb_gpu_v2023/`;
const ALL = [...STRATEGIES.keys()];

const scenarios: { name: string; opts: SimulateOptions }[] = [
  {
    name: 'azure-dev (departures, 48/384, unbounded)',
    opts: { trace: `${AZ}v1.dev.txt`, strategy: 'balanced', also: ALL },
  },
  {
    name: 'azure-dev (departures, 32/256, unbounded)',
    opts: { trace: `${AZ}v1.dev.txt`, strategy: 'balanced', hostCpus: 32, hostMemoryGib: 256, also: ALL },
  },
  {
    name: 'azure-dev (departures, 48/384, fixed 450 hosts)',
    opts: { trace: `${AZ}v1.dev.txt`, strategy: 'balanced', hosts: 450, also: ALL },
  },
  {
    name: 'azure-train (arrivals only, first 1.2M VMs, 48/384)',
    opts: { trace: `${AZ}v1.train.txt`, strategy: 'balanced' },
  },
  {
    name: 'alibaba-openb default (1,523 nodes, fixed)',
    opts: { trace: `${AB}openb_pod_list_default.csv`, strategy: 'balanced', also: ALL },
  },
  {
    name: 'alibaba-openb cpu250 (1,523 nodes, fixed)',
    opts: { trace: `${AB}openb_pod_list_cpu250.csv`, strategy: 'balanced', also: ALL },
  },
  {
    name: 'alibaba-openb cpu300, no departures (first 1,000 nodes: how much fits)',
    opts: {
      trace: `${AB}openb_pod_list_cpu300.csv`,
      strategy: 'balanced',
      also: ALL,
      ignoreDepartures: true,
      hosts: 1000,
    },
  },
];

const simulations = scenarios.map(({ name, opts }) => {
  const r = runSimulation(opts);
  const base = r.strategies.find((s) => s.strategy === 'best-fit')!;
  const rows = r.strategies.map((s) => ({
    strategy: s.strategy,
    placed: s.placed,
    rejected: s.rejected,
    rejectionRate: s.rejectionRate,
    meanHosts: s.meanHosts,
    meanLowerBound: s.meanLowerBound,
    meanHostsOverLowerBound: s.meanHostsOverLowerBound,
    vsBestFit: s.meanHostsOverLowerBound / base.meanHostsOverLowerBound,
    peakHosts: s.peakHosts,
    seconds: s.seconds,
  }));
  console.log(`\n## ${name}: ${r.vms} VMs on ${r.pool}`);
  console.table(
    rows.map((x) => ({
      strategy: x.strategy,
      placed: x.placed,
      'reject %': (100 * x.rejectionRate).toFixed(2),
      'mean hosts': x.meanHosts.toFixed(1),
      'mean LB': x.meanLowerBound.toFixed(1),
      'hosts/LB': x.meanHostsOverLowerBound.toFixed(4),
      'vs best-fit': x.vsBestFit.toFixed(4),
      peak: x.peakHosts,
      s: x.seconds.toFixed(2),
    })),
  );
  return { scenario: name, vms: r.vms, pool: r.pool, results: rows };
});

// Decision latency: one VM over a cluster of N nodes, a quarter of them not ready or labelled
// away, the rest randomly loaded (deterministic generator), full explanation recorded.
function cluster(n: number): ClusterSnapshot {
  let x = 12345;
  const rnd = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32;
  return {
    nodes: Array.from({ length: n }, (_, i) =>
      mockNode(`node-${i}`, {
        status: rnd() < 0.05 ? 'down' : 'ready',
        capacity: res(64, 262144, 2000),
        allocated: res(Math.floor(rnd() * 64), Math.floor(rnd() * 262144), Math.floor(rnd() * 2000)),
        labels: { zone: `z${i % 3}` },
      }),
    ),
  };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

const latency: {
  nodes: number;
  strategy: string;
  decisions: number;
  p50Ms: number;
  p99Ms: number;
  cpuP50Ms: number;
  cpuP99Ms: number;
}[] = [];
for (const n of [1000, 10000]) {
  const snapshot = cluster(n);
  for (const strategy of ['balanced', 'first-fit', 'spread']) {
    const wall: number[] = [];
    const cpu: number[] = [];
    const decisions = n === 1000 ? 2000 : 500;
    for (let i = 0; i < decisions + 50; i++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      placeVm(
        snapshot,
        { id: `vm-${i}`, resources: res(1 + (i % 8), 1024 * (1 + (i % 16)), 10), driver: 'qemu' },
        { strategy },
      );
      const dt = performance.now() - t0;
      const c = process.cpuUsage(c0);
      if (i < 50) continue; // the first 50 warm the JIT
      wall.push(dt);
      cpu.push((c.user + c.system) / 1000);
    }
    wall.sort((a, b) => a - b);
    cpu.sort((a, b) => a - b);
    latency.push({
      nodes: n,
      strategy,
      decisions,
      p50Ms: pct(wall, 0.5),
      p99Ms: pct(wall, 0.99),
      cpuP50Ms: pct(cpu, 0.5),
      cpuP99Ms: pct(cpu, 0.99),
    });
  }
}
console.log('\n## decision latency (one VM, full explanation)');
console.table(
  latency.map((l) => ({
    nodes: l.nodes,
    strategy: l.strategy,
    decisions: l.decisions,
    'wall p50 ms': l.p50Ms.toFixed(3),
    'wall p99 ms': l.p99Ms.toFixed(3),
    'cpu p50 ms': l.cpuP50Ms.toFixed(3),
    'cpu p99 ms': l.cpuP99Ms.toFixed(3),
  })),
);

const out = {
  date: new Date().toISOString(),
  // The machine is shared with other jobs; the load average says how much wall-clock figures suffered.
  loadAverage: loadavg(),
  machine: {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  },
  simulations,
  latency,
};
const dir = new URL('./results/', import.meta.url).pathname;
mkdirSync(dir, { recursive: true });
writeFileSync(`${dir}latest.json`, JSON.stringify(out, null, 2) + '\n');
console.log(`\nwrote ${dir}latest.json`);
