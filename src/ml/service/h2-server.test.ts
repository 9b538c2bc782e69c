// The lean gRPC server (h2-server.ts) with grpc-js clients — the standard health service (Check and
// Watch), unknown methods and services, deadlines, errors — and with raw HTTP/2 requests that no
// gRPC client would send.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { GrpcFailure, parseGrpcTimeout, startH2GrpcServer, type H2Unary } from './h2-server.js';
import * as codec from '../codec.js';
import { loadMlServices } from '../proto.js';

const BW = '/novacron.ml.v1.BandwidthPredictor/PredictBandwidth';

function bandwidth(handle: (req: { historical_bandwidth: number[] }) => unknown): H2Unary {
  return {
    decode: (b) => {
      const r = new codec.Reader(b);
      return codec.decodeBandwidthRequest(r, r.len);
    },
    handle: handle as (req: unknown) => unknown,
    encodeFramed: (res) => codec.encodeFramed(res as object, codec.encodeBandwidthResponse),
  };
}

type HealthClient = grpc.Client & {
  check(
    req: { service: string },
    cb: (err: grpc.ServiceError | null, res?: { status: unknown }) => void,
  ): void;
  watch(req: { service: string }): grpc.ClientReadableStream<{ status: unknown }>;
};

test('grpc-js clients: a unary call, INVALID_ARGUMENT with its message, UNIMPLEMENTED, health Check and Watch', async () => {
  const server = await startH2GrpcServer(
    '127.0.0.1',
    0,
    new Map([
      [
        BW,
        bandwidth((req) => {
          if (req.historical_bandwidth.length === 0) throw new GrpcFailure(3, 'no samples: 0 % of them, é');
          return { predicted_bandwidth: req.historical_bandwidth[0]!, confidence: 1, model_version: 'v' };
        }),
      ],
    ]),
    { '': 'SERVING', 'novacron.ml.v1.BandwidthPredictor': 'SERVING' },
  );
  const defs = loadMlServices();
  const bw = new defs.BandwidthClient(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as {
    PredictBandwidth: (
      req: object,
      meta: grpc.Metadata,
      opts: grpc.CallOptions,
      cb: (e: grpc.ServiceError | null, r?: { predicted_bandwidth: number }) => void,
    ) => void;
    HealthCheck: (req: object, cb: (e: grpc.ServiceError | null) => void) => void;
    close(): void;
  };
  const Health = grpc.makeClientConstructor(healthService, 'Health');
  const hc = new Health(
    `127.0.0.1:${server.port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as HealthClient;
  const call = (req: object) =>
    new Promise<{ predicted_bandwidth: number }>((resolve, reject) =>
      bw.PredictBandwidth(req, new grpc.Metadata(), { deadline: Date.now() + 2000 }, (e, r) =>
        e ? reject(e) : resolve(r!),
      ),
    );
  try {
    assert.equal((await call({ historical_bandwidth: [7.5] })).predicted_bandwidth, 7.5);
    await assert.rejects(call({ historical_bandwidth: [] }), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
      assert.equal(e.details, 'no samples: 0 % of them, é');
      return true;
    });
    await assert.rejects(
      new Promise<void>((resolve, reject) => bw.HealthCheck({}, (e) => (e ? reject(e) : resolve()))),
      (e: grpc.ServiceError) => e.code === grpc.status.UNIMPLEMENTED,
    );
    const check = (service: string) =>
      new Promise<unknown>((resolve, reject) =>
        hc.check({ service }, (e, r) => (e ? reject(e) : resolve(r!.status))),
      );
    assert.ok(['SERVING', 1].includes((await check('')) as string));
    await assert.rejects(
      check('no.such.Service'),
      (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND,
    );

    const watch = hc.watch({ service: '' });
    const seen: unknown[] = [];
    const twoSeen = new Promise<void>((resolve) =>
      watch.on('data', (m: { status: unknown }) => {
        seen.push(m.status);
        if (seen.length === 2) resolve();
      }),
    );
    watch.on('error', () => {});
    await new Promise((r) => setTimeout(r, 50));
    server.setStatus('', 'NOT_SERVING');
    await twoSeen;
    assert.deepEqual(
      seen.map((s) => (typeof s === 'number' ? ['UNKNOWN', 'SERVING', 'NOT_SERVING'][s] : s)),
      ['SERVING', 'NOT_SERVING'],
    );
    watch.cancel();
  } finally {
    bw.close();
    hc.close();
    await server.close(500);
  }
});

test('raw HTTP/2: wrong content-type 415, GET 405, a broken frame INTERNAL, compressed UNIMPLEMENTED, late DEADLINE_EXCEEDED', async () => {
  const server = await startH2GrpcServer(
    '127.0.0.1',
    0,
    new Map([[BW, bandwidth(() => ({ predicted_bandwidth: 1, confidence: 1 }))]]),
    {},
  );
  const session = http2.connect(`http://127.0.0.1:${server.port}`);
  const send = (headers: http2.OutgoingHttpHeaders, body?: Buffer) =>
    new Promise<{ status: number; grpc?: string; message?: string }>((resolve, reject) => {
      const s = session.request(headers);
      let status = 0;
      let grpcStatus: string | undefined;
      let message: string | undefined;
      s.on('response', (h) => {
        status = Number(h[':status']);
        grpcStatus = h['grpc-status'] as string | undefined;
        message = h['grpc-message'] as string | undefined;
      });
      s.on('trailers', (t) => {
        grpcStatus ??= t['grpc-status'] as string | undefined;
        message ??= t['grpc-message'] as string | undefined;
      });
      s.on('data', () => {});
      s.on('error', reject);
      s.on('close', () =>
        resolve({
          status,
          ...(grpcStatus === undefined ? {} : { grpc: grpcStatus }),
          ...(message === undefined ? {} : { message: decodeURIComponent(message) }),
        }),
      );
      s.end(body);
    });
  const grpcHeaders = { ':method': 'POST', ':path': BW, 'content-type': 'application/grpc', te: 'trailers' };
  try {
    assert.equal(
      (await send({ ...grpcHeaders, 'content-type': 'application/json' }, Buffer.from('{}'))).status,
      415,
    );
    assert.equal((await send({ ':method': 'GET', ':path': BW })).status, 405);
    const broken = await send(grpcHeaders, Buffer.from([0, 0, 0, 0, 9, 1]));
    assert.equal(broken.grpc, '13');
    assert.match(broken.message ?? '', /exactly one gRPC message/);
    assert.equal((await send(grpcHeaders, Buffer.from([1, 0, 0, 0, 1, 8]))).grpc, '12');
    const ok = await send({ ...grpcHeaders, 'grpc-timeout': '5S' }, Buffer.from([0, 0, 0, 0, 0]));
    assert.deepEqual([ok.status, ok.grpc], [200, '0']);
    // A deadline that passes while the request is still arriving.
    const late = await new Promise<string | undefined>((resolve) => {
      const s = session.request({ ...grpcHeaders, 'grpc-timeout': '20m' });
      let st: string | undefined;
      s.on('response', (h) => (st = h['grpc-status'] as string | undefined));
      s.on('data', () => {});
      s.on('close', () => resolve(st));
      s.write(Buffer.from([0, 0, 0, 0, 0]));
      setTimeout(() => s.end(), 60);
    });
    assert.equal(late, '4');
  } finally {
    session.close();
    await server.close(500);
  }
});

test('parseGrpcTimeout: every unit, and malformed values mean no deadline', () => {
  assert.equal(parseGrpcTimeout('100m'), 100);
  assert.equal(parseGrpcTimeout('2S'), 2000);
  assert.equal(parseGrpcTimeout('1M'), 60000);
  assert.equal(parseGrpcTimeout('1H'), 3600000);
  assert.equal(parseGrpcTimeout('1500u'), 1.5);
  assert.equal(parseGrpcTimeout('2000000n'), 2);
  for (const bad of [undefined, '', '100', 'm', '123456789m', '-1m', '1.5S', '10x']) {
    assert.equal(parseGrpcTimeout(bad), undefined, String(bad));
  }
});
