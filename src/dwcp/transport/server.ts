// AMST receiver: accepts authenticated streams, groups them into sessions by the id the sender
// attaches with, hands Data frames to the session's handler (deduplicating frames resent after a
// drop), and acknowledges a sequence number only after the handler has made it durable (fsync).
import { createServer, type Server, type Socket } from 'node:net';
import { ErrorCode, NovaCronError, ProtocolError, ensureNovaCronError } from '../../errors.js';
import { FrameType, type Frame } from '../encoding/frame.js';
import { DwcpConnection, type ConnectionSecurity } from './connection.js';
import { decodeControl, encodeControl, type ControlMessage } from './control.js';

/** What the application does with one session's data. Implemented by the file receiver and the stream API. */
export interface SessionHandler {
  /**
   * Writes one Data payload. Called at most once per seq, possibly out of order and concurrently
   * for different seqs (one call per stream at a time). Need not be durable when it resolves.
   */
  onData(seq: number, payload: Buffer): Promise<void>;
  /** Makes every write that has resolved so far durable (fsync). Acks follow it. */
  sync(): Promise<void>;
  /** Answers a control request (open, have-query, end …). A thrown NovaCronError goes back to the sender. */
  onRequest(body: unknown): Promise<unknown>;
  /** The session ended: `err` is undefined after a clean `bye`, set when abandoned. */
  onEnd(err: Error | undefined): void;
}

export interface AmstServerOptions {
  readonly host: string;
  readonly port: number;
  readonly security: ConnectionSecurity;
  readonly onSession: (sessionId: string) => SessionHandler;
  /** Sync (and ack) at least every this many written bytes. Default 8 MiB. */
  readonly syncBytes?: number;
  /** Sync at most this long after a write. Default 20 ms. */
  readonly syncDelayMs?: number;
  /** A session whose streams all closed is abandoned after this long. Default 30 s. */
  readonly idleTimeoutMs?: number;
  /** Called for each accepted, authenticated stream (tests use it to inject failures). */
  readonly onStream?: (conn: DwcpConnection) => void;
  /** Called when a stream fails its handshake or protocol (logging). */
  readonly onStreamError?: (err: NovaCronError) => void;
}

const READ_PAUSE_BYTES = 8 * 1024 * 1024;

class ServerSession {
  readonly conns = new Set<DwcpConnection>();
  private contiguous = 1;
  private readonly written = new Set<number>();
  private readonly inProgress = new Set<number>();
  private durable = 1;
  private bytesSinceSync = 0;
  private syncTimer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private syncAgain = false;
  private readonly responses = new Map<number, ControlMessage>();
  private readonly answering = new Map<number, Promise<ControlMessage>>();
  private idleTimer: NodeJS.Timeout | undefined;
  ended = false;

  constructor(
    readonly id: string,
    private readonly handler: SessionHandler,
    private readonly opts: AmstServerOptions,
    private readonly forget: (err: Error | undefined) => void,
  ) {}

  attach(conn: DwcpConnection): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.conns.add(conn);
    conn.send(FrameType.Control, 0, encodeControl({ t: 'attached', ack: this.durable }));
  }

  detach(conn: DwcpConnection): void {
    this.conns.delete(conn);
    if (this.conns.size === 0 && !this.ended) {
      this.idleTimer = setTimeout(
        () =>
          this.end(
            new NovaCronError(
              ErrorCode.Unavailable,
              `DWCP session ${this.id} abandoned: no stream came back`,
            ),
          ),
        this.opts.idleTimeoutMs ?? 30_000,
      );
      this.idleTimer.unref();
    }
  }

  /** Writes a Data frame unless it is a duplicate of one already written or being written. */
  async data(seq: number, payload: Buffer): Promise<void> {
    if (this.ended || seq < this.contiguous || this.written.has(seq) || this.inProgress.has(seq)) return;
    this.inProgress.add(seq);
    try {
      await this.handler.onData(seq, payload);
    } finally {
      this.inProgress.delete(seq);
    }
    this.written.add(seq);
    while (this.written.delete(this.contiguous)) this.contiguous++;
    this.bytesSinceSync += payload.length;
    if (this.bytesSinceSync >= (this.opts.syncBytes ?? 8 * 1024 * 1024)) this.sync();
    else this.syncTimer ??= setTimeout(() => this.sync(), this.opts.syncDelayMs ?? 20);
  }

  private sync(): void {
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.bytesSinceSync = 0;
    const target = this.contiguous;
    this.syncing = this.handler
      .sync()
      .then(() => {
        if (target > this.durable) {
          this.durable = target;
          for (const c of this.conns) c.send(FrameType.Ack, target, Buffer.alloc(0));
        }
      })
      .catch((err: unknown) => this.end(ensureNovaCronError(err)))
      .finally(() => {
        this.syncing = undefined;
        if (this.syncAgain) {
          this.syncAgain = false;
          this.sync();
        }
      });
  }

  /** Answers a request once per id; a request resent after a stream drop gets the same answer. */
  async request(conn: DwcpConnection, id: number, body: unknown): Promise<void> {
    let res = this.responses.get(id);
    if (!res) {
      let p = this.answering.get(id);
      if (!p) {
        p = this.answer(id, body);
        this.answering.set(id, p);
      }
      res = await p;
      this.answering.delete(id);
      this.responses.set(id, res);
      if (this.responses.size > 256) this.responses.delete(this.responses.keys().next().value!);
    }
    conn.send(FrameType.Control, 0, encodeControl(res));
    if ((body as { t?: unknown } | null)?.t === 'bye') this.end(undefined);
  }

  private async answer(id: number, body: unknown): Promise<ControlMessage> {
    if ((body as { t?: unknown } | null)?.t === 'bye') return { t: 'res', id, body: { ok: true } };
    try {
      return { t: 'res', id, body: await this.handler.onRequest(body) };
    } catch (err) {
      const e = ensureNovaCronError(err);
      return { t: 'res', id, error: { code: e.code, message: e.message } };
    }
  }

  end(err: Error | undefined): void {
    if (this.ended) return;
    this.ended = true;
    if (this.syncTimer) clearTimeout(this.syncTimer);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.forget(err);
    if (err) {
      const e = ensureNovaCronError(err);
      for (const c of this.conns) {
        c.send(
          FrameType.Control,
          0,
          encodeControl({ t: 'res', id: 0, error: { code: e.code, message: e.message } }),
        );
        c.close();
      }
    }
    this.handler.onEnd(err);
  }
}

