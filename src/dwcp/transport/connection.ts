// One DWCP stream over TCP: runs the authenticated handshake, then carries frames, sealing their
// payloads with AES-256-GCM when encryption is on. Reports frames and the close through callbacks;
// the AMST session above decides what to send on which stream.
import { connect as netConnect, type Socket } from 'node:net';
import {
  ErrorCode,
  NovaCronError,
  ProtocolError,
  UnavailableError,
  ensureNovaCronError,
} from '../../errors.js';
import { encodeFrame, FrameParser, FrameType, MAX_FRAME_PAYLOAD, type Frame } from '../encoding/frame.js';
import { FrameOpener, FrameSealer } from './cipher.js';
import {
  clientFinish,
  clientHello,
  clientReady,
  decodeReject,
  encodeReject,
  serverReply,
  serverVerify,
  type HandshakeAuth,
} from './handshake.js';
import { PeerAuthError } from '../../security/peer-certs.js';
import {
  applyCongestionControl,
  tcpInfo,
  type CongestionControlSetting,
  type TcpInfo,
} from './congestion.js';

/**
 * How a stream authenticates (see handshake.ts): the join token (`token`), certificates signed by
 * the cluster CA (`certificate`, optionally `peerNames`), or both (either is accepted; a server
 * that has both prefers certificates).
 */
export interface ConnectionSecurity extends HandshakeAuth {
  /** Seal frame payloads with AES-256-GCM (config `dwcp.features.encryption`). */
  readonly encrypt: boolean;
}

const HANDSHAKE_TIMEOUT_MS = 15_000;

/**
 * An established, authenticated stream. Callers set `onFrame` and `onClose` right after it resolves;
 * frames that arrive before are queued. `onClose` fires exactly once, with the error if any.
 */
