// The ML bridge client: a deadline per call, a circuit breaker, background health checks, and local fallbacks.
//
//   caller ──► MlClient ──(breaker closed/half-open)──► gRPC call with deadline ml.timeout_ms ──► answer
//                 │                                          │ error / timeout / garbage
//                 └──(breaker open, ml disabled)─────────────┴──► local heuristic (fallback.ts)
//
// Every method resolves within ml.timeout_ms (plus the time of the local heuristic), whatever
// the service does. With ml.fallback_enabled false, a failed call rejects with UnavailableError.
//
// Transport: the lean gRPC client of h2-transport.ts over node:http2 by default (about a third less
// CPU per call than grpc-js, see BENCHMARKS.md, ml); `transport: 'grpc-js'` uses grpc-js clients
// built from the same service definitions (proto.ts). Both speak standard gRPC to the same server.
import * as grpc from '@grpc/grpc-js';
import type { NovaCronConfig } from '../config/schema.js';
import { UnavailableError, errorMessage } from '../errors.js';
import { CircuitBreaker, BreakerState } from './breaker.js';
import {
  fallbackBandwidth,
  fallbackPlacement,
  FALLBACK_VERSION,
  type BandwidthAnswer,
  type PlacementAnswer,
  type PlacementNeed,
  type PlacementNode,
} from './fallback.js';
import { BANDWIDTH_SERVICE, PLACER_SERVICE, loadMlServices } from './proto.js';
import * as codec from './codec.js';
import { createH2Transport, type UnaryTransport } from './h2-transport.js';
import { createThreadTransport } from './thread-transport.js';
import type {
  WireBandwidthResponse,
  WireHealthResponse,
  WireLifetimeResponse,
  WirePlacementResponse,
  WireVmFeatures,
} from './proto.js';
import type { VmCreationFeatures } from './models/lifetime-model.js';

export type MlConfig = NovaCronConfig['ml'];

export type MlHealthStatus = 'up' | 'degraded' | 'down';
export interface MlHealth {
  readonly status: MlHealthStatus;
  readonly detail: string;
  readonly breaker: BreakerState;
  /** Model versions the service reported at the last successful check. */
  readonly models?: readonly { readonly kind: string; readonly version: string }[];
  /** Calls made through this client since it was created, and how many the local heuristics answered. */
  readonly stats: { readonly calls: number; readonly fallbacks: number; readonly failures: number };
}

/** Minimal logger (pino-compatible). */
export interface MlClientLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface BandwidthCallOptions {
  readonly vmId?: string;
  readonly networkType?: string;
  /** Model profile (trace family), e.g. `fcc_5s`; the model's default when absent. */
  readonly profile?: string;
}

export interface PlacementCall {
  readonly taskId: string;
  readonly nodes: readonly PlacementNode[];
  readonly need: PlacementNeed;
  readonly vm?: VmCreationFeatures;
  /** Current time in seconds on the clock of `residentEndTimesS`. */
  readonly nowS?: number;
}

export interface LifetimeAnswer {
  readonly cls: number;
  readonly probabilities: readonly number[];
  readonly expectedLifetimeS: number;
  readonly source: 'model' | 'fallback';
}

export interface MlClient {
  predictBandwidth(samples: readonly number[], opts?: BandwidthCallOptions): Promise<BandwidthAnswer>;
  /**
   * Several series in one call (PredictBandwidthBatch): one round trip instead of one per series.
   * Answers in the order of `series`; on any failure every series gets the local fallback.
   */
  predictBandwidthBatch(
    series: readonly (readonly number[])[],
    opts?: BandwidthCallOptions,
  ): Promise<readonly BandwidthAnswer[]>;
  optimizePlacement(call: PlacementCall): Promise<PlacementAnswer>;
  predictLifetime(vms: readonly VmCreationFeatures[]): Promise<readonly LifetimeAnswer[]>;
  /** The state now, without a network call. */
  health(): MlHealth;
  /** Runs one health check now and returns the new state. */
  checkHealth(): Promise<MlHealth>;
  /** Resolves after the first health check (it starts at creation). */
  ready(): Promise<MlHealth>;
  close(): void;
}

