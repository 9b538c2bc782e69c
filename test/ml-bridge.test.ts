// ML bridge end to end: a real gRPC service and the real client over loopback, plus services that
// are absent, hang or answer garbage, the circuit breaker, hot model reload and the metrics endpoint.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { createMlClient, type MlConfig } from '../src/ml/client.js';
import { startMlServer } from '../src/ml/service/server.js';
import { loadMlServices } from '../src/ml/proto.js';
import { DEFAULT_MODELS_DIR, parseModelFile, type BandwidthModelFile } from '../src/ml/models/model-file.js';
import { predictNext } from '../src/ml/models/bandwidth-model.js';
import { NovaCronError } from '../src/errors.js';

const modelsDir = mkdtempSync(join(tmpdir(), 'ml-bridge-'));
for (const f of ['bandwidth.json', 'lifetime.json'])
  copyFileSync(join(DEFAULT_MODELS_DIR, f), join(modelsDir, f));
const server = await startMlServer({ port: 0, modelsDir, metricsPort: 0 });
after(async () => {
  await server.close();
  rmSync(modelsDir, { recursive: true, force: true });
});

function config(address: string, over: Partial<MlConfig> = {}): MlConfig {
  return {
    enabled: true,
    service_address: address,
    timeout_ms: 1000,
    fallback_enabled: true,
    health_check_interval_seconds: 3600,
    breaker_failure_threshold: 2,
    breaker_reset_seconds: 10,
    transport_thread_young_mb: 2,
    ...over,
  };
}

const history = [5, 5.5, 4.8, 6, 5.2, 5.1, 4.9, 6.3, 5.8];
const nodes = [
  {
    nodeId: 'n1',
    cpuAvailable: 8,
    memoryAvailable: 32,
    cpuCapacity: 16,
    memoryCapacity: 64,
    residentEndTimesS: [5000],
  },
  {
    nodeId: 'n2',
    cpuAvailable: 2,
    memoryAvailable: 4,
    cpuCapacity: 16,
    memoryCapacity: 64,
    residentEndTimesS: [200000],
  },
  {
    nodeId: 'n3',
    cpuAvailable: 1,
    memoryAvailable: 1,
    cpuCapacity: 16,
    memoryCapacity: 64,
    residentEndTimesS: [],
  },
];

/** A loopback port nothing listens on. */
async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  s.close();
  await once(s, 'close');
  return port;
}

test('contract round trip: predictions, placement, lifetimes and health from the real service', async () => {
  const client = createMlClient(config(`127.0.0.1:${server.port}`), undefined, { backgroundHealth: false });
  try {
    const h = await client.ready();
    assert.equal(h.status, 'up', h.detail);
    const bwFile = server.models.current.bandwidth.file;
    assert.ok(h.models?.some((m) => m.kind === 'bandwidth' && m.version === bwFile.version));

    const p = await client.predictBandwidth(history, { profile: 'fcc_5s' });
    assert.equal(p.source, 'model');
    assert.equal(p.modelVersion, `${bwFile.version}/fcc_5s`);
    const local = predictNext(bwFile.params.profiles['fcc_5s']!, history);
    assert.ok(Math.abs(p.predicted - local.predicted) < 1e-9, 'the service answers what the model computes');
    assert.ok(p.lower <= p.predicted && p.predicted <= p.upper && p.confidence >= 0 && p.confidence <= 1);
    const generic = await client.predictBandwidth(history, { profile: 'no-such-profile' });
    assert.equal(generic.modelVersion, `${bwFile.version}/generic`);
    // Several series in one round trip: the same answers as one call each, in order.
    const batch = await client.predictBandwidthBatch([history, history.map((x) => x * 2)], {
      profile: 'fcc_5s',
    });
    assert.equal(batch.length, 2);
    assert.ok(batch.every((b) => b.source === 'model'));
    assert.ok(Math.abs(batch[0]!.predicted - p.predicted) < 1e-9);
    assert.ok(Math.abs(batch[1]!.predicted - 2 * p.predicted) < 1e-6 * p.predicted, 'scale-free model');

    const placement = await client.optimizePlacement({
      taskId: 'vm-1',
      nodes,
      need: { cpu: 2, memory: 4 },
      vm: { vcpus: 2, memoryGb: 4, batchSize: 30, arrivalTimeS: 1000 },
      nowS: 1000,
    });
    assert.equal(placement.source, 'model');
    assert.ok(['n1', 'n2'].includes(placement.selectedNodeId));
    assert.deepEqual(placement.scores.map((s) => s.nodeId).sort(), ['n1', 'n2'], 'n3 does not fit');
    assert.ok(placement.predictedLifetimeS !== undefined && placement.predictedLifetimeS > 0);

    const none = await client.optimizePlacement({ taskId: 'big', nodes, need: { cpu: 100, memory: 1 } });
    assert.equal(none.selectedNodeId, '');
    assert.equal(none.source, 'model');

    const lifetimes = await client.predictLifetime([
      { vcpus: 1, memoryGb: 1.75, flavor: 'b', batchSize: 1, arrivalTimeS: 0 },
      { vcpus: 1, memoryGb: 1.75, batchSize: 200, arrivalTimeS: 0 },
    ]);
    assert.equal(lifetimes.length, 2);
    assert.ok(lifetimes.every((l) => l.source === 'model' && l.probabilities.length === 3));
  } finally {
    client.close();
  }
});

