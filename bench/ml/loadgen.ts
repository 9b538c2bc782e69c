// Open-loop load generator for the ML service, run as its own process (`node --import tsx loadgen.ts JSON`).
//
// Request i is due at t0 + i / rate whatever happened to earlier requests (open loop), and its
// latency is measured from that intended time, not from when the generator got round to sending
// it, so a stall anywhere (generator, client, network, server) is charged to the requests it
// delayed: no coordinated omission. The generator's own lateness (actual send − intended) is
// reported separately. A warm-up period at the same rate is run first and excluded.
//
// Wake-ups: Node's timers have a 1 ms granularity (libuv rounds to whole milliseconds of a loop
// clock cached at the start of each loop turn), so a generator driven by setTimeout sends up to
// ~1 ms late even on an idle machine, and that lateness is charged to the calls. The default
// scheduler (`ticker: 'worker'`) instead has a worker thread sleep until each due time with
// Atomics.wait (sub-millisecond timeouts, a futex) and post a message, which wakes the main event
// loop at once (uv_async); the main thread then sends every request that is due by its own clock.
// `ticker: 'timer'` keeps the setTimeout schedule (the previous generator), for A/B runs.
//
// Prints one JSON line (LoadgenResult) on stdout.
import * as grpc from '@grpc/grpc-js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { createMlClient, type MlClient, type MlTransport } from '../../src/ml/client.js';
import { defaultConfig } from '../../src/config/defaults.js';
import { createH2Transport, type UnaryTransport } from '../../src/ml/h2-transport.js';
import { workload } from './workload.js';

export type LoadgenCall = 'floor' | 'floor-h2' | 'bandwidth' | 'placement' | 'bandwidth-batch';

export interface LoadgenSpec {
  readonly port: number;
  readonly call: LoadgenCall;
  readonly rate: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** Independent gRPC channels (each its own HTTP/2 connection); requests are spread round-robin. */
  readonly channels: number;
  /** Candidate nodes per OptimizePlacement. */
  readonly nodes: number;
  /** Series per PredictBandwidthBatch call (bandwidth-batch only). */
  readonly batch?: number;
  /** The client's transport (MlClientOptions.transport); http2 by default. */
  readonly transport?: MlTransport;
  /** What wakes the generator for each due send: a worker thread (default) or setTimeout. */
  readonly ticker?: 'worker' | 'timer';
  /**
   * `ml.transport_thread_young_mb` of the client (thread-transport.ts): the young generation of
   * the worker thread its HTTP/2 calls go through, MiB; 0: on the generator's thread. Default: the
   * config default.
   */
  readonly transportThreadMb?: number;
}

export interface LoadgenResult {
  readonly call: LoadgenCall;
  readonly requests: number;
  readonly fallbacks: number;
  readonly achievedPerSecond: number;
  /** Latency from the intended send time, ms. */
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
  /** How late the generator sent (actual − intended), ms. */
  readonly sendLagP50Ms: number;
  readonly sendLagP99Ms: number;
  readonly ticker: 'worker' | 'timer';
  /** CPU time of this process (client + generator) per measured request, µs. */
  readonly clientCpuUsPerCall: number;
  /** Event-loop delay of this process during the measurement (P99, ms). */
  readonly loopDelayP99Ms: number;
}

