// The ML gRPC service: BandwidthPredictor and TaskPlacer, the standard health service, Prometheus metrics, hot model reload.
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { createServer, type Server as HttpServer } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { BANDWIDTH_SERVICE, PLACER_SERVICE, loadMlServices } from '../proto.js';
import type {
  WireBandwidthRequest,
  WireHealthResponse,
  WirePlacementRequest,
  WireVmFeatures,
} from '../proto.js';
import { ModelRegistry, type ModelSet, type ReloadResult } from './model-registry.js';
import {
  handleOptimizePlacement,
  handlePredictBandwidth,
  handlePredictBandwidthBatch,
  handlePredictLifetime,
} from './handlers.js';
import { UnavailableError, ensureNovaCronError } from '../../errors.js';
import * as codec from '../codec.js';
import { GrpcFailure, startH2GrpcServer, type H2GrpcServer, type H2Unary } from './h2-server.js';
import { grpcStatusOf } from '../../api/errors.js';

/** The subset of a pino logger the service writes to. */
export interface MlLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface MlServerOptions {
  /** Bind address; 127.0.0.1 by default. */
  readonly host?: string;
  /** gRPC port; 0 picks a free one (see MlServer.port). */
  readonly port: number;
  /** Directory of model files; the shipped models/ by default. */
  readonly modelsDir?: string;
  /** Watch the models directory and reload on change (default true). */
  readonly watch?: boolean;
  /** Port of the Prometheus /metrics HTTP endpoint; undefined: no HTTP endpoint (metrics still in `registry`). */
  readonly metricsPort?: number;
  /** Version string reported by HealthCheck. */
  readonly serviceVersion?: string;
  readonly logger?: MlLogger;
  /**
   * gRPC server implementation: `http2` (default), the lean server of h2-server.ts over node:http2;
   * `grpc-js`, grpc-js's Server. Same wire, same services (health included), same metrics.
   */
  readonly server?: 'http2' | 'grpc-js';
}

export interface MlServer {
  readonly port: number;
  readonly metricsPort: number | undefined;
  readonly models: ModelRegistry;
  readonly metrics: Registry;
  /** Rescans the models directory now. */
  reload(): ReloadResult;
  /** Stops accepting calls, lets in-flight calls finish (up to `graceMs`), then closes. */
  close(graceMs?: number): Promise<void>;
}

