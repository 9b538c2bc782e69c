// A lean gRPC server over node:http2 for the ML service's unary methods and the standard health
// service (grpc.health.v1.Health: Check and the server-streaming Watch).
//
// Standard gRPC on the wire, as grpc-js or any other client expects it: POST /package.Service/Method,
// content-type application/grpc, one length-prefixed message each way, grpc-status (and a
// percent-encoded grpc-message) in the trailers, or a trailers-only answer for errors; grpc-timeout
// is honoured (a call whose deadline passed before its request arrived gets DEADLINE_EXCEEDED);
// unknown methods are UNIMPLEMENTED, a non-gRPC content-type is HTTP 415, compressed requests
// (never offered: this server sends no grpc-accept-encoding) are UNIMPLEMENTED, requests over
// 4 MiB are RESOURCE_EXHAUSTED. What it saves against grpc-js's server: its per-call object stack
// (interceptors, metadata objects, a stream decoder, Readable streams of messages) — see
// BENCHMARKS.md (ml) for the CPU per call of each. `MlServerOptions.server: 'grpc-js'` keeps grpc-js.
import http2 from 'node:http2';
import { Reader, type Writer } from '../codec.js';
import * as codec from '../codec.js';

/** A unary method: decode the request message, answer it (or throw), encode the answer framed. */
export interface H2Unary {
  readonly decode: (message: Buffer) => unknown;
  /** Returns the answer; throws a GrpcFailure (or anything: INTERNAL) on error. */
  readonly handle: (request: unknown) => unknown;
  readonly encodeFramed: (answer: unknown) => Buffer;
}

/** An error with the gRPC status it should be answered with. */
export class GrpcFailure extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export const HEALTH_CHECK = '/grpc.health.v1.Health/Check';
export const HEALTH_WATCH = '/grpc.health.v1.Health/Watch';
/** grpc.health.v1.HealthCheckResponse.ServingStatus */
export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;
export type ServingStatusName = keyof typeof ServingStatus;

const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
const { HTTP2_HEADER_STATUS, HTTP2_HEADER_CONTENT_TYPE, HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH } =
  http2.constants;
