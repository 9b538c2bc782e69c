// The lean gRPC client transport against a grpc-js server (the real wire) and against hand-made
// HTTP/2 servers that answer every way a gRPC peer may: trailers-only errors, HTTP errors, broken
// frames, compression it did not offer, silence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import { createServer, connect, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { createH2Transport, GrpcCode, GrpcStatusError, PING_TIMEOUT_MS } from './h2-transport.js';
import { loadMlServices } from './proto.js';
import * as codec from './codec.js';

const BW = '/novacron.ml.v1.BandwidthPredictor/PredictBandwidth';

async function grpcServer(
  impl: (req: { historical_bandwidth: number[] }) => unknown,
): Promise<{ port: number; stop: () => void; deadlines: number[] }> {
  const defs = loadMlServices();
  const server = new grpc.Server();
  const deadlines: number[] = [];
  server.addService(defs.bandwidth, {
    PredictBandwidth: (
      call: grpc.ServerUnaryCall<{ historical_bandwidth: number[] }, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) => {
      const d = call.getDeadline();
      deadlines.push(d instanceof Date ? d.getTime() : d);
      try {
        cb(null, impl(call.request));
      } catch (e) {
        cb({ code: grpc.status.INVALID_ARGUMENT, details: (e as Error).message });
      }
    },
    PredictBandwidthBatch: () => {},
    HealthCheck: () => {},
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return { port, stop: () => server.forceShutdown(), deadlines };
}

/** An HTTP/2 server whose every stream is answered by `answer`. */
async function h2Server(
  answer: (stream: http2.ServerHttp2Stream) => void,
): Promise<{ port: number; stop: () => Promise<void> }> {
  const s = http2.createServer();
  s.on('stream', (stream) => {
    stream.on('data', () => {});
    stream.on('end', () => answer(stream));
  });
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return {
    port: (s.address() as { port: number }).port,
    stop: () => new Promise((r) => s.close(() => r())),
  };
}

const request = (h: number[]) =>
  codec.encodeFramed({ historical_bandwidth: h, profile: 'fcc_5s' }, codec.encodeBandwidthRequest);

async function failsWith(p: Promise<unknown>, code: number, detail?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof GrpcStatusError, String(e));
    assert.equal(e.code, code, e.message);
    if (detail) assert.match(e.details, detail);
    return true;
  });
}

test('a unary round trip with a grpc-js server: the message, the deadline header, many calls on one connection', async () => {
  const srv = await grpcServer((req) => ({
    predicted_bandwidth: req.historical_bandwidth.reduce((a, b) => a + b, 0),
    confidence: 0.5,
    model_version: 'ünïcode-v1',
  }));
  const t = createH2Transport(`127.0.0.1:${srv.port}`);
  try {
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => t.unary(BW, request([i, 1.5]), 2000)),
    );
    answers.forEach((bytes, i) => {
      const r = new codec.Reader(bytes);
      const m = codec.decodeBandwidthResponse(r, r.len);
      assert.equal(m.predicted_bandwidth, i + 1.5);
      assert.equal(m.model_version, 'ünïcode-v1');
    });
    // The server got our deadline (grpc-timeout): finite and no later than 2 s from the call.
    assert.equal(srv.deadlines.length, 50);
    for (const d of srv.deadlines) assert.ok(Number.isFinite(d) && d <= Date.now() + 2000, `deadline ${d}`);
  } finally {
    t.close();
    srv.stop();
  }
});

test('a non-OK status from grpc-js (trailers-only) becomes GrpcStatusError with its details', async () => {
  const srv = await grpcServer(() => {
    throw new Error('bad samples: 100% wrong');
  });
  const t = createH2Transport(`127.0.0.1:${srv.port}`);
  try {
    await failsWith(t.unary(BW, request([1]), 2000), GrpcCode.INVALID_ARGUMENT, /^bad samples: 100% wrong$/);
    await failsWith(
      t.unary('/novacron.ml.v1.BandwidthPredictor/NoSuchMethod', request([1]), 2000),
      GrpcCode.UNIMPLEMENTED,
    );
  } finally {
    t.close();
    srv.stop();
  }
});