export const quantile = (sorted: Float64Array | number[], q: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

/** One call of the chosen kind; resolves true when the service (not a fallback) answered. */
function makeCall(
  spec: LoadgenSpec,
  clients: MlClient[],
  raws: grpc.Client[],
  h2s: UnaryTransport[],
): (i: number) => Promise<boolean> {
  const w = workload(spec.nodes);
  switch (spec.call) {
    case 'floor-h2': {
      // The same empty call through the client's own transport (h2-transport.ts): its floor.
      const frame = Buffer.from([0, 0, 0, 0, 0]);
      return (i) =>
        h2s[i % h2s.length]!.unary('/novacron.ml.v1.BandwidthPredictor/HealthCheck', frame, 1000).then(
          () => true,
          () => false,
        );
    }
    case 'floor': {
      // The cheapest unary call grpc-js can make to this server: an empty request, the answer
      // kept as raw bytes (no decoding, no validation, no breaker). The transport floor.
      const empty = Buffer.alloc(0);
      const ser = () => empty;
      const de = (b: Buffer) => b;
      const meta = new grpc.Metadata();
      return (i) =>
        new Promise<boolean>((resolve) => {
          raws[i % raws.length]!.makeUnaryRequest(
            '/novacron.ml.v1.BandwidthPredictor/HealthCheck',
            ser,
            de,
            {},
            meta,
            {},
            (err) => resolve(err === null),
          );
        });
    }
    case 'bandwidth':
      return async (i) => (await clients[i % clients.length]!.predictBandwidth(w.history)).source === 'model';
    case 'bandwidth-batch': {
      const n = spec.batch ?? 10;
      const series = Array.from({ length: n }, () => w.history);
      return async (i) => {
        const r = await clients[i % clients.length]!.predictBandwidthBatch(series);
        return r.every((a) => a.source === 'model');
      };
    }
    case 'placement': {
      const call = { taskId: 't', nodes: w.nodes, need: w.need, vm: w.vm, nowS: 1000 };
      return async (i) => (await clients[i % clients.length]!.optimizePlacement(call)).source === 'model';
    }
  }
}

/**
 * The worker thread of `ticker: 'worker'`: sleeps until each due time t0 + i·period (epoch ms,
 * shared clock: timeOrigin + now) and posts the index; plain JS, so it needs no loader.
 */
const TICKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { t0, period, total } = workerData;
const cell = new Int32Array(new SharedArrayBuffer(4));
const now = () => performance.timeOrigin + performance.now();
for (let i = 0; i < total; i++) {
  const due = t0 + i * period;
  for (let wait = due - now(); wait > 0; wait = due - now()) Atomics.wait(cell, 0, 0, wait);
  parentPort.postMessage(i);
}
`;

async function run(spec: LoadgenSpec): Promise<LoadgenResult> {
  const address = `127.0.0.1:${spec.port}`;
  const clients: MlClient[] = [];
  const raws: grpc.Client[] = [];
  const h2s: UnaryTransport[] = [];
  for (let c = 0; c < spec.channels; c++) {
    // A distinct option value per channel keeps grpc-js from sharing one subchannel between them.
    const opts = { 'grpc.enable_channelz': 0, 'novacron.channel': c };
    if (spec.call === 'floor') raws.push(new grpc.Client(address, grpc.credentials.createInsecure(), opts));
    else if (spec.call === 'floor-h2') h2s.push(createH2Transport(address));
    else
      clients.push(
        createMlClient(
          {
            enabled: true,
            service_address: address,
            timeout_ms: 1000,
            fallback_enabled: true,
            health_check_interval_seconds: 3600,
            breaker_failure_threshold: 1_000_000,
            breaker_reset_seconds: 1,
            transport_thread_young_mb: spec.transportThreadMb ?? defaultConfig().ml.transport_thread_young_mb,
          },
          undefined,
          {
            backgroundHealth: false,
            channelOptions: { 'novacron.channel': c },
            ...(spec.transport ? { transport: spec.transport } : {}),
          },
        ),
      );
  }
  try {
    for (const c of clients) {
      const h = await c.ready();
      if (h.status !== 'up') throw new Error(`service not up: ${h.detail}`);
    }
    for (const r of raws) {
      await new Promise<void>((resolve, reject) =>
        r.waitForReady(Date.now() + 5000, (e) => (e ? reject(e) : resolve())),
      );
    }
    for (const t of h2s) {
      // Dial and check the path once before the clock starts (as ready() does for the clients).
      await t.unary('/novacron.ml.v1.BandwidthPredictor/HealthCheck', Buffer.from([0, 0, 0, 0, 0]), 5000);
    }
    const call = makeCall(spec, clients, raws, h2s);
    const warm = Math.round(spec.rate * spec.warmupSeconds);
    const total = warm + Math.round(spec.rate * spec.seconds);
    const measured = total - warm;
    const lat = new Float64Array(measured);
    const lag = new Float64Array(measured);
    let done = 0;
    let fallbacks = 0;
    let sent = 0;
    const period = 1000 / spec.rate;
    const loop = monitorEventLoopDelay({ resolution: 1 });
    let cpu0 = process.cpuUsage();
    let tMeasure = 0;
    let tEnd = 0;
    const ticker = spec.ticker ?? 'worker';
    // Start 20 ms ahead: time for the worker thread to boot before the first due send.
    const t0 = performance.now() + 20;
    let worker: Worker | undefined;
    await new Promise<void>((resolve) => {
      const finish = (i: number, intended: number, ok: boolean) => {
        const now = performance.now();
        if (i >= warm) {
          lat[i - warm] = now - intended;
          if (!ok) fallbacks++;
        }
        if (++done === total) {
          tEnd = now;
          resolve();
        }
      };
      /** Sends every request due by now. */
      const tick = () => {
        const now = performance.now();
        while (sent < total) {
          const i = sent;
          const intended = t0 + i * period;
          if (intended > now) break;
          sent++;
          if (i === warm) {
            cpu0 = process.cpuUsage();
            tMeasure = intended;
            loop.enable();
          }
          if (i >= warm) lag[i - warm] = performance.now() - intended;
          call(i).then(
            (ok) => finish(i, intended, ok),
            () => finish(i, intended, false),
          );
        }
        if (ticker === 'timer' && sent < total)
          setTimeout(tick, Math.max(0, t0 + sent * period - performance.now()));
      };
      if (ticker === 'timer') setTimeout(tick, Math.max(0, t0 - performance.now()));
      else {
        worker = new Worker(TICKER_SOURCE, {
          eval: true,
          workerData: { t0: performance.timeOrigin + t0, period, total },
        });
        worker.on('message', tick);
        worker.on('error', (e) => {
          process.stderr.write(`loadgen: ticker thread failed: ${String(e)}\n`);
          process.exit(1);
        });
      }
    });
    await worker?.terminate();
    loop.disable();
    const cpu = process.cpuUsage(cpu0);
    lat.sort();
    lag.sort();
    return {
      call: spec.call,
      requests: measured,
      fallbacks,
      achievedPerSecond: measured / ((tEnd - tMeasure) / 1000),
      p50Ms: quantile(lat, 0.5),
      p90Ms: quantile(lat, 0.9),
      p99Ms: quantile(lat, 0.99),
      p999Ms: quantile(lat, 0.999),
      maxMs: lat[lat.length - 1] ?? 0,
      sendLagP50Ms: quantile(lag, 0.5),
      sendLagP99Ms: quantile(lag, 0.99),
      ticker,
      clientCpuUsPerCall: (cpu.user + cpu.system) / measured,
      loopDelayP99Ms: loop.percentile(99) / 1e6,
    };
  } finally {
    for (const c of clients) c.close();
    for (const r of raws) r.close();
    for (const t of h2s) t.close();
  }
}

const arg = process.argv[2];
if (arg) {
  const spec = JSON.parse(arg) as LoadgenSpec;
  run(spec).then(
    (r) => {
      process.stdout.write(JSON.stringify(r) + '\n');
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`loadgen: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