export interface MlClientOptions {
  /** Injected clock for the breaker. */
  readonly now?: () => number;
  /** Start the periodic health checks (default true). */
  readonly backgroundHealth?: boolean;
  /** Extra grpc-js channel options (e.g. a distinct key to get a channel of one's own); grpc-js transport only. */
  readonly channelOptions?: grpc.ChannelOptions;
  /** `http2` (default): the lean client of h2-transport.ts; `grpc-js`: grpc-js clients. */
  readonly transport?: MlTransport;
}

export type MlTransport = 'http2' | 'grpc-js';

/** The unary methods the client calls, with their paths and codecs (for the http2 transport). */
const METHODS = {
  PredictBandwidth: {
    path: `/${BANDWIDTH_SERVICE}/PredictBandwidth`,
    enc: codec.encodeBandwidthRequest,
    dec: codec.decodeBandwidthResponse,
  },
  PredictBandwidthBatch: {
    path: `/${BANDWIDTH_SERVICE}/PredictBandwidthBatch`,
    enc: codec.encodeBandwidthBatchRequest,
    dec: codec.decodeBandwidthBatchResponse,
  },
  HealthCheck: {
    path: `/${BANDWIDTH_SERVICE}/HealthCheck`,
    enc: codec.encodeHealthRequest,
    dec: codec.decodeHealthResponse,
  },
  OptimizePlacement: {
    path: `/${PLACER_SERVICE}/OptimizePlacement`,
    enc: codec.encodePlacementRequest,
    dec: codec.decodePlacementResponse,
  },
  PredictLifetime: {
    path: `/${PLACER_SERVICE}/PredictLifetime`,
    enc: codec.encodeLifetimeRequest,
    dec: codec.decodeLifetimeResponse,
  },
} as const;
type MethodName = keyof typeof METHODS;

/** Local lifetime guess without the service: the scheduler's batch rule (large batches are short-lived). */
export function fallbackLifetime(vm: VmCreationFeatures): LifetimeAnswer {
  const short = vm.batchSize > 10;
  return short
    ? { cls: 0, probabilities: [0.8, 0.15, 0.05], expectedLifetimeS: 0.9 * 3600, source: 'fallback' }
    : { cls: 1, probabilities: [0.5, 0.4, 0.1], expectedLifetimeS: 4.5 * 3600, source: 'fallback' };
}

class Garbage extends Error {}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Checks a PredictBandwidth answer is usable; throws Garbage otherwise. */
function checkBandwidth(r: WireBandwidthResponse | undefined): BandwidthAnswer {
  if (
    !r ||
    !finite(r.predicted_bandwidth) ||
    r.predicted_bandwidth < 0 ||
    !finite(r.confidence) ||
    r.confidence < 0 ||
    r.confidence > 1
  ) {
    throw new Garbage('PredictBandwidth answered an unusable prediction');
  }
  const lower = finite(r.lower_bound) ? r.lower_bound : r.predicted_bandwidth;
  const upper = finite(r.upper_bound) ? r.upper_bound : r.predicted_bandwidth;
  return {
    predicted: r.predicted_bandwidth,
    confidence: r.confidence,
    lower: Math.min(lower, r.predicted_bandwidth),
    upper: Math.max(upper, r.predicted_bandwidth),
    modelVersion: r.model_version || 'unknown',
    source: 'model',
  };
}