test('malformed answers are INTERNAL / UNKNOWN / UNIMPLEMENTED, never a resolved call', async () => {
  const cases: [string, (s: http2.ServerHttp2Stream) => void, number, RegExp][] = [
    [
      'no message',
      (s) => {
        s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        s.once('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
        s.end();
      },
      GrpcCode.INTERNAL,
      /no gRPC message/,
    ],
    [
      'frame length wrong',
      (s) => {
        s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        s.once('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
        s.end(Buffer.from([0, 0, 0, 0, 9, 1, 2]));
      },
      GrpcCode.INTERNAL,
      /says 9 bytes/,
    ],
    [
      'compressed',
      (s) => {
        s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        s.once('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
        s.end(Buffer.from([1, 0, 0, 0, 1, 7]));
      },
      GrpcCode.INTERNAL,
      /compressed/,
    ],
    [
      'HTTP 404',
      (s) => {
        s.respond({ ':status': 404 });
        s.end('nope');
      },
      GrpcCode.UNIMPLEMENTED,
      /HTTP status 404/,
    ],
    [
      'not gRPC',
      (s) => {
        s.respond({ ':status': 200, 'content-type': 'text/html' });
        s.end('<html>');
      },
      GrpcCode.UNKNOWN,
      /content-type text\/html/,
    ],
    [
      'no status at all',
      (s) => {
        s.respond({ ':status': 200, 'content-type': 'application/grpc' });
        s.end(Buffer.from([0, 0, 0, 0, 0]));
      },
      GrpcCode.INTERNAL,
      /without a status/,
    ],
    [
      'bad grpc-status',
      (s) => {
        s.respond(
          { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': 'x' },
          { endStream: true },
        );
      },
      GrpcCode.UNKNOWN,
      /malformed grpc-status/,
    ],
  ];
  for (const [name, answer, code, detail] of cases) {
    const srv = await h2Server(answer);
    const t = createH2Transport(`127.0.0.1:${srv.port}`);
    try {
      await failsWith(t.unary(BW, request([1]), 2000), code, detail).catch((e: unknown) => {
        throw new Error(`${name}: ${String(e)}`);
      });
    } finally {
      t.close();
      await srv.stop();
    }
  }
});

test('silence: the deadline rejects; nobody listening: UNAVAILABLE at once; closed: UNAVAILABLE', async () => {
  const srv = await h2Server(() => {}); // reads the request, never answers
  const t = createH2Transport(`127.0.0.1:${srv.port}`);
  const t0 = performance.now();
  await failsWith(t.unary(BW, request([1]), 80), GrpcCode.DEADLINE_EXCEEDED);
  assert.ok(performance.now() - t0 >= 75);
  t.close();
  await failsWith(t.unary(BW, request([1]), 80), GrpcCode.UNAVAILABLE, /closed/);
  await srv.stop();

  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as { port: number }).port;
  probe.close();
  await once(probe, 'close');
  const absent = createH2Transport(`127.0.0.1:${port}`);
  await failsWith(absent.unary(BW, request([1]), 5000), GrpcCode.UNAVAILABLE);
  absent.close();
});

test('a dropped connection is dialled again by the next call', async () => {
  let port = 0;
  const first = await grpcServer(() => ({ predicted_bandwidth: 1, confidence: 1 }));
  port = first.port;
  const t = createH2Transport(`127.0.0.1:${port}`);
  try {
    await t.unary(BW, request([1]), 2000);
    first.stop();
    const again = new grpc.Server();
    again.addService(loadMlServices().bandwidth, {
      PredictBandwidth: (_c: unknown, cb: grpc.sendUnaryData<unknown>) =>
        cb(null, { predicted_bandwidth: 2, confidence: 1 }),
      PredictBandwidthBatch: () => {},
      HealthCheck: () => {},
    });
    await new Promise<void>((resolve, reject) =>
      again.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e) =>
        e ? reject(e) : resolve(),
      ),
    );
    try {
      let bytes: Buffer | undefined;
      for (let i = 0; i < 20 && !bytes; i++) {
        bytes = await t.unary(BW, request([1]), 2000).catch(() => undefined);
        if (!bytes) await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(bytes, 'answered after the reconnect');
      const r = new codec.Reader(bytes);
      assert.equal(codec.decodeBandwidthResponse(r, r.len).predicted_bandwidth, 2);
    } finally {
      again.forceShutdown();
    }
  } finally {
    t.close();
  }
});

test('encodeFramed: the 5-byte gRPC prefix, then exactly encodeToBuffer’s bytes', () => {
  const m = { historical_bandwidth: [1, 2, 3], vm_id: 'vm-é', timestamp: 17 };
  const framed = codec.encodeFramed(m, codec.encodeBandwidthRequest);
  const plain = codec.encodeToBuffer(m, codec.encodeBandwidthRequest);
  assert.equal(framed[0], 0);
  assert.equal(framed.readUInt32BE(1), plain.length);
  assert.deepEqual(framed.subarray(5), plain);
  assert.deepEqual([...codec.encodeFramed({}, codec.encodeHealthRequest)], [0, 0, 0, 0, 0]);
});

test('a connection that misses a deadline is checked: no handshake or no PING answer, and the next call dials again', async () => {
  // 1. A peer that accepts TCP but never speaks HTTP/2: dropped after the first deadline.
  const sockets: Socket[] = [];
  const mute = createServer((c) => sockets.push(c));
  mute.listen(0, '127.0.0.1');
  await once(mute, 'listening');
  const t1 = createH2Transport(`127.0.0.1:${(mute.address() as { port: number }).port}`);
  await failsWith(t1.unary(BW, request([1]), 60), GrpcCode.DEADLINE_EXCEEDED);
  await failsWith(t1.unary(BW, request([1]), 60), GrpcCode.DEADLINE_EXCEEDED);
  assert.equal(sockets.length, 2, 'a second connection for the second call');
  t1.close();
  for (const c of sockets) c.destroy();
  mute.close();

  // 2. A live HTTP/2 connection whose peer then goes silent (a proxy stops forwarding): the PING
  //    goes unanswered, the connection is dropped, the next call gets a fresh one.
  const srv = await grpcServer(() => ({ predicted_bandwidth: 3, confidence: 1 }));
  let frozen = false;
  const links: Socket[] = [];
  const proxy = createServer((c) => {
    const up = connect(srv.port, '127.0.0.1');
    links.push(c, up);
    c.on('data', (d) => frozen || up.write(d));
    up.on('data', (d) => frozen || c.write(d));
    c.on('error', () => {});
    up.on('error', () => {});
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  const t2 = createH2Transport(`127.0.0.1:${(proxy.address() as { port: number }).port}`);
  try {
    await t2.unary(BW, request([1]), 2000);
    frozen = true;
    await failsWith(t2.unary(BW, request([1]), 60), GrpcCode.DEADLINE_EXCEEDED);
    await new Promise((r) => setTimeout(r, PING_TIMEOUT_MS + 200));
    frozen = false;
    const bytes = await t2.unary(BW, request([1]), 2000);
    const r = new codec.Reader(bytes);
    assert.equal(codec.decodeBandwidthResponse(r, r.len).predicted_bandwidth, 3);
    assert.equal(links.length, 4, 'the silent connection was replaced by a new one');
  } finally {
    t2.close();
    for (const l of links) l.destroy();
    proxy.close();
    srv.stop();
  }
});
