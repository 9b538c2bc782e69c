// The ML client on its own worker thread (src/ml/thread-client.ts), against the real service over
// loopback: the same answers as the plain client, fallbacks within the deadline when the service is
// absent or hangs, errors that keep their code and hint, and a worker that dies mid-call.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MlConfig } from '../src/ml/client.js';
import { createThreadMlClient } from '../src/ml/thread-client.js';
import { startMlServer } from '../src/ml/service/server.js';
import { DEFAULT_MODELS_DIR } from '../src/ml/models/model-file.js';
import { predictNext } from '../src/ml/models/bandwidth-model.js';
import { NovaCronError } from '../src/errors.js';
import { freePort } from './helpers/ports.js';

const modelsDir = mkdtempSync(join(tmpdir(), 'ml-thread-'));
for (const f of ['bandwidth.json', 'lifetime.json'])
  copyFileSync(join(DEFAULT_MODELS_DIR, f), join(modelsDir, f));
const server = await startMlServer({ port: 0, modelsDir, metricsPort: 0, watch: false });
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
    breaker_failure_threshold: 100,
    breaker_reset_seconds: 10,
    client_thread_young_mb: 2,
    ...over,
  };
}
const OPTS = { youngGenerationMb: 2, backgroundHealth: false } as const;
const history = [5, 5.5, 4.8, 6, 5.2, 5.1, 4.9, 6.3, 5.8];
const nodes = [
  { nodeId: 'n1', cpuAvailable: 8, memoryAvailable: 32, cpuCapacity: 16, memoryCapacity: 64 },
  { nodeId: 'n2', cpuAvailable: 2, memoryAvailable: 4, cpuCapacity: 16, memoryCapacity: 64 },
];

test('through the worker thread: the service answers what the model computes, health and counts follow', async () => {
  const client = createThreadMlClient(config(`127.0.0.1:${server.port}`), undefined, OPTS);
  try {
    assert.ok(client.workerThread(), 'a worker thread runs the client');
    const h = await client.ready();
    assert.equal(h.status, 'up', h.detail);
    const bwFile = server.models.current.bandwidth.file;
    assert.ok(h.models?.some((m) => m.kind === 'bandwidth' && m.version === bwFile.version));

    const p = await client.predictBandwidth(history, { profile: 'fcc_5s' });
    assert.equal(p.source, 'model');
    const local = predictNext(bwFile.params.profiles['fcc_5s']!, history);
    assert.ok(Math.abs(p.predicted - local.predicted) < 1e-9);
    const batch = await client.predictBandwidthBatch([history, history], { profile: 'fcc_5s' });
    assert.deepEqual(
      batch.map((b) => b.predicted),
      [p.predicted, p.predicted],
    );
    const placement = await client.optimizePlacement({
      taskId: 'vm-1',
      nodes,
      need: { cpu: 2, memory: 4 },
      vm: { vcpus: 2, memoryGb: 4, batchSize: 1, arrivalTimeS: 0 },
      nowS: 0,
    });
    assert.equal(placement.source, 'model');
    assert.ok(['n1', 'n2'].includes(placement.selectedNodeId));
    const lt = await client.predictLifetime([{ vcpus: 1, memoryGb: 1, batchSize: 1, arrivalTimeS: 0 }]);
    assert.equal(lt[0]!.source, 'model');

    // the worker posts health with every changed state and its counters within 250 ms
    let stats = client.health().stats;
    for (let i = 0; i < 40 && stats.calls < 4; i++) {
      await new Promise((r) => setTimeout(r, 25));
      stats = client.health().stats;
    }
    assert.deepEqual(stats, { calls: 4, fallbacks: 0, failures: 0 });
    assert.equal(client.health().status, 'up');
  } finally {
    client.close();
  }
});

test('service absent, then back: local answers at once, the model again after a health check', async () => {
  const port = await freePort();
  const client = createThreadMlClient(
    config(`127.0.0.1:${port}`, { breaker_failure_threshold: 2 }),
    undefined,
    OPTS,
  );
  try {
    const h0 = await client.ready();
    assert.equal(h0.status, 'degraded');
    assert.match(h0.detail, /health check/);
    const p = await client.predictBandwidth([10, 10, 10]);
    assert.equal(p.source, 'fallback');
    assert.equal(p.predicted, 10);
    const pl = await client.optimizePlacement({ taskId: 't', nodes, need: { cpu: 2, memory: 4 } });
    assert.equal(pl.source, 'fallback');
    assert.equal(pl.selectedNodeId, 'n2', 'local best fit');

    const back = await startMlServer({ port, modelsDir, watch: false, metricsPort: 0 });
    try {
      // the breaker stays open for breaker_reset_seconds; health checks close it once the service answers
      let h = await client.checkHealth();
      for (let i = 0; i < 20 && h.status !== 'up'; i++) {
        await new Promise((r) => setTimeout(r, 100));
        h = await client.checkHealth();
      }
      assert.equal(h.status, 'up', h.detail);
      assert.equal((await client.predictBandwidth(history)).source, 'model');
    } finally {
      await back.close();
    }
  } finally {
    client.close();
  }
});

