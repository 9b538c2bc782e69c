// The HTTP/2 transport on its own worker thread against the real ML service: the same bytes as the
// transport on the caller's thread, statuses that cross intact, a worker that dies mid-call, close.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createH2Transport, GrpcCode, GrpcStatusError } from './h2-transport.js';
import { createThreadTransport, RESTART_AFTER_MS } from './thread-transport.js';
import { startMlServer } from './service/server.js';
import { BANDWIDTH_SERVICE } from './proto.js';
import * as codec from './codec.js';

const server = await startMlServer({ port: 0, watch: false, metricsPort: 0 });
after(() => server.close());
const address = `127.0.0.1:${server.port}`;
const PATH = `/${BANDWIDTH_SERVICE}/PredictBandwidth`;
const request = (samples: number[]): Buffer =>
  codec.encodeFramed(
    { vm_id: 'vm', timestamp: 0, historical_bandwidth: samples, network_type: '', profile: 'fcc_5s' },
    codec.encodeBandwidthRequest,
  );
const predicted = (b: Buffer): number => {
  const r = new codec.Reader(b);
  return codec.decodeBandwidthResponse(r, r.len).predicted_bandwidth;
};
const isStatus = (code: number, text?: RegExp) => (e: unknown) =>
  e instanceof GrpcStatusError && e.code === code && (!text || text.test(e.details));

test('answers through the worker thread are the bytes the caller-thread transport gets', async () => {
  const direct = createH2Transport(address);
  const threaded = createThreadTransport(address, { youngGenerationMb: 2 });
  try {
    const samples = [5, 6, 5.5, 7, 6.5];
    const a = await direct.unary(PATH, request(samples), 2000);
    const b = await threaded.unary(PATH, request(samples), 2000);
    assert.ok(threaded.workerThread(), 'a worker thread carries the calls');
    const decode = (x: Buffer) => {
      const r = new codec.Reader(x);
      const m = codec.decodeBandwidthResponse(r, r.len);
      return [m.predicted_bandwidth, m.confidence, m.model_version];
    };
    assert.deepEqual(decode(b), decode(a));
    assert.ok(predicted(b) > 0);
    // many at once, each answered for its own request
    const series = Array.from({ length: 50 }, (_, i) => [i + 1, 2 * i + 3, i + 2]);
    const many = await Promise.all(series.map((x) => threaded.unary(PATH, request(x), 2000)));
    const expected = await Promise.all(series.map((x) => direct.unary(PATH, request(x), 2000)));
    many.forEach((m, i) => assert.equal(predicted(m), predicted(expected[i]!), `call ${i}`));
    // a request the service refuses: the status and its details cross the thread
    await assert.rejects(
      threaded.unary(PATH, request([-1, Number.NaN]), 2000),
      isStatus(GrpcCode.INVALID_ARGUMENT),
    );
    await assert.rejects(
      threaded.unary('/novacron.ml.v1.BandwidthPredictor/NoSuchMethod', request([1]), 2000),
      isStatus(GrpcCode.UNIMPLEMENTED),
    );
  } finally {
    direct.close();
    threaded.close();
  }
});

test('a worker that dies: its calls fail UNAVAILABLE at once, the next call after the pause restarts it', async () => {
  const exits: string[] = [];
  const t = createThreadTransport(address, { youngGenerationMb: 2, onExit: (r) => exits.push(r) });
  try {
    await t.unary(PATH, request([1, 2, 3]), 2000);
    const w = t.workerThread();
    assert.ok(w);
    const inFlight = t.unary(PATH, request([1, 2, 3]), 2000);
    await w.terminate();
    await assert.rejects(inFlight, isStatus(GrpcCode.UNAVAILABLE, /transport thread exited/));
    assert.equal(exits.length, 1);
    assert.equal(t.workerThread(), undefined);
    // within the pause: refused at once, not queued
    await assert.rejects(t.unary(PATH, request([1]), 2000), isStatus(GrpcCode.UNAVAILABLE, /restarting/));
    await new Promise((r) => setTimeout(r, RESTART_AFTER_MS + 50));
    assert.ok(predicted(await t.unary(PATH, request([4, 4, 4]), 2000)) > 0);
    assert.ok(t.workerThread());
  } finally {
    t.close();
  }
});

test('close: the call in flight is answered, later calls fail UNAVAILABLE, the worker exits', async () => {
  const t = createThreadTransport(address, { youngGenerationMb: 2 });
  await t.unary(PATH, request([1, 2]), 2000);
  const w = t.workerThread();
  assert.ok(w);
  const exited = new Promise((r) => w.once('exit', r));
  const inFlight = t.unary(PATH, request([3, 3, 3]), 2000);
  t.close();
  assert.ok(predicted(await inFlight) > 0);
  await assert.rejects(t.unary(PATH, request([1]), 2000), isStatus(GrpcCode.UNAVAILABLE, /closed/));
  await exited;
});

test('a call made while the worker still loads gets its whole deadline once the worker takes it', async () => {
  // under tsx the worker needs far longer than 50 ms to load its modules
  const t = createThreadTransport(address, { youngGenerationMb: 2 });
  try {
    const t0 = performance.now();
    const answer = await t.unary(PATH, request([2, 4, 3]), 50);
    assert.ok(predicted(answer) > 0, `answered after ${(performance.now() - t0).toFixed(0)} ms`);
  } finally {
    t.close();
  }
});