/** The receiving end of AMST: a TCP listener whose sessions are served by `onSession` handlers. */
export class AmstServer {
  private readonly sessions = new Map<string, ServerSession>();
  /** Sessions that ended, so a sender reattaching to one learns why instead of starting afresh. */
  private readonly ended = new Map<string, NovaCronError>();
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    private readonly opts: AmstServerOptions,
  ) {}

  static async listen(opts: AmstServerOptions): Promise<AmstServer> {
    const server = createServer();
    const s = new AmstServer(server, opts);
    server.on('connection', (sock) => s.onSocket(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          err.code === 'EADDRINUSE'
            ? new NovaCronError(ErrorCode.PortInUse, `DWCP port ${opts.host}:${opts.port} is in use`, {
                key: 'dwcp.listen_port',
                cause: err,
              })
            : ensureNovaCronError(err),
        ),
      );
      server.listen(opts.port, opts.host, resolve);
    });
    return s;
  }

  get address(): { host: string; port: number } {
    const a = this.server.address();
    if (a === null || typeof a === 'string')
      throw new NovaCronError(ErrorCode.InvalidState, 'DWCP server is not listening');
    return { host: a.address, port: a.port };
  }

  /**
   * Stops listening, lets sessions in progress finish for up to `graceMs` (a sender that got its
   * last answer says bye), then ends the rest with an error and closes every stream.
   */
  async close(graceMs = 2000): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    const deadline = Date.now() + graceMs;
    while (this.sessions.size > 0 && Date.now() < deadline) {
      await new Promise<void>((r) => {
        this.sessionEnded = r;
        setTimeout(r, Math.max(1, deadline - Date.now()));
      });
    }
    for (const s of [...this.sessions.values()])
      s.end(new NovaCronError(ErrorCode.Cancelled, 'DWCP receiver shutting down'));
    for (const sock of this.sockets) sock.destroy();
    await closed;
  }

  private sessionEnded: () => void = () => {};

  /**
   * Ends session `id` with `err` if none of its streams is attached (its sender died or is
   * reconnecting) and returns whether it did; a sender that comes back to it learns `err`.
   */
  abandonIfIdle(id: string, err: NovaCronError): boolean {
    const s = this.sessions.get(id);
    if (!s || s.conns.size > 0) return false;
    s.end(err);
    return true;
  }

  private onSocket(sock: Socket): void {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    DwcpConnection.accept(sock, this.opts.security).then(
      (conn) => this.serve(conn),
      (err: unknown) => this.opts.onStreamError?.(ensureNovaCronError(err)),
    );
  }

  private serve(conn: DwcpConnection): void {
    this.opts.onStream?.(conn);
    let session: ServerSession | undefined;
    const queue: Frame[] = [];
    let queuedBytes = 0;
    let running = false;
    let paused = false;
    const fail = (err: unknown) => {
      const e = ensureNovaCronError(err);
      this.opts.onStreamError?.(e);
      conn.close(e);
    };
    const run = async () => {
      running = true;
      while (queue.length > 0) {
        const f = queue.shift()!;
        queuedBytes -= f.payload.length;
        if (paused && queuedBytes < READ_PAUSE_BYTES / 2) {
          paused = false;
          conn.resume();
        }
        if (session && !session.ended) await session.data(f.seq, f.payload);
      }
      running = false;
    };
    conn.listen(
      (f) => {
        if (f.type === FrameType.Control) {
          let msg: ControlMessage;
          try {
            msg = decodeControl(f.payload);
          } catch (err) {
            fail(err);
            return;
          }
          if (msg.t === 'attach') {
            if (session) return fail(new ProtocolError('stream attached twice'));
            session = this.sessions.get(msg.session);
            if (!session) {
              const id = msg.session;
              const s = new ServerSession(id, this.opts.onSession(id), this.opts, () =>
                this.sessions.delete(id),
              );
              this.sessions.set(id, s);
              session = s;
            }
            session.attach(conn);
            return;
          }
          if (msg.t === 'req') {
            if (!session) return fail(new ProtocolError('request before attach'));
            session.request(conn, msg.id, msg.body).catch(fail);
            return;
          }
          return fail(new ProtocolError(`unexpected control message ${msg.t}`));
        }
        if (f.type !== FrameType.Data)
          return fail(new ProtocolError(`unexpected frame type ${f.type} from sender`));
        if (!session) return fail(new ProtocolError('data before attach'));
        queue.push(f);
        queuedBytes += f.payload.length;
        if (!paused && queuedBytes > READ_PAUSE_BYTES) {
          paused = true;
          conn.pause();
        }
        if (!running) {
          run().catch((err: unknown) => {
            // A record that fails verification ends the whole session: resending it cannot help.
            session?.end(ensureNovaCronError(err));
            fail(err);
          });
        }
      },
      (err) => {
        if (err) this.opts.onStreamError?.(ensureNovaCronError(err));
        session?.detach(conn);
      },
    );
  }
}
