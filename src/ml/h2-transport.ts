// A lean gRPC unary client over node:http2: what the ML bridge's hot calls need and nothing else.
//
// The wire is standard gRPC over HTTP/2 (POST /package.Service/Method, content-type
// application/grpc, te: trailers, grpc-timeout, one length-prefixed message each way, grpc-status
// and grpc-message in the trailers or in a trailers-only answer), so it talks to any gRPC server —
// `novacron ml serve` (grpc-js) included. What it leaves out compared with grpc-js: name resolution
// beyond one host:port, load balancing, TLS, compression, retries, interceptors and channelz, none
// of which the bridge uses. What that saves per call (measured in BENCHMARKS.md, ml): about a third
// of the client process's CPU and most of its allocation — the call object stack of grpc-js
// (interceptors, resolving, load-balancing and subchannel calls, a metadata copy, a deadline timer
// per layer).
//
// One HTTP/2 connection per transport, opened on first use and again after it closes or fails; a
// call made while it connects waits for it (bounded by its deadline). The socket is unref'd: an
// idle client does not keep the process alive, and each pending call's deadline timer does.
// A connection is suspected when a call on it misses its deadline: if it never finished its
// HTTP/2 handshake it is dropped at once, otherwise it is pinged, and dropped when the PING is not
// answered within PING_TIMEOUT_MS — so a peer that vanished without closing the TCP connection
// costs the calls of that window, not every call until the kernel gives up on the socket.
import http2 from 'node:http2';

/** gRPC status codes used here (the full list: grpc/doc/statuscodes.md). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

const NAMES: Record<number, string> = Object.fromEntries(Object.entries(GrpcCode).map(([k, v]) => [v, k]));

/** A call that ended with a gRPC status other than OK (code and details as the server or transport gave them). */
export class GrpcStatusError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`${code} ${NAMES[code] ?? 'STATUS'}: ${details}`);
    this.name = 'GrpcStatusError';
  }
}

/** How long a suspected connection may take to answer a PING before it is dropped. */
export const PING_TIMEOUT_MS = 1000;

/** Largest answer accepted (grpc-js's default receive limit). */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

export interface UnaryTransport {
  /**
   * One unary call: `framed` is the request with its 5-byte gRPC prefix already in place (see
   * codec.ts `encodeFramed`). Resolves with the answer's message bytes (prefix removed); rejects
   * with GrpcStatusError (a non-OK status, the deadline, a broken connection or a malformed answer).
   */
  unary(path: string, framed: Buffer, timeoutMs: number): Promise<Buffer>;
  /** Closes the connection; calls in flight finish, later calls fail with UNAVAILABLE. */
  close(): void;
}

const {
  HTTP2_HEADER_METHOD,
  HTTP2_HEADER_PATH,
  HTTP2_HEADER_STATUS,
  HTTP2_HEADER_CONTENT_TYPE,
  HTTP2_HEADER_TE,
  NGHTTP2_CANCEL,
} = http2.constants;

