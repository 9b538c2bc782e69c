// Latency of the ML service over loopback gRPC at a fixed offered rate, with in-process baselines.
//
// Three processes: `novacron ml serve`, an open-loop load generator (loadgen.ts, one fresh process
// per call kind) and this orchestrator, which only starts them and collects the figures. Each
// call kind is compared with the transport floor of the same run: an empty unary call to the same
// server from the same kind of process.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { scanModelsDir, DEFAULT_MODELS_DIR } from '../../src/ml/models/model-file.js';
import { predictNext } from '../../src/ml/models/bandwidth-model.js';
import { handleOptimizePlacement, handlePredictBandwidth } from '../../src/ml/service/handlers.js';
import { fallbackBandwidth, fallbackPlacement } from '../../src/ml/fallback.js';
import { ML_PROTO_PATH, loadMlServices, type WirePlacementRequest } from '../../src/ml/proto.js';
import * as grpc from '@grpc/grpc-js';
import { defaultConfig } from '../../src/config/defaults.js';
import * as protoLoader from '@grpc/proto-loader';
import type { LoadgenCall, LoadgenResult, LoadgenSpec } from './loadgen.js';
import { workload } from './workload.js';
import type { WakeProbeResult } from './wake-probe.js';

export { workload };

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
  /** gRPC rows: P99 ÷ the same run's transport floor P99. */
  readonly p99OverFloor?: number;
  readonly p999Ms?: number;
  readonly sendLagP50Ms?: number;
  readonly sendLagP99Ms?: number;
  /** The client's transport thread young generation (MiB) for the real calls; 0: no transport thread. */
  readonly transportThreadMb?: number;
  /** What woke the generator (loadgen.ts `ticker`) and the client transport of the real calls. */
  readonly ticker?: string;
  readonly transport?: string;
  readonly server?: string;
  /** CPU per call of the generator+client process and of the server process, µs. */
  readonly clientCpuUs?: number;
  readonly serverCpuUs?: number;
  readonly loopDelayP99Ms?: number;
  /** Same-run machine baseline: wake-up lateness of an idle 1 ms timer process (wake-probe.ts). */
  readonly machineWakeP99Ms?: number;
  readonly machineWakeMaxMs?: number;
  readonly machineWakesOver5Ms?: number;
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
};

/**
 * Node flags for the bench's child processes; ML_BENCH_PROF=DIR adds --cpu-prof into DIR, and
 * ML_BENCH_NODE_FLAGS (space-separated) adds V8/Node flags to the server and the load generator,
 * ML_BENCH_SERVER_FLAGS / ML_BENCH_CLIENT_FLAGS to one of them (for A/B runs of GC settings).
 */
function nodeFlags(tag: string): string[] {
  const dir = process.env.ML_BENCH_PROF;
  const side = tag === 'server' ? process.env.ML_BENCH_SERVER_FLAGS : process.env.ML_BENCH_CLIENT_FLAGS;
  const extra = `${process.env.ML_BENCH_NODE_FLAGS ?? ''} ${side ?? ''}`.split(/\s+/).filter((f) => f !== '');
  // Default file names (pid, thread id) under DIR/tag: the tsx loader thread writes a profile too.
  return [...extra, ...(dir ? ['--cpu-prof', '--cpu-prof-dir', `${dir}/${tag}`] : [])];
}