function checkPlacement(r: WirePlacementResponse | undefined, call: PlacementCall): PlacementAnswer {
  if (!r || typeof r.selected_node_id !== 'string' || !finite(r.confidence)) {
    throw new Garbage('OptimizePlacement answered an unusable decision');
  }
  const known = new Set(call.nodes.map((n) => n.nodeId));
  if (r.selected_node_id !== '' && !known.has(r.selected_node_id)) {
    throw new Garbage(`OptimizePlacement chose unknown node ${r.selected_node_id}`);
  }
  const scores = (r.scores ?? []).filter((s) => known.has(s.node_id) && finite(s.score));
  return {
    selectedNodeId: r.selected_node_id,
    confidence: Math.max(0, Math.min(1, r.confidence)),
    reasoning: r.reasoning,
    scores: scores.map((s) => ({ nodeId: s.node_id, score: s.score, reason: s.reason })),
    modelVersion: r.model_version || 'unknown',
    ...(finite(r.predicted_lifetime_class) ? { predictedLifetimeClass: r.predicted_lifetime_class } : {}),
    ...(finite(r.predicted_lifetime_s) ? { predictedLifetimeS: r.predicted_lifetime_s } : {}),
    source: 'model',
  };
}

function toWireVm(vm: VmCreationFeatures): WireVmFeatures {
  return {
    vcpus: vm.vcpus,
    memory_gb: vm.memoryGb,
    flavor: vm.flavor ?? '',
    batch_size: vm.batchSize,
    arrival_time_s: vm.arrivalTimeS,
  };
}

type UnaryMethod = (
  req: unknown,
  meta: grpc.Metadata,
  options: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res?: unknown) => void,
) => grpc.ClientUnaryCall;

/** The lean HTTP/2 transport, on a worker thread of its own when `ml.transport_thread_young_mb` > 0. */
function leanTransport(config: MlConfig, logger: MlClientLogger | undefined): UnaryTransport {
  if (config.transport_thread_young_mb <= 0) return createH2Transport(config.service_address);
  return createThreadTransport(config.service_address, {
    youngGenerationMb: config.transport_thread_young_mb,
    onExit: (reason) => logger?.warn({ reason }, 'ml: transport thread gone, restarting it on the next call'),
  });
}

/**
 * Creates the client. It connects lazily, starts a health check at once and then every
 * `ml.health_check_interval_seconds`, and never throws from its methods while
 * `ml.fallback_enabled` is on.
 */
