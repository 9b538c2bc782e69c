// The ML client on a worker thread of its own. The client's work per call (HTTP/2 framing, codec,
// breaker, checks) then allocates in a separate V8 isolate with a small young generation
// (`ml.client_thread_young_mb`): its scavenges stay short and no longer pause the caller's thread,
// and the node's own garbage (API, store, scheduler) no longer delays ML answers. Measured in
// BENCHMARKS.md (ml, "client thread").
//
// Contract, the same as createMlClient's: every call is answered within `ml.timeout_ms` (plus a
// small grace for the hop between threads) while `ml.fallback_enabled` is on. If the worker is
// slow, dead or not yet started, the caller's thread answers from the local heuristics itself; a
// worker that exits is restarted on a later call (at most once a second).
import type { Worker } from 'node:worker_threads';
import { BreakerState } from './breaker.js';
import {
  createMlClient,
  fallbackLifetime,
  type MlClient,
  type MlClientLogger,
  type MlConfig,
  type MlHealth,
  type MlTransport,
} from './client.js';
import { fallbackBandwidth, fallbackPlacement } from './fallback.js';
import type { ThreadCall, ThreadMethod, ThreadReply, ThreadWorkerData } from './thread-protocol.js';
import { UnavailableError } from '../errors.js';
import { startModuleWorker } from '../util/module-worker.js';

export interface ThreadMlClientOptions {
  /** Young generation of the worker in MiB (`ml.client_thread_young_mb`); 0: no worker, the plain client. */
  readonly youngGenerationMb: number;
  readonly transport?: MlTransport;
  /** Start the periodic health checks (default true). */
  readonly backgroundHealth?: boolean;
  /** Extra grpc-js channel options (MlClientOptions.channelOptions); plain data only. */
  readonly channelOptions?: ThreadWorkerData['channelOptions'];
}

/** How much later than `ml.timeout_ms` the caller's thread answers for a worker that has not. */
export const THREAD_GRACE_MS = 25;
/** Health checks also cover the worker's start (loading the client's modules). */
const HEALTH_WAIT_MS = 10_000;
const RESTART_AFTER_MS = 1000;

/** The client, plus its worker thread for diagnostics and tests (undefined while there is none). */
export interface ThreadMlClient extends MlClient {
  workerThread(): Worker | undefined;
}

type Answer<M extends ThreadMethod> = Awaited<ReturnType<MlClient[M]>>;

interface Pending {
  readonly resolve: (r: unknown) => void;
  readonly reject: (e: unknown) => void;
  readonly fallback: () => unknown;
  readonly timer: NodeJS.Timeout;
  /** checkHealth/ready: answered with this client's health, never counted as a call, never rejected. */
  readonly isHealth: boolean;
}

/**
 * An MlClient whose calls run on a worker thread (see the file comment). With `youngGenerationMb`
 * 0, or `ml.enabled` false (nothing goes over the network then), it is the plain client.
 */