/** Starts `novacron ml serve` as its own process on a free port; resolves with the port. */
async function startService(server?: 'http2' | 'grpc-js'): Promise<{ child: ChildProcess; port: number }> {
  const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
  const child = spawn(
    process.execPath,
    [
      ...nodeFlags('server'),
      '--import',
      'tsx',
      main,
      'ml',
      'serve',
      '--port',
      '0',
      '--no-metrics',
      '--no-watch',
      ...(server ? ['--server', server] : []),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let buf = '';
  for await (const chunk of child.stdout!) {
    buf += String(chunk);
    const m = /listening on [\d.]+:(\d+)/.exec(buf);
    if (m) return { child, port: Number(m[1]) };
  }
  throw new Error(`ml serve exited before listening: ${buf}`);
}

/** CPU time (user + system) of a process so far, µs, from /proc (Linux). */
function cpuOfPid(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1e6) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/** Starts the wake-up probe (wake-probe.ts) for `seconds`; resolves with its result. */
function startWakeProbe(seconds: number): Promise<WakeProbeResult | undefined> {
  const script = fileURLToPath(new URL('./wake-probe.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, String(seconds)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (c) => (out += String(c)));
  return once(child, 'exit').then(([code]) =>
    code === 0 && out.trim() ? (JSON.parse(out.trim()) as WakeProbeResult) : undefined,
  );
}

/** Runs the load generator in its own process and returns its result line. */
async function runLoadgen(spec: LoadgenSpec): Promise<LoadgenResult> {
  const script = fileURLToPath(new URL('./loadgen.ts', import.meta.url));
  const child = spawn(
    process.execPath,
    [...nodeFlags(`loadgen-${spec.call}`), '--import', 'tsx', script, JSON.stringify(spec)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout!.on('data', (c) => (out += String(c)));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`loadgen ${spec.call} exited with ${code}`);
  return JSON.parse(out.trim().split('\n').pop()!) as LoadgenResult;
}

const LABEL: Record<LoadgenCall, (nodes: number, batch: number) => string> = {
  floor: () => 'empty unary call (transport floor, raw gRPC)',
  'floor-h2': () => 'empty unary call (floor of the client transport, h2-transport.ts)',
  bandwidth: () => 'PredictBandwidth',
  'bandwidth-batch': (_n, b) => `PredictBandwidthBatch (${b} series)`,
  placement: (n) => `OptimizePlacement (${n} nodes)`,
};

export interface LatencyOptions {
  readonly rate?: number;
  readonly seconds?: number;
  readonly nodes?: number;
  readonly warmupSeconds?: number;
  readonly channels?: number;
  readonly calls?: readonly LoadgenCall[];
  readonly batch?: number;
  /** The client transport of the real calls (MlClientOptions.transport). */
  readonly transport?: 'http2' | 'grpc-js';
  /** The service's gRPC server implementation (`ml serve --server`). */
  readonly server?: 'http2' | 'grpc-js';
  /** The generator's wake-ups (LoadgenSpec.ticker). */
  readonly ticker?: 'worker' | 'timer';
  /** The client's transport thread young generation, MiB; 0: calls on the generator's thread (LoadgenSpec.transportThreadMb). */
  readonly transportThreadMb?: number;
  readonly onProgress?: (msg: string) => void;
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

export async function measureLatency(o: LatencyOptions = {}): Promise<LatencyRow[]> {
  const rate = o.rate ?? 1000;
  const seconds = o.seconds ?? 10;
  const nodes = o.nodes ?? 100;
  const batch = o.batch ?? 10;
  // The floor is measured before and after the calls, so a change of load during the run shows.
  const calls = o.calls ?? ['floor', 'floor-h2', 'bandwidth', 'placement', 'floor'];
  const w = workload(nodes);
  const { child, port } = await startService(o.server);
  const rows: LatencyRow[] = [];
  try {
    // Warm the server (JIT, connection, first-call paths) with every kind of call; not recorded.
    o.onProgress?.('warming the service up (3 s, not recorded) …');
    for (const call of ['floor', 'bandwidth', 'placement'] as const) {
      await runLoadgen({ port, call, rate, seconds: 0, warmupSeconds: 1, channels: 1, nodes, batch });
    }
    let floorP99: number | undefined;
    let floors = 0;
    for (const call of calls) {
      const label = LABEL[call](nodes, batch) + (call === 'floor' && floors++ > 0 ? ', again' : '');
      o.onProgress?.(`${label} at ${rate}/s for ${seconds} s …`);
      const cpu0 = cpuOfPid(child.pid!);
      // The machine baseline of this very run: wake-up lateness of an idle process alongside
      // (started with the generator, it covers the generator's start-up, warm-up and measurement).
      const wake = startWakeProbe(seconds + (o.warmupSeconds ?? 2) + 1);
      const r = await runLoadgen({
        port,
        call,
        rate,
        seconds,
        warmupSeconds: o.warmupSeconds ?? 2,
        channels: o.channels ?? 1,
        nodes,
        batch,
        ...(o.transport ? { transport: o.transport } : {}),
        ...(o.ticker ? { ticker: o.ticker } : {}),
        ...(o.transportThreadMb !== undefined ? { transportThreadMb: o.transportThreadMb } : {}),
      });
      // Server CPU includes the warm-up: scale it to all requests the generator sent.
      const serverCpu = (cpuOfPid(child.pid!) - cpu0) / (rate * (seconds + (o.warmupSeconds ?? 2)));
      if (call === 'floor' && floorP99 === undefined) floorP99 = r.p99Ms;
      rows.push({
        call: label,
        path: 'gRPC loopback: server, load generator in separate processes',
        offeredPerSecond: rate,
        achievedPerSecond: r.achievedPerSecond,
        requests: r.requests,
        fallbacks: r.fallbacks,
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
        maxMs: r.maxMs,
        ...(floorP99 ? { p99OverFloor: r.p99Ms / floorP99 } : {}),
        p999Ms: r.p999Ms,
        sendLagP50Ms: r.sendLagP50Ms,
        sendLagP99Ms: r.sendLagP99Ms,
        ticker: r.ticker,
        server: o.server ?? 'http2',
        ...(call === 'floor' || call === 'floor-h2'
          ? {}
          : {
              transport: o.transport ?? 'http2',
              transportThreadMb: o.transportThreadMb ?? defaultConfig().ml.transport_thread_young_mb,
            }),
        clientCpuUs: r.clientCpuUsPerCall,
        serverCpuUs: serverCpu,
        loopDelayP99Ms: r.loopDelayP99Ms,
        ...(await wake.then((w) =>
          w ? { machineWakeP99Ms: w.p99Ms, machineWakeMaxMs: w.maxMs, machineWakesOver5Ms: w.over5Ms } : {},
        )),
      });
    }
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'exit');
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
  // Wire encoding, both sides of one call (request encode + decode, response encode + decode):
  // proto-loader's reflection (what the service used before) against the static codecs of codec.ts.
  const bwReq = {
    vm_id: '',
    timestamp: 1_764_000_000,
    historical_bandwidth: w.history,
    network_type: '',
    profile: '',
  };
  const bwRes = handlePredictBandwidth(set, bwReq);
  const plRes = handleOptimizePlacement(set, wireReq);
  const dynamic = grpc.loadPackageDefinition(
    protoLoader.loadSync(ML_PROTO_PATH, {
      keepCase: true,
      longs: Number,
      enums: String,
      defaults: true,
      arrays: true,
      oneofs: true,
    }),
  ) as unknown as {
    novacron: { ml: { v1: Record<string, grpc.ServiceClientConstructor> } };
  };
  const codecs: [string, grpc.ServiceDefinition, grpc.ServiceDefinition][] = [
    [
      'proto-loader reflection',
      dynamic.novacron.ml.v1['BandwidthPredictor']!.service,
      dynamic.novacron.ml.v1['TaskPlacer']!.service,
    ],
    ['static codecs (codec.ts)', loadMlServices().bandwidth, loadMlServices().placer],
  ];
  const roundTrip = (m: grpc.MethodDefinition<unknown, unknown>, req: unknown, res: unknown) => () => {
    m.requestDeserialize(m.requestSerialize(req));
    m.responseDeserialize(m.responseSerialize(res));
  };
  for (const [label, bw, placer] of codecs) {
    rows.push(
      inProcess(
        'PredictBandwidth wire encoding',
        `in-process, ${label}`,
        20000,
        roundTrip(bw['PredictBandwidth']!, bwReq, bwRes),
      ),
    );
    rows.push(
      inProcess(
        `OptimizePlacement (${nodes} nodes) wire encoding`,
        `in-process, ${label}`,
        3000,
        roundTrip(placer['OptimizePlacement']!, wireReq, plRes),
      ),
    );
  }
  return rows;
}
