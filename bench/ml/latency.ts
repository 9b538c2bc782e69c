// Latency of the ML service over loopback gRPC at a fixed offered rate, with in-process baselines.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { createMlClient, type MlClient } from '../../src/ml/client.js';
import { loadMlServices } from '../../src/ml/proto.js';
import { scanModelsDir, DEFAULT_MODELS_DIR } from '../../src/ml/models/model-file.js';
import { predictNext } from '../../src/ml/models/bandwidth-model.js';
import { handleOptimizePlacement } from '../../src/ml/service/handlers.js';
import { fallbackBandwidth, fallbackPlacement, type PlacementNode } from '../../src/ml/fallback.js';
import type { WirePlacementRequest } from '../../src/ml/proto.js';

export interface LatencyRow {
  readonly call: string;
  readonly path: string;
  readonly offeredPerSecond: number;
  readonly achievedPerSecond: number;
  readonly requests: number;
  readonly fallbacks: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
};

/** A history of 20 samples and a placement problem of `nodes` nodes with 10 residents each. */
export function workload(nodes = 100) {
  const history = Array.from({ length: 20 }, (_, i) => 50 + 10 * Math.sin(i / 3) + (i % 4));
  const list: PlacementNode[] = Array.from({ length: nodes }, (_, i) => ({
    nodeId: `node-${i}`,
    cpuAvailable: 4 + (i % 40),
    memoryAvailable: 16 + (i % 300),
    cpuCapacity: 48,
    memoryCapacity: 384,
    residentEndTimesS: Array.from({ length: 10 }, (_, k) => 1000 + ((i * 7919 + k * 104729) % 200000)),
  }));
  const vm = { vcpus: 2, memoryGb: 4, flavor: 'g', batchSize: 3, arrivalTimeS: 1000 };
  return { history, nodes: list, vm, need: { cpu: 2, memory: 4 } };
}

/** Starts `novacron ml serve` as its own process on a free port; resolves with the port. */
async function startService(): Promise<{ child: ChildProcess; port: number }> {
  const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', main, 'ml', 'serve', '--port', '0', '--no-metrics', '--no-watch'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let buf = '';
  for await (const chunk of child.stdout!) {
    buf += String(chunk);
    const m = /listening on [\d.]+:(\d+)/.exec(buf);
    if (m) return { child, port: Number(m[1]) };
  }
  throw new Error(`ml serve exited before listening: ${buf}`);
}

/** Offers `rate` calls per second for `seconds` (open loop: sends on schedule, not when answers return). */
async function offer(
  rate: number,
  seconds: number,
  call: () => Promise<boolean>,
): Promise<{ lat: number[]; fallbacks: number; wallS: number }> {
  const total = Math.round(rate * seconds);
  const lat: number[] = [];
  let fallbacks = 0;
  let sent = 0;
  const inflight: Promise<void>[] = [];
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
      while (sent < due) {
        sent++;
        const s = performance.now();
        inflight.push(
          call().then((ok) => {
            lat.push(performance.now() - s);
            if (!ok) fallbacks++;
          }),
        );
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all(inflight);
  return { lat, fallbacks, wallS: (performance.now() - t0) / 1000 };
}

function inProcess(name: string, path: string, n: number, fn: () => void): LatencyRow {
  const lat: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    fn();
    lat.push(performance.now() - s);
  }
  return {
    call: name,
    path,
    offeredPerSecond: 0,
    achievedPerSecond: 0,
    requests: n,
    fallbacks: 0,
    p50Ms: quantile(lat, 0.5),
    p99Ms: quantile(lat, 0.99),
    maxMs: Math.max(...lat),
  };
}