export function createThreadMlClient(
  config: MlConfig,
  logger: MlClientLogger | undefined,
  options: ThreadMlClientOptions,
): ThreadMlClient {
  if (!config.enabled || options.youngGenerationMb <= 0) {
    const plain = createMlClient(config, logger, {
      ...(options.transport ? { transport: options.transport } : {}),
      ...(options.backgroundHealth !== undefined ? { backgroundHealth: options.backgroundHealth } : {}),
      ...(options.channelOptions ? { channelOptions: options.channelOptions } : {}),
    });
    return { ...plain, workerThread: () => undefined };
  }
  const workerData: ThreadWorkerData = {
    config,
    backgroundHealth: options.backgroundHealth ?? true,
    transport: options.transport ?? 'http2',
    ...(options.channelOptions ? { channelOptions: options.channelOptions } : {}),
  };
  const pending = new Map<number, Pending>();
  /** Calls the caller's thread answered itself (worker slow, gone or not started). */
  const local = { calls: 0, fallbacks: 0, failures: 0 };
  let worker: Worker | undefined;
  let posted: MlHealth | undefined;
  /** Why there is no worker right now, while there is none. */
  let problem: string | undefined;
  let startedAt = -Infinity;
  let nextId = 1;
  let closed = false;

  function settleLocally(p: Pending, reason: string): void {
    clearTimeout(p.timer);
    if (p.isHealth) {
      p.resolve(health());
      return;
    }
    local.calls++;
    local.failures++;
    if (!config.fallback_enabled) {
      p.reject(
        new UnavailableError(`ml service call failed: ${reason}`, {
          hint: 'enable ml.fallback_enabled to get local answers',
        }),
      );
      return;
    }
    local.fallbacks++;
    p.resolve(p.fallback());
  }

  function onMessage(m: ThreadReply): void {
    switch (m.t) {
      case 'health':
        posted = m.h;
        return;
      case 'log':
        logger?.[m.level](m.obj, m.msg);
        return;
      case 'ok':
      case 'err': {
        const p = pending.get(m.id);
        if (!p) return; // answered locally already (late reply)
        pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.t === 'ok') p.resolve(p.isHealth ? health() : m.r);
        else p.reject(new UnavailableError(m.message, m.hint ? { hint: m.hint } : {}));
      }
    }
  }

  function start(): Worker | undefined {
    if (worker || closed) return worker;
    if (performance.now() - startedAt < RESTART_AFTER_MS) return undefined;
    startedAt = performance.now();
    const w = startModuleWorker(import.meta.url, './client-worker', {
      workerData,
      resourceLimits: { maxYoungGenerationSizeMb: options.youngGenerationMb },
    });
    w.unref(); // pending calls keep the process alive through their timers
    w.on('message', onMessage);
    w.on('error', (err) => {
      problem = `ml client thread failed: ${err.message}`;
    });
    w.on('exit', (code) => {
      if (worker === w) worker = undefined;
      if (closed) return;
      problem ??= `ml client thread exited with code ${code}`;
      logger?.warn(
        { code, problem },
        'ml: client thread gone, local heuristics answer until it is restarted',
      );
      for (const [id, p] of pending) {
        pending.delete(id);
        settleLocally(p, problem);
      }
      posted = undefined;
    });
    worker = w;
    problem = undefined;
    return w;
  }

  function call<M extends ThreadMethod>(
    m: M,
    a: Parameters<MlClient[M]>,
    fallback: () => Answer<M>,
    waitMs = config.timeout_ms + THREAD_GRACE_MS,
  ): Promise<Answer<M>> {
    return new Promise<Answer<M>>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        const p = pending.get(id);
        if (!p) return;
        pending.delete(id);
        settleLocally(p, `the ml client thread did not answer ${m} within ${waitMs} ms`);
      }, waitMs);
      const p: Pending = {
        resolve: resolve as (r: unknown) => void,
        reject,
        fallback,
        timer,
        isHealth: m === 'checkHealth' || m === 'ready',
      };
      const w = start();
      if (!w) {
        settleLocally(p, problem ?? 'the ml client is closed');
        return;
      }
      pending.set(id, p);
      w.postMessage({ t: 'call', id, m, a } as ThreadCall);
    });
  }

  function health(): MlHealth {
    const stats = {
      calls: (posted?.stats.calls ?? 0) + local.calls,
      fallbacks: (posted?.stats.fallbacks ?? 0) + local.fallbacks,
      failures: (posted?.stats.failures ?? 0) + local.failures,
    };
    const note = config.fallback_enabled ? 'local heuristics answer' : 'no fallback: calls fail';
    if (problem || closed) {
      return {
        status: config.fallback_enabled ? 'degraded' : 'down',
        detail: `${closed ? 'ml client closed' : problem}; ${note}`,
        breaker: BreakerState.Open,
        stats,
      };
    }
    if (!posted) {
      return {
        status: config.fallback_enabled ? 'degraded' : 'down',
        detail: `not checked yet; ${note}`,
        breaker: BreakerState.Closed,
        stats,
      };
    }
    return { ...posted, stats };
  }

  start();
  const first = call('ready', [], health, HEALTH_WAIT_MS);

  return {
    predictBandwidth: (samples, opts = {}) =>
      call('predictBandwidth', [samples, opts], () => fallbackBandwidth(samples)),
    predictBandwidthBatch: (series, opts = {}) =>
      call('predictBandwidthBatch', [series, opts], () => series.map((s) => fallbackBandwidth(s))),
    optimizePlacement: (c) => call('optimizePlacement', [c], () => fallbackPlacement(c.nodes, c.need)),
    predictLifetime: (vms) => call('predictLifetime', [vms], () => vms.map(fallbackLifetime)),
    health,
    checkHealth: () => call('checkHealth', [], health, HEALTH_WAIT_MS),
    ready: () => first,
    workerThread: () => worker,
    close: () => {
      if (closed) return;
      closed = true;
      for (const [id, p] of pending) {
        pending.delete(id);
        settleLocally(p, 'the ml client is closed');
      }
      const w = worker;
      worker = undefined;
      if (w) {
        w.postMessage({ t: 'close' });
        setTimeout(() => void w.terminate(), 1000).unref();
      }
    },
  };
}