test('the standard grpc.health.v1 service and the Prometheus endpoint answer', async () => {
  const Health = grpc.makeClientConstructor(healthService, 'Health');
  const hc = new Health(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as grpc.Client & {
    check(
      req: { service: string },
      cb: (err: grpc.ServiceError | null, res?: { status: unknown }) => void,
    ): void;
  };
  try {
    for (const svc of ['', 'novacron.ml.v1.BandwidthPredictor', 'novacron.ml.v1.TaskPlacer']) {
      const res = await new Promise<{ status: unknown }>((resolve, reject) =>
        hc.check({ service: svc }, (err, r) => (err ? reject(err) : resolve(r!))),
      );
      assert.ok(res.status === 'SERVING' || res.status === 1, `status of "${svc}": ${String(res.status)}`);
    }
  } finally {
    hc.close();
  }
  const text = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
  assert.match(text, /novacron_ml_requests_total\{method="PredictBandwidth",code="OK"\} \d+/);
  assert.match(text, /novacron_ml_request_duration_seconds_bucket\{le="0\.001",method="PredictBandwidth"\}/);
  assert.ok(
    text.includes(
      `novacron_ml_model_info{kind="bandwidth",version="${server.models.current.bandwidth.file.version}"} 1`,
    ),
  );
});

test('invalid input is INVALID_ARGUMENT from the service, and the client falls back', async () => {
  const defs = loadMlServices();
  const raw = new defs.BandwidthClient(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  ) as grpc.Client & Record<string, (req: unknown, cb: (err: grpc.ServiceError | null) => void) => void>;
  try {
    const batch = await new Promise<{ responses: { predicted_bandwidth: number; model_version: string }[] }>(
      (resolve, reject) =>
        (
          raw['PredictBandwidthBatch'] as unknown as (
            r: unknown,
            cb: (e: grpc.ServiceError | null, v?: unknown) => void,
          ) => void
        )(
          {
            requests: [
              { historical_bandwidth: [1, 2, 3] },
              { historical_bandwidth: [10, 10, 10], profile: 'fcc_1s' },
            ],
          },
          (e, v) =>
            e
              ? reject(e)
              : resolve(v as { responses: { predicted_bandwidth: number; model_version: string }[] }),
        ),
    );
    assert.equal(batch.responses.length, 2);
    assert.ok(batch.responses[1]!.model_version.endsWith('/fcc_1s'));
    assert.ok(
      batch.responses.every((r) => Number.isFinite(r.predicted_bandwidth) && r.predicted_bandwidth >= 0),
    );
    const err = await new Promise<grpc.ServiceError | null>((resolve) =>
      raw['PredictBandwidth']!({ historical_bandwidth: [1, -2, 3] }, (e) => resolve(e)),
    );
    assert.equal(err?.code, grpc.status.INVALID_ARGUMENT);
  } finally {
    raw.close();
  }
  const client = createMlClient(config(`127.0.0.1:${server.port}`), undefined, { backgroundHealth: false });
  try {
    const p = await client.predictBandwidth([1, -2, 3]);
    assert.equal(p.source, 'fallback');
  } finally {
    client.close();
  }
});

test('a new model file is picked up while requests keep flowing, none dropped', async () => {
  const client = createMlClient(config(`127.0.0.1:${server.port}`), undefined, { backgroundHealth: false });
  try {
    await client.ready();
    const before = server.models.current.bandwidth.file.version;
    const doc = parseModelFile(
      readFileSync(join(modelsDir, 'bandwidth.json'), 'utf8'),
      'x',
    ) as BandwidthModelFile;
    // Same parameters, nudged: a genuinely different model with a newer timestamp and version.
    const g = doc.params.profiles['generic']!;
    const nudged = {
      ...g,
      bins: g.bins.map((b) => ({ ...b, point: b.point.map((w, i) => (i === 0 ? w - 0.01 : w)) })),
    };
    const next = {
      ...doc,
      createdAt: new Date(Date.parse(doc.createdAt) + 86_400_000).toISOString(),
      version: `${doc.version}-next`,
      params: { ...doc.params, profiles: { ...doc.params.profiles, generic: nudged } },
    };
    let stop = false;
    const versions = new Set<string>();
    let calls = 0;
    const load = (async () => {
      while (!stop) {
        const batch = await Promise.all(Array.from({ length: 8 }, () => client.predictBandwidth(history)));
        for (const r of batch) {
          calls++;
          assert.equal(r.source, 'model', 'no request may fall back during a reload');
          versions.add(r.modelVersion);
        }
      }
    })();
    const reloaded = once(server.models, 'reload');
    const tmp = join(modelsDir, '.next.tmp');
    writeFileSync(tmp, JSON.stringify(next));
    renameSync(tmp, join(modelsDir, 'bandwidth-next.json'));
    const [res] = (await reloaded) as [{ changed: boolean }];
    assert.equal(res.changed, true);
    // Let a few more requests through on the new model, then stop.
    const seen = calls;
    while (calls < seen + 32) await new Promise<void>((r) => setImmediate(r));
    stop = true;
    await load;
    assert.equal(server.models.current.bandwidth.file.version, next.version);
    assert.ok(versions.has(`${before}/generic`) || calls > 0);
    assert.ok(versions.has(`${next.version}/generic`), `versions seen: ${[...versions].join(', ')}`);
    // A broken file dropped in does not replace the good model.
    const broken = once(server.models, 'reload');
    writeFileSync(join(modelsDir, 'zz-broken.json'), '{"format":');
    const [r2] = (await broken) as [{ rejected: unknown[] }];
    assert.ok(r2.rejected.length >= 1);
    assert.equal(server.models.current.bandwidth.file.version, next.version);
  } finally {
    client.close();
  }
});

test('service absent: fallback answers, health degraded, breaker opens; the service coming back is used again', async () => {
  const port = await freePort();
  let now = 0;
  const client = createMlClient(
    config(`127.0.0.1:${port}`, { breaker_failure_threshold: 2, breaker_reset_seconds: 5 }),
    undefined,
    {
      backgroundHealth: false,
      now: () => now,
    },
  );
  try {
    const h0 = await client.ready();
    assert.equal(h0.status, 'degraded');
    const p = await client.predictBandwidth([10, 10, 10]);
    assert.equal(p.source, 'fallback');
    assert.equal(p.predicted, 10, 'the seed heuristic: a moving average');
    assert.equal(client.health().breaker, 'open', 'health check + one call = 2 failures');
    const pl = await client.optimizePlacement({ taskId: 't', nodes, need: { cpu: 2, memory: 4 } });
    assert.equal(pl.source, 'fallback');
    assert.equal(pl.selectedNodeId, 'n2', 'local best fit');
    const lt = await client.predictLifetime([{ vcpus: 1, memoryGb: 1, batchSize: 50, arrivalTimeS: 0 }]);
    assert.equal(lt[0]!.cls, 0);

    const back = await startMlServer({ port, modelsDir, watch: false });
    try {
      now += 5000; // breaker pause over
      // Health checks wait for the channel (within the deadline); the channel may still be in
      // its reconnect backoff for the first one, so allow a few checks, as the timer would.
      let h = await client.checkHealth();
      for (let i = 0; i < 10 && h.status !== 'up'; i++) h = await client.checkHealth();
      assert.equal(h.status, 'up', h.detail);
      assert.equal((await client.predictBandwidth(history)).source, 'model');
    } finally {
      await back.close();
    }
  } finally {
    client.close();
  }
});

test('service hangs: every call still answers (fallback) within the deadline', async () => {
  const sockets: Socket[] = [];
  const hang: NetServer = createServer((s) => sockets.push(s)); // accepts, never speaks HTTP/2
  hang.listen(0, '127.0.0.1');
  await once(hang, 'listening');
  const port = (hang.address() as { port: number }).port;
  const client = createMlClient(
    config(`127.0.0.1:${port}`, { timeout_ms: 100, breaker_failure_threshold: 100 }),
    undefined,
    {
      backgroundHealth: false,
    },
  );
  try {
    await client.ready();
    const t0 = performance.now();
    const [a, b] = await Promise.all([
      client.predictBandwidth([3, 4]),
      client.optimizePlacement({ taskId: 't', nodes, need: { cpu: 1, memory: 1 } }),
    ]);
    const took = performance.now() - t0;
    assert.equal(a.source, 'fallback');
    assert.equal(b.source, 'fallback');
    // Generous bound (the deadline is 100 ms): the point is that a hang does not hang the caller.
    assert.ok(took < 2000, `took ${took} ms`);
    assert.equal(client.health().status, 'degraded');
  } finally {
    client.close();
    for (const s of sockets) s.destroy();
    hang.close();
  }
});

test('service answers garbage: rejected, counted as failures, breaker opens then half-opens and closes', async () => {
  const defs = loadMlServices();
  let mode: 'garbage' | 'good' = 'garbage';
  let calls = 0;
  const fake = new grpc.Server();
  const healthy = (_c: unknown, cb: grpc.sendUnaryData<unknown>) =>
    cb(null, { healthy: true, version: 'fake', models: [] });
  fake.addService(defs.bandwidth, {
    PredictBandwidth: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => {
      calls++;
      cb(
        null,
        mode === 'garbage'
          ? { predicted_bandwidth: -1, confidence: 7 }
          : { predicted_bandwidth: 42, confidence: 0.9, model_version: 'fake-1' },
      );
    },
    PredictBandwidthBatch: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { responses: [] }),
    HealthCheck: healthy,
  });
  fake.addService(defs.placer, {
    OptimizePlacement: (_c: unknown, cb: grpc.sendUnaryData<unknown>) =>
      cb(null, { selected_node_id: 'ghost', confidence: 1 }),
    PredictLifetime: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { predictions: [] }),
    HealthCheck: healthy,
  });
  const port = await new Promise<number>((resolve, reject) =>
    fake.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  let now = 0;
  const client = createMlClient(
    config(`127.0.0.1:${port}`, { breaker_failure_threshold: 2, breaker_reset_seconds: 10 }),
    undefined,
    {
      backgroundHealth: false,
      now: () => now,
    },
  );
  try {
    assert.equal((await client.ready()).status, 'up');
    const pl = await client.optimizePlacement({ taskId: 't', nodes, need: { cpu: 2, memory: 4 } });
    assert.equal(pl.source, 'fallback', 'an unknown node is garbage');
    assert.equal(
      (await client.predictLifetime([{ vcpus: 1, memoryGb: 1, batchSize: 1, arrivalTimeS: 0 }]))[0]!.source,
      'fallback',
    );
    assert.equal(client.health().breaker, 'open');
    const before = calls;
    assert.equal((await client.predictBandwidth([1, 2, 3])).source, 'fallback');
    assert.equal(calls, before, 'an open breaker does not call the service');
    assert.deepEqual(client.health().stats, { calls: 3, fallbacks: 3, failures: 2 });
    assert.equal(client.health().status, 'degraded');

    now += 10_000;
    assert.equal(client.health().breaker, 'half-open');
    assert.equal((await client.predictBandwidth([1, 2, 3])).source, 'fallback', 'trial answered garbage');
    assert.equal(calls, before + 1);
    assert.equal(client.health().breaker, 'open');

    mode = 'good';
    now += 10_000;
    const ok = await client.predictBandwidth([1, 2, 3]);
    assert.equal(ok.source, 'model');
    assert.equal(ok.predicted, 42);
    assert.equal(client.health().breaker, 'closed');
  } finally {
    client.close();
    fake.forceShutdown();
  }
});