const OK_HEADERS = { [HTTP2_HEADER_STATUS]: 200, [HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc' };
const OK_TRAILERS = { 'grpc-status': '0' };

/** grpc-message as the spec wants it: printable ASCII but '%' as is, every other UTF-8 byte as %XX. */
export function percentEncode(s: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(s)) return s;
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    out +=
      b >= 0x20 && b <= 0x7e && b !== 0x25
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** grpc-timeout ("100m", "2S", …) in ms; undefined when absent or malformed (no deadline). */
export function parseGrpcTimeout(v: string | string[] | undefined): number | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[m[2] as 'H'];
  return n * unit;
}

// grpc.health.v1 messages: HealthCheckRequest { string service = 1; }, HealthCheckResponse { ServingStatus status = 1; }
function decodeHealthRequest(b: Buffer): string {
  const r = new Reader(b);
  let service = '';
  while (r.pos < r.len) {
    const t = r.uint32();
    if (t >>> 3 === 1 && (t & 7) === 2) service = r.string();
    else r.skipType(t & 7);
  }
  return service;
}
function encodeHealthStatus(status: number): Buffer {
  return codec.encodeFramed(status, (s: number, w: Writer) => {
    if (s !== 0) w.uint32((1 << 3) | 0).int32(s);
  });
}

export interface H2GrpcServer {
  readonly port: number;
  /** Sets a service's health ('' is the whole server); Watch streams get the change. */
  setStatus(service: string, status: ServingStatusName): void;
  /** Stops accepting connections and calls; lets calls in flight finish (up to graceMs). */
  close(graceMs: number): Promise<void>;
}

/** Starts the server on host:port (0: any free port) and resolves once it listens. */
export async function startH2GrpcServer(
  host: string,
  port: number,
  methods: ReadonlyMap<string, H2Unary>,
  health: Record<string, ServingStatusName>,
): Promise<H2GrpcServer> {
  const statuses = new Map<string, number>(Object.entries(health).map(([k, v]) => [k, ServingStatus[v]]));
  const watchers = new Map<string, Set<http2.ServerHttp2Stream>>();
  const sessions = new Set<http2.ServerHttp2Session>();
  let closing = false;

  const fail = (stream: http2.ServerHttp2Stream, code: number, message: string) => {
    if (stream.destroyed || stream.closed) return;
    if (stream.headersSent) {
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    stream.respond(
      { ...OK_HEADERS, 'grpc-status': String(code), 'grpc-message': percentEncode(message) },
      { endStream: true },
    );
  };
  const answer = (stream: http2.ServerHttp2Stream, framed: Buffer) => {
    if (stream.destroyed || stream.closed) return; // cancelled by the client meanwhile
    stream.respond(OK_HEADERS, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
    stream.end(framed);
  };

  const server = http2.createServer();
  server.on('session', (s) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
    s.on('error', () => {}); // a peer's reset: its streams end, nothing to report
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const path = String(headers[HTTP2_HEADER_PATH] ?? '');
    if (headers[HTTP2_HEADER_METHOD] !== 'POST') {
      stream.respond({ [HTTP2_HEADER_STATUS]: 405 }, { endStream: true });
      return;
    }
    if (!String(headers[HTTP2_HEADER_CONTENT_TYPE] ?? '').startsWith('application/grpc')) {
      stream.respond({ [HTTP2_HEADER_STATUS]: 415 }, { endStream: true });
      return;
    }
    const timeout = parseGrpcTimeout(headers['grpc-timeout']);
    const deadline = timeout === undefined ? Infinity : performance.now() + timeout;
    let first: Buffer | undefined;
    let chunks: Buffer[] | undefined;
    let size = 0;
    stream.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_REQUEST_BYTES + 5) {
        fail(stream, 8, `request larger than ${MAX_REQUEST_BYTES} bytes`);
        return;
      }
      if (first === undefined) first = d;
      else (chunks ??= [first]).push(d);
    });
    stream.on('end', () => {
      if (stream.headersSent || stream.destroyed) return;
      if (closing) return fail(stream, 14, 'server shutting down');
      const body = chunks ? Buffer.concat(chunks, size) : (first ?? Buffer.alloc(0));
      if (body.length < 5 || body.readUInt32BE(1) !== body.length - 5) {
        return fail(stream, 13, 'request is not exactly one gRPC message');
      }
      if (body[0] !== 0) return fail(stream, 12, 'compressed requests are not supported');
      if (performance.now() > deadline)
        return fail(stream, 4, 'deadline exceeded before the request arrived');
      const message = body.subarray(5);
      if (path === HEALTH_CHECK || path === HEALTH_WATCH) {
        let service: string;
        try {
          service = decodeHealthRequest(message);
        } catch (e) {
          return fail(stream, 13, `malformed HealthCheckRequest: ${(e as Error).message}`);
        }
        const status = statuses.get(service);
        if (path === HEALTH_CHECK) {
          if (status === undefined) return fail(stream, 5, `unknown service ${service}`);
          return answer(stream, encodeHealthStatus(status));
        }
        // Watch: the current status now, then every change, until the client goes away.
        stream.respond(OK_HEADERS, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
        stream.write(encodeHealthStatus(status ?? ServingStatus.SERVICE_UNKNOWN));
        let set = watchers.get(service);
        if (!set) watchers.set(service, (set = new Set()));
        set.add(stream);
        stream.once('close', () => set.delete(stream));
        return;
      }
      const m = methods.get(path);
      if (!m) return fail(stream, 12, `unknown method ${path}`);
      let request: unknown;
      try {
        request = m.decode(message);
      } catch (e) {
        return fail(stream, 13, `cannot decode the request: ${(e as Error).message}`);
      }
      let framed: Buffer;
      try {
        framed = m.encodeFramed(m.handle(request));
      } catch (e) {
        return e instanceof GrpcFailure ? fail(stream, e.code, e.message) : fail(stream, 13, String(e));
      }
      answer(stream, framed);
    });
  });

  const bound = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : port);
    });
  });

  return {
    port: bound,
    setStatus(service, status) {
      statuses.set(service, ServingStatus[status]);
      for (const w of watchers.get(service) ?? []) {
        if (!w.destroyed) w.write(encodeHealthStatus(ServingStatus[status]));
      }
    },
    async close(graceMs) {
      closing = true;
      for (const set of watchers.values()) {
        for (const w of set) if (!w.destroyed) w.end();
      }
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.close(); // GOAWAY: streams in flight finish, no new ones
      const timer = setTimeout(() => {
        for (const s of sessions) s.destroy();
      }, graceMs);
      await done;
      clearTimeout(timer);
    },
  };
}