export async function measureLatency(rate = 1000, seconds = 10, nodes = 100): Promise<LatencyRow[]> {
  const w = workload(nodes);
  const { child, port } = await startService();
  let client: MlClient | undefined;
  let rawClient: grpc.Client | undefined;
  const rows: LatencyRow[] = [];
  try {
    client = createMlClient(
      {
        enabled: true,
        service_address: `127.0.0.1:${port}`,
        timeout_ms: 1000,
        fallback_enabled: true,
        health_check_interval_seconds: 3600,
        breaker_failure_threshold: 1000,
        breaker_reset_seconds: 1,
      },
      undefined,
      { backgroundHealth: false },
    );
    const c = client;
    const defs = loadMlServices();
    const raw = new defs.BandwidthClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      'grpc.enable_channelz': 0,
    }) as unknown as grpc.Client & {
      HealthCheck(
        req: object,
        meta: grpc.Metadata,
        opts: grpc.CallOptions,
        cb: (err: grpc.ServiceError | null) => void,
      ): void;
    };
    rawClient = raw;
    const h = await c.ready();
    if (h.status !== 'up') throw new Error(`service not up: ${h.detail}`);
    const calls: [string, () => Promise<boolean>][] = [
      [
        'HealthCheck (transport floor, raw gRPC)',
        () =>
          new Promise<boolean>((resolve) => {
            raw.HealthCheck({}, new grpc.Metadata(), { deadline: Date.now() + 1000 }, (err) =>
              resolve(err === null),
            );
          }),
      ],
      ['PredictBandwidth', async () => (await c.predictBandwidth(w.history)).source === 'model'],
      [
        `OptimizePlacement (${nodes} nodes)`,
        async () =>
          (await c.optimizePlacement({ taskId: 't', nodes: w.nodes, need: w.need, vm: w.vm, nowS: 1000 }))
            .source === 'model',
      ],
    ];
    for (const [name, fn] of calls) {
      await offer(rate, 1, fn); // warm-up
      const r = await offer(rate, seconds, fn);
      rows.push({
        call: name,
        path: 'gRPC loopback, separate process',
        offeredPerSecond: rate,
        achievedPerSecond: r.lat.length / r.wallS,
        requests: r.lat.length,
        fallbacks: r.fallbacks,
        p50Ms: quantile(r.lat, 0.5),
        p99Ms: quantile(r.lat, 0.99),
        maxMs: Math.max(...r.lat),
      });
    }
  } finally {
    client?.close();
    rawClient?.close();
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
  // Baselines in this process: the model alone, and the local heuristics the client falls back to.
  const models = scanModelsDir(DEFAULT_MODELS_DIR);
  const bw = models.bandwidth!.file.params;
  const set = { bandwidth: models.bandwidth!, lifetime: models.lifetime! };
  const wireReq: WirePlacementRequest = {
    task_id: 't',
    available_nodes: w.nodes.map((n) => ({
      node_id: n.nodeId,
      cpu_available: n.cpuAvailable,
      memory_available: n.memoryAvailable,
      network_bandwidth: 0,
      current_load: 0,
      cpu_capacity: n.cpuCapacity ?? 0,
      memory_capacity: n.memoryCapacity ?? 0,
      resident_end_times_s: [...(n.residentEndTimesS ?? [])],
    })),
    requirements: [{ cpu_required: 2, memory_required: 4, network_required: 0 }],
    vm: { vcpus: 2, memory_gb: 4, flavor: 'g', batch_size: 3, arrival_time_s: 1000 },
    now_s: 1000,
  };
  rows.push(
    inProcess('PredictBandwidth', 'in-process model (no gRPC)', 20000, () =>
      predictNext(bw.profiles[bw.defaultProfile]!, w.history),
    ),
  );
  rows.push(
    inProcess('PredictBandwidth', 'in-process fallback (moving average)', 20000, () =>
      fallbackBandwidth(w.history),
    ),
  );
  rows.push(
    inProcess(`OptimizePlacement (${nodes} nodes)`, 'in-process model (no gRPC)', 5000, () =>
      handleOptimizePlacement(set, wireReq),
    ),
  );
  rows.push(
    inProcess(`OptimizePlacement (${nodes} nodes)`, 'in-process fallback (best fit)', 5000, () =>
      fallbackPlacement(w.nodes, w.need),
    ),
  );
  return rows;
}