export function createMlClient(
  config: MlConfig,
  logger?: MlClientLogger,
  options: MlClientOptions = {},
): MlClient {
  const breaker = new CircuitBreaker({
    failureThreshold: config.breaker_failure_threshold,
    resetMs: config.breaker_reset_seconds * 1000,
    ...(options.now ? { now: options.now } : {}),
    onChange: (from, to) =>
      logger?.warn({ from, to, address: config.service_address }, `ml: circuit breaker ${to}`),
  });
  let lastError = config.enabled ? 'not checked yet' : 'disabled by config (ml.enabled is false)';
  let lastOk = false;
  let models: MlHealth['models'];
  const stats = { calls: 0, fallbacks: 0, failures: 0 };

  const transport = options.transport ?? 'http2';
  const h2 = config.enabled && transport === 'http2' ? leanTransport(config, logger) : undefined;
  const defs = config.enabled && transport === 'grpc-js' ? loadMlServices() : undefined;
  const channelOptions: grpc.ChannelOptions = {
    'grpc.enable_channelz': 0,
    'grpc.initial_reconnect_backoff_ms': 200,
    'grpc.min_reconnect_backoff_ms': 200,
    // Short backoff: a service that comes back is found by the next health check, not minutes later.
    'grpc.max_reconnect_backoff_ms': Math.min(
      5000,
      Math.max(1000, config.health_check_interval_seconds * 1000),
    ),
    ...options.channelOptions,
  };
  const creds = grpc.credentials.createInsecure();
  const bw = defs ? new defs.BandwidthClient(config.service_address, creds, channelOptions) : undefined;
  const placer = defs ? new defs.PlacerClient(config.service_address, creds, channelOptions) : undefined;

  /** The grpc-js client of a method's service. */
  const clientOf = (method: MethodName) =>
    METHODS[method].path.startsWith(`/${PLACER_SERVICE}/`) ? placer : bw;

  /** One unary call with the deadline; rejects on error, timeout or cancellation. */
  function invoke<T>(method: MethodName, req: unknown, waitForReady = false): Promise<T> {
    if (h2) {
      // A call made while the connection opens waits for it (within the deadline): wait-for-ready.
      const m = METHODS[method] as {
        path: string;
        enc: (m: unknown, w: codec.Writer) => void;
        dec: (r: codec.Reader, end: number) => unknown;
      };
      return h2.unary(m.path, codec.encodeFramed(req, m.enc), config.timeout_ms).then((bytes) => {
        const r = new codec.Reader(bytes);
        return m.dec(r, r.len) as T;
      });
    }
    const client = clientOf(method);
    return new Promise<T>((resolve, reject) => {
      if (!client) {
        reject(new UnavailableError('ml is disabled'));
        return;
      }
      const fn = (client as unknown as Record<string, UnaryMethod>)[method]!.bind(client);
      let done = false;
      const call = fn(
        req,
        new grpc.Metadata({ waitForReady }),
        { deadline: Date.now() + config.timeout_ms },
        (err, res) => {
          if (done) return;
          done = true;
          clearTimeout(guard);
          if (err) reject(err);
          else resolve(res as T);
        },
      );
      // The gRPC deadline should fire first; this guard bounds the wait even if it does not.
      const guard = setTimeout(() => {
        if (done) return;
        done = true;
        call.cancel();
        reject(new UnavailableError(`ml call ${method} exceeded ${config.timeout_ms} ms`));
      }, config.timeout_ms + 5);
    });
  }

  /** Runs a guarded call: breaker, deadline, validation; falls back (or throws) on any failure. */
  async function guarded<W, A>(
    method: MethodName,
    req: unknown,
    check: (w: W) => A,
    fallback: () => A,
  ): Promise<A> {
    stats.calls++;
    if (!config.enabled || !breaker.allow()) {
      if (!config.fallback_enabled) {
        throw new UnavailableError(`ml service ${config.enabled ? 'circuit open' : 'disabled'}`, {
          hint: 'enable ml.fallback_enabled to get local answers',
        });
      }
      stats.fallbacks++;
      return fallback();
    }
    try {
      const answer = check(await invoke<W>(method, req));
      breaker.success();
      lastOk = true;
      return answer;
    } catch (err) {
      breaker.failure();
      stats.failures++;
      lastOk = false;
      lastError = `${method}: ${errorMessage(err)}`;
      if (!config.fallback_enabled) {
        throw new UnavailableError(`ml service call ${method} failed: ${errorMessage(err)}`, { cause: err });
      }
      stats.fallbacks++;
      return fallback();
    }
  }

  let checking: Promise<MlHealth> | undefined;
  async function checkHealth(): Promise<MlHealth> {
    if (!config.enabled) return health();
    checking ??= (async () => {
      try {
        const r = await invoke<WireHealthResponse>('HealthCheck', {}, true);
        if (!r || r.healthy !== true) throw new Garbage('service reports unhealthy');
        models = (r.models ?? []).map((m) => ({ kind: m.kind, version: m.version }));
        if (!lastOk) logger?.info({ address: config.service_address, models }, 'ml: service is up');
        lastOk = true;
        breaker.success();
      } catch (err) {
        if (lastOk || lastError === 'not checked yet') {
          logger?.warn(
            { address: config.service_address, err: errorMessage(err) },
            'ml: service unavailable, using local heuristics',
          );
        }
        lastOk = false;
        lastError = `health check: ${errorMessage(err)}`;
        breaker.failure();
      } finally {
        checking = undefined;
      }
      return health();
    })();
    return checking;
  }

  function health(): MlHealth {
    const state = config.enabled ? breaker.state : BreakerState.Open;
    if (config.enabled && lastOk && state === BreakerState.Closed) {
      return {
        status: 'up',
        detail: `ml service at ${config.service_address}`,
        breaker: state,
        stats: { ...stats },
        ...(models ? { models } : {}),
      };
    }
    const fallbackNote = config.fallback_enabled ? 'local heuristics answer' : 'no fallback: calls fail';
    return {
      status: config.fallback_enabled ? 'degraded' : 'down',
      detail: `${lastError}; breaker ${state}; ${fallbackNote}`,
      breaker: state,
      stats: { ...stats },
    };
  }

  const first = checkHealth();
  const timer =
    config.enabled && (options.backgroundHealth ?? true)
      ? setInterval(() => void checkHealth(), config.health_check_interval_seconds * 1000)
      : undefined;
  timer?.unref();

  const bandwidthRequest = (samples: readonly number[], opts: BandwidthCallOptions) => ({
    vm_id: opts.vmId ?? '',
    timestamp: Math.floor(Date.now() / 1000),
    historical_bandwidth: samples,
    network_type: opts.networkType ?? '',
    profile: opts.profile ?? '',
  });

  return {
    predictBandwidth: (samples, opts = {}) =>
      guarded<WireBandwidthResponse, BandwidthAnswer>(
        'PredictBandwidth',
        bandwidthRequest(samples, opts),
        checkBandwidth,
        () => fallbackBandwidth(samples),
      ),
    predictBandwidthBatch: (series, opts = {}) =>
      guarded<{ responses: WireBandwidthResponse[] }, readonly BandwidthAnswer[]>(
        'PredictBandwidthBatch',
        { requests: series.map((s) => bandwidthRequest(s, opts)) },
        (r) => {
          if (!r || !Array.isArray(r.responses) || r.responses.length !== series.length) {
            throw new Garbage('PredictBandwidthBatch answered the wrong number of predictions');
          }
          return r.responses.map(checkBandwidth);
        },
        () => series.map((s) => fallbackBandwidth(s)),
      ),
    optimizePlacement: (call) =>
      guarded<WirePlacementResponse, PlacementAnswer>(
        'OptimizePlacement',
        {
          task_id: call.taskId,
          available_nodes: call.nodes.map((n) => ({
            node_id: n.nodeId,
            cpu_available: n.cpuAvailable,
            memory_available: n.memoryAvailable,
            network_bandwidth: n.networkBandwidth ?? 0,
            current_load: n.currentLoad ?? 0,
            cpu_capacity: n.cpuCapacity ?? 0,
            memory_capacity: n.memoryCapacity ?? 0,
            resident_end_times_s: n.residentEndTimesS ?? [], // read once by the encoder, not copied
          })),
          requirements: [
            {
              cpu_required: call.need.cpu,
              memory_required: call.need.memory,
              network_required: call.need.network ?? 0,
            },
          ],
          ...(call.vm ? { vm: toWireVm(call.vm) } : {}),
          now_s: call.nowS ?? Date.now() / 1000,
        },
        (r) => checkPlacement(r, call),
        () => fallbackPlacement(call.nodes, call.need),
      ),
    predictLifetime: (vms) =>
      guarded<WireLifetimeResponse, readonly LifetimeAnswer[]>(
        'PredictLifetime',
        { vms: vms.map(toWireVm) },
        (r) => {
          if (!r || !Array.isArray(r.predictions) || r.predictions.length !== vms.length) {
            throw new Garbage('PredictLifetime answered the wrong number of predictions');
          }
          return r.predictions.map((p) => {
            if (!finite(p.lifetime_class) || !finite(p.expected_lifetime_s) || p.expected_lifetime_s < 0) {
              throw new Garbage('PredictLifetime answered an unusable prediction');
            }
            return {
              cls: p.lifetime_class,
              probabilities: p.probabilities,
              expectedLifetimeS: p.expected_lifetime_s,
              source: 'model' as const,
            };
          });
        },
        () => vms.map(fallbackLifetime),
      ),
    health,
    checkHealth,
    ready: () => first,
    close: () => {
      if (timer) clearInterval(timer);
      bw?.close();
      placer?.close();
      h2?.close();
    },
  };
}

export { FALLBACK_VERSION };