/** Starts the ML service and resolves once it listens. */
export async function startMlServer(opts: MlServerOptions): Promise<MlServer> {
  const log = opts.logger;
  const models = new ModelRegistry(opts.modelsDir);
  const registry = new Registry();
  const latency = new Histogram({
    name: 'novacron_ml_request_duration_seconds',
    help: 'Time to answer one ML call, by method',
    labelNames: ['method'] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
    registers: [registry],
  });
  const requests = new Counter({
    name: 'novacron_ml_requests_total',
    help: 'ML calls answered, by method and gRPC status',
    labelNames: ['method', 'code'] as const,
    registers: [registry],
  });
  const modelInfo = new Gauge({
    name: 'novacron_ml_model_info',
    help: 'Loaded model versions (value 1 for the one in use)',
    labelNames: ['kind', 'version'] as const,
    registers: [registry],
  });
  const reloads = new Counter({
    name: 'novacron_ml_model_reloads_total',
    help: 'Model directory rescans, by outcome (changed, unchanged, rejected files)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const publishModels = (set: ModelSet) => {
    modelInfo.reset();
    modelInfo.set({ kind: 'bandwidth', version: set.bandwidth.file.version }, 1);
    modelInfo.set({ kind: 'lifetime', version: set.lifetime.file.version }, 1);
  };
  publishModels(models.current);
  models.on('reload', (r) => {
    publishModels(r.models);
    reloads.inc({ outcome: r.changed ? 'changed' : 'unchanged' });
    if (r.rejected.length > 0) {
      reloads.inc({ outcome: 'rejected' }, r.rejected.length);
      log?.warn({ rejected: r.rejected }, 'ml: model files rejected');
    }
    if (r.changed) {
      log?.info(
        { bandwidth: r.models.bandwidth.file.version, lifetime: r.models.lifetime.file.version },
        'ml: models reloaded',
      );
    }
  });

  /**
   * Wraps a pure handler: one model snapshot per call, metrics; failures are thrown as GrpcFailure
   * (the gRPC status of the error, src/api/errors.ts).
   */
  function instrument<Req, Res>(method: string, fn: (m: ModelSet, req: Req) => Res): (req: Req) => Res {
    // Label children bound once per method: no label hashing on the hot path.
    const timer = latency.labels({ method });
    const ok = requests.labels({ method, code: 'OK' });
    return (req) => {
      const t0 = process.hrtime.bigint();
      const snapshot = models.current;
      try {
        const res = fn(snapshot, req);
        ok.inc();
        timer.observe(Number(process.hrtime.bigint() - t0) / 1e9);
        return res;
      } catch (err) {
        const e = ensureNovaCronError(err);
        const code = grpcStatusOf(e);
        requests.inc({ method, code: grpc.status[code] });
        timer.observe(Number(process.hrtime.bigint() - t0) / 1e9);
        throw new GrpcFailure(code, e.message);
      }
    };
  }

  /** The same, as a grpc-js unary handler. */
  function unary<Req, Res>(
    method: string,
    fn: (m: ModelSet, req: Req) => Res,
  ): grpc.handleUnaryCall<Req, Res> {
    const f = instrument(method, fn);
    return (call, callback) => {
      let res: Res;
      try {
        res = f(call.request);
      } catch (err) {
        const e = err as GrpcFailure;
        callback({ code: e.code, details: e.message });
        return;
      }
      callback(null, res);
    };
  }

  const health = (m: ModelSet): WireHealthResponse => ({
    healthy: true,
    version: opts.serviceVersion ?? 'novacron-ml',
    models: [
      { kind: 'bandwidth', version: m.bandwidth.file.version, file: m.bandwidth.path },
      { kind: 'lifetime', version: m.lifetime.file.version, file: m.lifetime.path },
    ],
  });

  const host = opts.host ?? '127.0.0.1';
  const healthMap = { '': 'SERVING', [BANDWIDTH_SERVICE]: 'SERVING', [PLACER_SERVICE]: 'SERVING' } as const;
  const handlers = {
    PredictBandwidth: (m: ModelSet, req: WireBandwidthRequest) => handlePredictBandwidth(m, req),
    PredictBandwidthBatch: (m: ModelSet, req: { requests: WireBandwidthRequest[] }) =>
      handlePredictBandwidthBatch(m, req.requests ?? []),
    HealthCheck: (m: ModelSet) => health(m),
    OptimizePlacement: (m: ModelSet, req: WirePlacementRequest) => handleOptimizePlacement(m, req),
    PredictLifetime: (m: ModelSet, req: { vms: WireVmFeatures[] }) => handlePredictLifetime(m, req.vms ?? []),
  };
  let stop: (graceMs: number) => Promise<void>;
  let setServing: (serving: boolean) => void;
  let port: number;
  if ((opts.server ?? 'http2') === 'http2') {
    const h2 = <Req, Res>(
      method: string,
      fn: (m: ModelSet, req: Req) => Res,
      dec: (r: codec.Reader, end: number) => Req,
      enc: (m: Res, w: codec.Writer) => void,
    ): H2Unary => ({
      decode: (b) => {
        const r = new codec.Reader(b);
        return dec(r, r.len);
      },
      handle: instrument(method, fn) as (req: unknown) => unknown,
      encodeFramed: (res) => codec.encodeFramed(res as Res, enc),
    });
    const healthCheck = h2(
      'HealthCheck',
      handlers.HealthCheck,
      codec.decodeHealthRequest,
      codec.encodeHealthResponse,
    );
    const methods = new Map<string, H2Unary>([
      [
        `/${BANDWIDTH_SERVICE}/PredictBandwidth`,
        h2(
          'PredictBandwidth',
          handlers.PredictBandwidth,
          codec.decodeBandwidthRequest,
          codec.encodeBandwidthResponse,
        ),
      ],
      [
        `/${BANDWIDTH_SERVICE}/PredictBandwidthBatch`,
        h2(
          'PredictBandwidthBatch',
          handlers.PredictBandwidthBatch,
          codec.decodeBandwidthBatchRequest,
          codec.encodeBandwidthBatchResponse,
        ),
      ],
      [`/${BANDWIDTH_SERVICE}/HealthCheck`, healthCheck],
      [
        `/${PLACER_SERVICE}/OptimizePlacement`,
        h2(
          'OptimizePlacement',
          handlers.OptimizePlacement,
          codec.decodePlacementRequest,
          codec.encodePlacementResponse,
        ),
      ],
      [
        `/${PLACER_SERVICE}/PredictLifetime`,
        h2(
          'PredictLifetime',
          handlers.PredictLifetime,
          codec.decodeLifetimeRequest,
          codec.encodeLifetimeResponse,
        ),
      ],
      [`/${PLACER_SERVICE}/HealthCheck`, healthCheck],
    ]);
    let server: H2GrpcServer;
    try {
      server = await startH2GrpcServer(host, opts.port, methods, healthMap);
    } catch (err) {
      throw new UnavailableError(
        `ml service cannot listen on ${host}:${opts.port}: ${(err as Error).message}`,
        { key: 'port', retryable: false, cause: err },
      );
    }
    port = server.port;
    stop = (graceMs) => server.close(graceMs);
    setServing = (serving) => server.setStatus('', serving ? 'SERVING' : 'NOT_SERVING');
  } else {
    const defs = loadMlServices();
    const server = new grpc.Server({ 'grpc.enable_channelz': 0 });
    server.addService(defs.bandwidth, {
      PredictBandwidth: unary('PredictBandwidth', handlers.PredictBandwidth),
      PredictBandwidthBatch: unary('PredictBandwidthBatch', handlers.PredictBandwidthBatch),
      HealthCheck: unary('HealthCheck', handlers.HealthCheck),
    });
    server.addService(defs.placer, {
      OptimizePlacement: unary('OptimizePlacement', handlers.OptimizePlacement),
      PredictLifetime: unary('PredictLifetime', handlers.PredictLifetime),
      HealthCheck: unary('HealthCheck', handlers.HealthCheck),
    });
    const healthImpl = new HealthImplementation({ ...healthMap });
    healthImpl.addToServer(server);
    port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${host}:${opts.port}`, grpc.ServerCredentials.createInsecure(), (err, p) => {
        if (err) {
          reject(
            new UnavailableError(`ml service cannot listen on ${host}:${opts.port}: ${err.message}`, {
              key: 'port',
              retryable: false,
              cause: err,
            }),
          );
        } else resolve(p);
      });
    });
    setServing = (serving) => healthImpl.setStatus('', serving ? 'SERVING' : 'NOT_SERVING');
    stop = (graceMs) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
  }

  let http: HttpServer | undefined;
  let metricsPort: number | undefined;
  if (opts.metricsPort !== undefined) {
    http = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('not found\n');
        return;
      }
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
    metricsPort = await new Promise<number>((resolve, reject) => {
      http!.once('error', reject);
      http!.listen(opts.metricsPort, host, () => {
        const a = http!.address();
        resolve(typeof a === 'object' && a ? a.port : 0);
      });
    });
  }
  if (opts.watch ?? true) models.watch();
  log?.info(
    {
      port,
      metricsPort,
      models: models.dir,
      bandwidth: models.current.bandwidth.file.version,
      lifetime: models.current.lifetime.file.version,
    },
    'ml: service listening',
  );

  return {
    port,
    metricsPort,
    models,
    metrics: registry,
    reload: () => models.reload(),
    close: async (graceMs = 2000) => {
      models.unwatch();
      setServing(false);
      await stop(graceMs);
      if (http) await new Promise<void>((resolve) => http!.close(() => resolve()));
    },
  };
}