test('with fallback disabled a failed call rejects; with ml disabled nothing is dialled', async () => {
  const port = await freePort();
  const strict = createMlClient(config(`127.0.0.1:${port}`, { fallback_enabled: false }), undefined, {
    backgroundHealth: false,
  });
  try {
    assert.equal((await strict.ready()).status, 'down');
    await assert.rejects(
      strict.predictBandwidth([1, 2]),
      (e: unknown) => e instanceof NovaCronError && e.code === 'unavailable',
    );
  } finally {
    strict.close();
  }
  const off = createMlClient(config(`127.0.0.1:${port}`, { enabled: false }));
  try {
    assert.equal((await off.predictBandwidth([4, 4])).source, 'fallback');
    assert.equal(off.health().status, 'degraded');
    assert.match(off.health().detail, /disabled/);
  } finally {
    off.close();
  }
});

test('scheduler hint adapter: hints from the real service, local scorers when it is absent', async () => {
  const { placeVmsWithHints } = await import('../src/scheduler/index.js');
  const { createMlHintProvider } = await import('../src/ml/placement-hint.js');
  const mk = (id: string, usedCpus: number) => ({
    id,
    status: 'ready' as const,
    labels: {},
    drivers: ['sim'],
    liveMigration: false,
    groups: {},
    capacity: { cpus: 16, memoryMib: 65536, diskGib: 100 },
    allocated: { cpus: usedCpus, memoryMib: usedCpus * 2048, diskGib: 0 },
  });
  const snapshot = { nodes: [mk('a', 0), mk('b', 8), mk('c', 15)] };
  const requests = [{ id: 'vm-1', resources: { cpus: 2, memoryMib: 4096, diskGib: 1 } }];
  const ends = new Map([
    ['a', []],
    ['b', [1000 + 1800]],
    ['c', [1000 + 86400]],
  ]);
  const client = createMlClient(config(`127.0.0.1:${server.port}`), undefined, { backgroundHealth: false });
  try {
    await client.ready();
    const provider = createMlHintProvider(client, {
      nowS: () => 1000,
      residentEndTimes: (id) => ends.get(id),
    });
    const hints = await provider.scoreNodes(requests[0]!, snapshot.nodes, 1000);
    assert.deepEqual([...hints.keys()].sort(), ['a', 'b'], 'c has 1 CPU left');
    for (const v of hints.values()) assert.ok(v >= 0 && v <= 100);
    const decision = await placeVmsWithHints(
      snapshot,
      requests,
      { strategy: 'balanced' },
      { provider, deadlineMs: 1000 },
    );
    assert.deepEqual(decision.hinted, ['vm-1']);
    assert.equal(decision.placements.length, 1);
  } finally {
    client.close();
  }
  const port = await freePort();
  const absent = createMlClient(config(`127.0.0.1:${port}`), undefined, { backgroundHealth: false });
  try {
    const provider = createMlHintProvider(absent);
    const decision = await placeVmsWithHints(
      snapshot,
      requests,
      { strategy: 'balanced' },
      { provider, deadlineMs: 1000 },
    );
    assert.deepEqual(decision.hinted, [], 'no hints: the scheduler used its local scorers');
    assert.equal(decision.placements.length, 1);
  } finally {
    absent.close();
  }
});