test('service hangs: answers come from the fallback within the deadline', async () => {
  const sockets: Socket[] = [];
  const hang = createServer((s) => sockets.push(s)); // accepts, never speaks HTTP/2
  hang.listen(0, '127.0.0.1');
  await once(hang, 'listening');
  const port = (hang.address() as { port: number }).port;
  const client = createThreadMlClient(config(`127.0.0.1:${port}`, { timeout_ms: 100 }), undefined, OPTS);
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
    // generous bound (deadline 100 ms + the thread grace): a hang does not hang the caller
    assert.ok(took < 2000, `took ${took} ms`);
    assert.equal(client.health().status, 'degraded');
  } finally {
    client.close();
    for (const s of sockets) s.destroy();
    hang.close();
  }
});

test('fallback disabled: a failed call rejects with code unavailable, and keeps its hint, across the thread', async () => {
  const port = await freePort();
  const client = createThreadMlClient(
    config(`127.0.0.1:${port}`, { fallback_enabled: false }),
    undefined,
    OPTS,
  );
  // one failure opens this one's breaker: its calls are refused with a hint
  const open = createThreadMlClient(
    config(`127.0.0.1:${port}`, { fallback_enabled: false, breaker_failure_threshold: 1 }),
    undefined,
    OPTS,
  );
  try {
    assert.equal((await client.ready()).status, 'down');
    await assert.rejects(
      client.predictBandwidth([1, 2]),
      (e: unknown) =>
        e instanceof NovaCronError &&
        e.code === 'unavailable' &&
        /ml service call PredictBandwidth failed/.test(e.message),
    );
    assert.equal((await open.ready()).breaker, 'open');
    await assert.rejects(
      open.predictBandwidth([1, 2]),
      (e: unknown) =>
        e instanceof NovaCronError && e.code === 'unavailable' && /fallback_enabled/.test(e.hint ?? ''),
    );
  } finally {
    client.close();
    open.close();
  }
});

test('the worker dies: the call in flight is answered locally, health says why, a later call restarts it', async () => {
  const client = createThreadMlClient(config(`127.0.0.1:${server.port}`), undefined, OPTS);
  try {
    assert.equal((await client.ready()).status, 'up');
    const w = client.workerThread();
    assert.ok(w);
    const inFlight = client.predictBandwidth([7, 7, 7]);
    await w.terminate();
    const a = await inFlight;
    assert.equal(a.source, 'fallback', 'answered by the caller thread');
    assert.equal(a.predicted, 7);
    assert.equal(client.health().status, 'degraded');
    assert.match(client.health().detail, /ml client thread exited/);
    assert.equal(client.workerThread(), undefined);
    // within the restart pause: still answered locally, no waiting
    assert.equal((await client.predictBandwidth([8, 8])).source, 'fallback');
    await new Promise((r) => setTimeout(r, 1100));
    // the next call starts a new worker; it answers once the worker has connected
    let p = await client.predictBandwidth(history);
    for (let i = 0; i < 40 && p.source !== 'model'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      p = await client.predictBandwidth(history);
    }
    assert.equal(p.source, 'model');
    assert.ok(client.workerThread());
    assert.ok(client.health().stats.fallbacks >= 2);
  } finally {
    client.close();
  }
});

test('client_thread_young_mb 0 or ml disabled: the plain client, no worker thread', async () => {
  const plain = createThreadMlClient(config(`127.0.0.1:${server.port}`), undefined, {
    ...OPTS,
    youngGenerationMb: 0,
  });
  const off = createThreadMlClient(config(`127.0.0.1:${server.port}`, { enabled: false }), undefined, OPTS);
  try {
    assert.equal(plain.workerThread(), undefined);
    assert.equal((await plain.ready()).status, 'up');
    assert.equal((await plain.predictBandwidth(history)).source, 'model');
    assert.equal(off.workerThread(), undefined);
    assert.equal((await off.predictBandwidth([4, 4])).source, 'fallback');
  } finally {
    plain.close();
    off.close();
  }
});