function decodeMessage(v: unknown): string {
  if (typeof v !== 'string') return '';
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/** The status of an answer's trailers (or of a trailers-only answer's headers); undefined when absent. */
function statusOf(h: http2.IncomingHttpHeaders): GrpcStatusError | null | undefined {
  const raw = h['grpc-status'];
  if (raw === undefined) return undefined;
  const code = Number(raw);
  if (!Number.isInteger(code))
    return new GrpcStatusError(GrpcCode.UNKNOWN, `malformed grpc-status ${String(raw)}`);
  return code === GrpcCode.OK ? null : new GrpcStatusError(code, decodeMessage(h['grpc-message']));
}

/** Maps an HTTP status without a gRPC status to a gRPC code (as grpc/doc/http-grpc-status-mapping.md). */
function httpToGrpc(status: number): number {
  switch (status) {
    case 400:
      return GrpcCode.INTERNAL;
    case 401:
    case 403:
    case 404:
      return GrpcCode.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcCode.UNAVAILABLE;
    default:
      return GrpcCode.UNKNOWN;
  }
}

/**
 * Creates a transport to `address` (`host:port`, `[v6]:port`). Nothing is dialled before the first call.
 *
 * @example
 *   const t = createH2Transport('127.0.0.1:50051');
 *   const bytes = await t.unary('/novacron.ml.v1.BandwidthPredictor/PredictBandwidth', framed, 100);
 */
export function createH2Transport(address: string): UnaryTransport {
  const authority = `http://${address}`;
  let session: http2.ClientHttp2Session | undefined;
  let closed = false;
  let pinging: http2.ClientHttp2Session | undefined;
  /** Sessions whose peer has sent its SETTINGS (finished the HTTP/2 handshake). */
  const shaken = new WeakSet<http2.ClientHttp2Session>();
  // Request headers per (path, timeout): built once, Node copies them into its own header list.
  const headerCache = new Map<string, http2.OutgoingHttpHeaders>();

  function connection(): http2.ClientHttp2Session {
    if (session && !session.closed && !session.destroyed) return session;
    const s = http2.connect(authority, { settings: { enablePush: false } });
    // Errors reach the streams (and so the calls); without a listener an 'error' would throw.
    s.on('error', () => {});
    const forget = () => {
      if (session === s) session = undefined;
    };
    s.once('close', forget);
    s.once('goaway', forget);
    s.once('remoteSettings', () => shaken.add(s));
    s.unref();
    session = s;
    return s;
  }

  /** Drops `s` (destroying it fails its calls in flight; the next call dials again). */
  function drop(s: http2.ClientHttp2Session): void {
    if (session === s) session = undefined;
    if (!s.destroyed) s.destroy();
  }

  /** A call on `s` missed its deadline: check that the connection is alive (see the header). */
  function suspect(s: http2.ClientHttp2Session): void {
    if (s !== session || s.destroyed || pinging === s) return;
    if (!shaken.has(s)) {
      drop(s); // no HTTP/2 handshake within a whole deadline
      return;
    }
    pinging = s;
    const timer = setTimeout(() => {
      if (pinging === s) pinging = undefined;
      drop(s);
    }, PING_TIMEOUT_MS);
    timer.unref();
    const answered = (err: Error | null) => {
      clearTimeout(timer);
      if (pinging === s) pinging = undefined;
      if (err) drop(s);
    };
    if (!s.ping(answered)) answered(new Error('too many PINGs in flight'));
  }

  function headers(path: string, timeoutMs: number): http2.OutgoingHttpHeaders {
    const key = `${timeoutMs} ${path}`;
    let h = headerCache.get(key);
    if (!h) {
      h = {
        [HTTP2_HEADER_METHOD]: 'POST',
        [HTTP2_HEADER_PATH]: path,
        [HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
        [HTTP2_HEADER_TE]: 'trailers',
        // The server's deadline: its clock starts on receipt, so it is at most ours.
        'grpc-timeout': `${Math.max(1, Math.ceil(timeoutMs))}m`,
      };
      if (headerCache.size < 64) headerCache.set(key, h);
    }
    return h;
  }

  function unary(path: string, framed: Buffer, timeoutMs: number): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      if (closed) {
        reject(new GrpcStatusError(GrpcCode.UNAVAILABLE, 'transport closed'));
        return;
      }
      let stream: http2.ClientHttp2Stream;
      let s: http2.ClientHttp2Session;
      try {
        s = connection();
        stream = s.request(headers(path, timeoutMs), { endStream: false });
      } catch (err) {
        // The session was closing at this very moment: forget it; the next call dials again.
        session = undefined;
        reject(new GrpcStatusError(GrpcCode.UNAVAILABLE, (err as Error).message));
        return;
      }
      let settled = false;
      let status: GrpcStatusError | null | undefined;
      let httpStatus = 0;
      let error: Error | undefined;
      let first: Buffer | undefined;
      let chunks: Buffer[] | undefined;
      let received = 0;
      const settle = (err: GrpcStatusError | null, value?: Buffer) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        if (err) reject(err);
        else resolve(value!);
      };
      const deadline = setTimeout(() => {
        settle(new GrpcStatusError(GrpcCode.DEADLINE_EXCEEDED, `deadline of ${timeoutMs} ms exceeded`));
        stream.close(NGHTTP2_CANCEL);
        suspect(s);
      }, timeoutMs);

      stream.on('response', (h) => {
        httpStatus = Number(h[HTTP2_HEADER_STATUS]);
        const s = statusOf(h); // trailers-only answer
        if (s !== undefined) status = s;
        else if (httpStatus !== 200) {
          status = new GrpcStatusError(httpToGrpc(httpStatus), `HTTP status ${httpStatus}`);
        } else if (!String(h[HTTP2_HEADER_CONTENT_TYPE] ?? '').startsWith('application/grpc')) {
          status = new GrpcStatusError(
            GrpcCode.UNKNOWN,
            `content-type ${String(h[HTTP2_HEADER_CONTENT_TYPE])}`,
          );
        }
      });
      stream.on('data', (d: Buffer) => {
        received += d.length;
        if (received > MAX_RESPONSE_BYTES + 5) {
          settle(
            new GrpcStatusError(
              GrpcCode.RESOURCE_EXHAUSTED,
              `answer larger than ${MAX_RESPONSE_BYTES} bytes`,
            ),
          );
          stream.close(NGHTTP2_CANCEL);
          return;
        }
        if (first === undefined) first = d;
        else (chunks ??= [first]).push(d);
      });
      stream.on('trailers', (t) => {
        const s = statusOf(t);
        if (status === undefined || status === null) status = s;
      });
      stream.on('error', (err: Error) => {
        error = err;
      });
      stream.on('close', () => {
        if (settled) return;
        if (status === undefined) {
          const why =
            error?.message ?? `stream closed (HTTP/2 code ${stream.rstCode ?? '?'}) without a status`;
          settle(new GrpcStatusError(httpStatus === 0 ? GrpcCode.UNAVAILABLE : GrpcCode.INTERNAL, why));
          return;
        }
        if (status !== null) {
          settle(status);
          return;
        }
        const body = chunks ? Buffer.concat(chunks, received) : (first ?? Buffer.alloc(0));
        if (body.length < 5) {
          settle(
            new GrpcStatusError(GrpcCode.INTERNAL, `answer of ${body.length} bytes has no gRPC message`),
          );
          return;
        }
        if (body[0] !== 0) {
          settle(new GrpcStatusError(GrpcCode.INTERNAL, 'compressed answer, but no compression was offered'));
          return;
        }
        const len = body.readUInt32BE(1);
        if (len !== body.length - 5) {
          settle(
            new GrpcStatusError(
              GrpcCode.INTERNAL,
              `answer frame says ${len} bytes, the stream carried ${body.length - 5} (one message expected)`,
            ),
          );
          return;
        }
        settle(null, body.subarray(5));
      });
      stream.end(framed);
    });
  }

  return {
    unary,
    close: () => {
      closed = true;
      session?.close();
      session = undefined;
    },
  };
}