export class DwcpConnection {
  onFrame: (frame: Frame) => void = (f) => this.early.push(f);
  onClose: (err: Error | undefined) => void = () => {};
  private early: Frame[] = [];
  private closed = false;
  private closeErr: Error | undefined;
  /** Bytes written to this stream's socket so far (wire bytes, including framing and tags). */
  wireBytesOut = 0;
  /** TCP congestion control set on this stream (undefined: the kernel default). */
  congestionControl: string | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly parser: FrameParser,
    private readonly sealer: FrameSealer | undefined,
    private readonly opener: FrameOpener | undefined,
    leftover: Frame[],
  ) {
    this.attach();
    for (const f of leftover) this.deliver(f);
  }

  /** Sets the frame handler and replays frames that arrived during the handshake. */
  listen(onFrame: (frame: Frame) => void, onClose: (err: Error | undefined) => void): void {
    this.onFrame = onFrame;
    this.onClose = onClose;
    const early = this.early;
    this.early = [];
    for (const f of early) onFrame(f);
    if (this.closed) onClose(this.closeErr);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The kernel's counters for this stream's socket (undefined without the addon). */
  tcpInfo(): TcpInfo | undefined {
    return this.closed ? undefined : tcpInfo(this.socket);
  }

  /** Bytes queued in the socket, not yet handed to the kernel. */
  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  get remote(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? 0}`;
  }

  /** Sends one frame; returns false when the socket's buffer is full (wait for `drained`). */
  send(type: FrameType, seq: number, payload: Uint8Array): boolean {
    if (this.closed) return false;
    const body = this.sealer ? this.sealer.seal(type, seq, payload) : payload;
    const bytes = encodeFrame(type, seq, body);
    this.wireBytesOut += bytes.length;
    return this.socket.write(bytes);
  }

  private drainWait: Promise<void> | undefined;

  /** Resolves when the socket buffer has drained or the stream closed (one listener pair however many callers wait). */
  drained(): Promise<void> {
    if (this.closed || !this.socket.writableNeedDrain) return Promise.resolve();
    this.drainWait ??= new Promise<void>((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        this.drainWait = undefined;
        resolve();
      };
      this.socket.once('drain', done);
      this.socket.once('close', done);
    });
    return this.drainWait;
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Closes the stream (gracefully when no error is given). */
  close(err?: Error): void {
    if (err) this.socket.destroy(err);
    else this.socket.end();
  }

  /** Abruptly kills the TCP connection (tests use it to simulate a dropped stream). */
  destroy(): void {
    this.socket.destroy();
  }

  private deliver(f: Frame): void {
    let payload = f.payload;
    if (this.opener) {
      try {
        payload = this.opener.open(f.type, f.seq, f.payload);
      } catch (err) {
        this.socket.destroy(err as Error);
        return;
      }
    }
    this.onFrame({ type: f.type, seq: f.seq, payload });
  }

  private attach(): void {
    if (this.socket.destroyed) this.closed = true;
    this.socket.on('data', (d: Buffer) => {
      let frames: Frame[];
      try {
        frames = this.parser.push(d);
      } catch (err) {
        this.socket.destroy(err as Error);
        return;
      }
      for (const f of frames) {
        if (this.closed) return;
        this.deliver(f);
      }
    });
    this.socket.on('error', (err) => {
      this.closeErr ??= err;
    });
    this.socket.on('close', () => {
      if (this.closed) return;
      this.closed = true;
      this.onClose(this.closeErr);
    });
  }

  /** Opens a stream to host:port and runs the client side of the handshake. */
  static async connect(
    host: string,
    port: number,
    sec: ConnectionSecurity,
    cc?: CongestionControlSetting,
  ): Promise<DwcpConnection> {
    const socket = netConnect({ host, port });
    socket.setNoDelay(true);
    const frames = handshakeReader(socket);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      const ccInEffect = cc ? applyCongestionControl(socket, cc) : undefined;
      const st = clientHello(sec);
      socket.write(encodeFrame(FrameType.Hello, sec.encrypt ? 1 : 0, st.hello));
      const reply = await frames.next(FrameType.HelloReply, 'DWCP receiver');
      let keys, auth, ready;
      try {
        ({ keys, auth, ready } = clientFinish(st, reply.payload, sec));
      } catch (err) {
        refuse(socket, err);
        throw err;
      }
      socket.write(encodeFrame(FrameType.Auth, 0, auth));
      // Version 2: the receiver says it accepted us (or why not) before anything is sent.
      if (ready) clientReady(ready, (await frames.next(FrameType.Auth, 'DWCP receiver')).payload);
      const conn = new DwcpConnection(
        socket,
        frames.parser,
        sec.encrypt ? new FrameSealer(keys.c2s) : undefined,
        sec.encrypt ? new FrameOpener(keys.s2c) : undefined,
        frames.handOver(),
      );
      conn.congestionControl = ccInEffect;
      return conn;
    } catch (err) {
      if (!socket.writableEnded) socket.destroy();
      const e = ensureNovaCronError(err);
      if (e.code === ErrorCode.Internal) {
        throw new UnavailableError(`cannot open DWCP stream to ${host}:${port}: ${e.message}`, {
          cause: err,
        });
      }
      throw e;
    }
  }

  /** Runs the server side of the handshake on an accepted socket. */
  static async accept(socket: Socket, sec: ConnectionSecurity): Promise<DwcpConnection> {
    socket.setNoDelay(true);
    const frames = handshakeReader(socket);
    try {
      const hello = await frames.next(FrameType.Hello, 'DWCP sender');
      const encrypt = hello.seq === 1;
      if (sec.encrypt && !encrypt) {
        throw new NovaCronError(
          ErrorCode.PermissionDenied,
          'DWCP client asked for an unencrypted stream; this receiver requires encryption',
        );
      }
      let r;
      try {
        r = serverReply(hello.payload, sec);
      } catch (err) {
        refuse(socket, err);
        throw err;
      }
      socket.write(encodeFrame(FrameType.HelloReply, 0, r.reply));
      const auth = await frames.next(FrameType.Auth, 'DWCP sender');
      try {
        serverVerify(r, auth.payload, sec);
      } catch (err) {
        refuse(socket, err);
        throw err;
      }
      if (r.ready) socket.write(encodeFrame(FrameType.Auth, 0, r.ready));
      return new DwcpConnection(
        socket,
        frames.parser,
        encrypt ? new FrameSealer(r.keys.s2c) : undefined,
        encrypt ? new FrameOpener(r.keys.c2s) : undefined,
        frames.handOver(),
      );
    } catch (err) {
      if (!socket.writableEnded) socket.destroy();
      throw err;
    }
  }
}

/**
 * Tells the peer why this end refuses it (a reject in a Control frame), then closes: gracefully, so
 * the reject is delivered, with a hard close shortly after in case the peer does not close.
 */
function refuse(socket: Socket, err: unknown): void {
  if (!(err instanceof PeerAuthError) || err.byPeer || socket.destroyed) return;
  socket.end(encodeFrame(FrameType.Control, 0, encodeReject(err)));
  setTimeout(() => socket.destroy(), 2000).unref();
}

/** Reads handshake frames from a socket until the connection object takes the socket over. */
function handshakeReader(socket: Socket) {
  const parser = new FrameParser({ maxPayload: 64 * 1024 });
  const queue: Frame[] = [];
  let waiter:
    { type: FrameType; peer: string; resolve: (f: Frame) => void; reject: (e: Error) => void } | undefined;
  let failure: Error | undefined;
  const fail = (e: Error) => {
    failure ??= e;
    if (waiter) waiter.reject(failure);
    waiter = undefined;
  };
  const deliver = () => {
    if (!waiter || queue.length === 0) return;
    const f = queue.shift()!;
    const w = waiter;
    waiter = undefined;
    if (f.type === w.type) w.resolve(f);
    else if (f.type === FrameType.Control) {
      // The peer refused this end: a reject with its reason (or a protocol error).
      try {
        w.reject(decodeReject(f.payload, w.peer));
      } catch (err) {
        w.reject(err as Error);
      }
    } else w.reject(new ProtocolError(`expected handshake frame ${w.type}, got ${f.type}`));
  };
  const onData = (d: Buffer) => {
    try {
      queue.push(...parser.push(d));
    } catch (err) {
      fail(err as Error);
      return;
    }
    deliver();
  };
  const onClose = () => fail(new UnavailableError('DWCP stream closed during the handshake'));
  const onError = (e: Error) => fail(e);
  const onTimeout = () => {
    fail(new NovaCronError(ErrorCode.DeadlineExceeded, 'DWCP handshake timed out'));
    socket.destroy();
  };
  socket.on('data', onData);
  socket.on('close', onClose);
  socket.on('error', onError);
  socket.setTimeout(HANDSHAKE_TIMEOUT_MS, onTimeout);
  return {
    parser,
    /** The next handshake frame, which must be `type`; a reject from `peer` fails with its reason. */
    next(type: FrameType, peer: string): Promise<Frame> {
      if (failure && queue.length === 0) return Promise.reject(failure);
      return new Promise<Frame>((resolve, reject) => {
        waiter = { type, peer, resolve, reject };
        deliver();
      });
    },
    /** Detaches the handshake listeners; returns frames parsed past the handshake, in order. */
    handOver(): Frame[] {
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
      socket.setTimeout(0);
      parser.setMaxPayload(MAX_FRAME_PAYLOAD);
      return queue.splice(0);
    },
  };
}
