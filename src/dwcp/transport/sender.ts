// AMST sender: one logical session over N authenticated TCP streams. Data frames get session-wide
// sequence numbers and go out on whichever stream has room; they stay in a bounded retransmit window
// until the receiver acknowledges them as durably written. A dropped stream is reopened and only its
// unacknowledged frames are sent again. The stream count adapts to measured goodput.
import { randomBytes } from 'node:crypto';
import {
  NovaCronError,
  UnavailableError,
  ensureNovaCronError,
  ErrorCode,
  ProtocolError,
} from '../../errors.js';
import { FrameType, MAX_FRAME_PAYLOAD, type Frame } from '../encoding/frame.js';
import { DwcpConnection, type ConnectionSecurity } from './connection.js';
import { StreamCountController, type StreamCountTuning } from './stream-count.js';
import { decodeControl, encodeControl, type ControlMessage } from './control.js';
import type { CongestionControlSetting } from './congestion.js';

export interface AmstSenderOptions {
  readonly host: string;
  readonly port: number;
  readonly security: ConnectionSecurity;
  /** Initial stream count (mode profile `streams`). */
  readonly streams: number;
  readonly minStreams?: number;
  readonly maxStreams?: number;
  /** Adapt the stream count to goodput (`--streams auto`). */
  readonly adaptive?: boolean;
  /** Bytes of unacknowledged data kept for retransmission; bounds sender memory. Default 64 MiB. */
  readonly windowBytes?: number;
  /** Reconnection attempts per dropped stream before the session fails. Default 8. */
  readonly reconnectAttempts?: number;
  /** Interval of goodput sampling for the adaptive controller, ms. Default 1000. */
  readonly adaptIntervalMs?: number;
  /** Thresholds of the adaptive controller (tests). */
  readonly streamCountTuning?: StreamCountTuning;
  /** TCP congestion control per stream (`auto`: BBR where the kernel offers it). Unset: kernel default. */
  readonly congestionControl?: CongestionControlSetting;
  /** Test hook: called with each new stream once it is established. */
  readonly onStream?: (index: number, conn: DwcpConnection) => void;
}

export interface AmstStats {
  /** Payload bytes acknowledged durable by the receiver. */
  readonly ackedBytes: number;
  /** Bytes written to all sockets, including framing, tags, control and retransmissions. */
  readonly wireBytes: number;
  /** Data frames sent again after a stream drop, and their payload bytes. */
  readonly resentFrames: number;
  readonly resentBytes: number;
  readonly streams: number;
  readonly maxStreamsUsed: number;
  readonly reconnects: number;
  /** Congestion control of the streams (undefined: kernel default). */
  readonly congestionControl: string | undefined;
}

interface Slot {
  readonly index: number;
  conn: DwcpConnection | undefined;
  connecting: Promise<void> | undefined;
  readonly inflight: Set<number>;
  retiring: boolean;
  wireBytesClosed: number;
}

interface Pending {
  readonly payload: Buffer;
  slot: Slot | undefined;
}

const SOCKET_HIGH_WATER = 1 << 20;
/** Initial stream count of an adaptive session whose streams run BBR. */
const BBR_INITIAL_STREAMS = 2;

/** The client end of an AMST session. Create with `AmstSender.open`. */
export class AmstSender {
  readonly sessionId = randomBytes(16).toString('hex');
  private readonly slots: Slot[] = [];
  private readonly unacked = new Map<number, Pending>();
  private unackedBytes = 0;
  private ackedBytes = 0;
  private ackedUpTo = 1;
  private nextSeq = 1;
  private readonly outQueue: number[] = [];
  private pumping = false;
  private failure: NovaCronError | undefined;
  private closing = false;
  private waiters: (() => void)[] = [];
  private readonly requests = new Map<
    number,
    { body: unknown; resolve: (v: unknown) => void; reject: (e: Error) => void; slot: Slot | undefined }
  >();
  private nextRequestId = 1;
  private resentFrames = 0;
  private resentBytes = 0;
  private reconnects = 0;
  private maxStreamsUsed = 0;
  private readonly windowBytes: number;
  private controller: StreamCountController | undefined;
  private adaptTimer: NodeJS.Timeout | undefined;
  private lastSample = { at: 0, acked: 0 };
  private readonly kernelAcked = new WeakMap<DwcpConnection, number>();

  private constructor(private readonly opts: AmstSenderOptions) {
    this.windowBytes = opts.windowBytes ?? 64 * 1024 * 1024;
  }

  /**
   * Opens the session: connects the first stream (failing fast if the receiver is unreachable or
   * the token is wrong) and resolves; the other streams connect in the background and take frames
   * as they come up, so data starts flowing one handshake after the call instead of N.
   */
  static async open(opts: AmstSenderOptions): Promise<AmstSender> {
    const s = new AmstSender(opts);
    let n = Math.max(1, opts.streams);
    await s.connectSlot(s.addSlot(), false);
    if (opts.adaptive) {
      // BBR fills a path with one flow; several BBR flows on one bottleneck overfill its queue
      // (bench/dwcp: 6 streams lose a fifth of the goodput of 2). So with BBR the session starts
      // with at most 2 streams and probes for more only after a while, wanting a clear gain; with
      // loss-based congestion control (cubic, reno) more streams are what fills a lossy path.
      const bbr = s.slots[0]?.conn?.congestionControl === 'bbr';
      const min = opts.minStreams ?? 1;
      const max = opts.maxStreams ?? Math.max(opts.streams, 16);
      if (bbr) n = Math.max(min, Math.min(n, BBR_INITIAL_STREAMS));
      s.controller = new StreamCountController(
        { initial: n, min, max },
        opts.streamCountTuning ?? (bbr ? { probeAtStart: false, gain: 0.2, probeEvery: 10 } : {}),
      );
      n = s.controller.count;
    }
    s.setStreamCount(n);
    if (s.controller) {
      s.lastSample = { at: performance.now(), acked: 0 };
      s.adaptTimer = setInterval(() => s.adapt(), opts.adaptIntervalMs ?? 1000);
      s.adaptTimer.unref();
    }
    return s;
  }

  get stats(): AmstStats {
    let wire = 0;
    for (const sl of this.slots) wire += sl.wireBytesClosed + (sl.conn?.wireBytesOut ?? 0);
    return {
      ackedBytes: this.ackedBytes,
      wireBytes: wire,
      resentFrames: this.resentFrames,
      resentBytes: this.resentBytes,
      streams: this.liveSlots().length,
      maxStreamsUsed: this.maxStreamsUsed,
      reconnects: this.reconnects,
      congestionControl: this.slots.find((x) => x.conn)?.conn?.congestionControl,
    };
  }

  /** True when the receiver has acknowledged `seq` as durably written. */
  isAcked(seq: number): boolean {
    return seq < this.ackedUpTo;
  }

  /** Streams currently open (test hook for failure injection). */
  connections(): DwcpConnection[] {
    return this.slots.flatMap((s) => (s.conn && !s.conn.isClosed ? [s.conn] : []));
  }

  /**
   * Queues one payload as a Data frame; resolves once it is inside the retransmit window (not
   * when it is acknowledged: use `flush`). Waits while the window is full: this is the
   * backpressure that reaches the producer.
   */
  async send(payload: Buffer): Promise<number> {
    if (payload.length > MAX_FRAME_PAYLOAD - 64)
      throw new ProtocolError(`payload too large: ${payload.length}`);
    while (this.unackedBytes + payload.length > this.windowBytes && this.unackedBytes > 0) {
      this.throwIfFailed();
      await new Promise<void>((r) => this.waiters.push(r));
    }
    this.throwIfFailed();
    const seq = this.nextSeq++;
    this.unacked.set(seq, { payload, slot: undefined });
    this.unackedBytes += payload.length;
    this.outQueue.push(seq);
    this.pump();
    return seq;
  }

  /** Resolves when every payload sent so far is acknowledged durable. */
  async flush(): Promise<void> {
    for (;;) {
      this.throwIfFailed();
      if (this.unacked.size === 0) return;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** Sends a control request to the receiver session and awaits its answer (resent after a stream drop). */
  request(body: unknown): Promise<unknown> {
    this.throwIfFailed();
    const id = this.nextRequestId++;
    return new Promise((resolve, reject) => {
      const r = { body, resolve, reject, slot: undefined as Slot | undefined };
      this.requests.set(id, r);
      this.sendRequest(id);
    });
  }

  /** Ends the session: tells the receiver, closes all streams. */
  async close(): Promise<void> {
    if (this.adaptTimer) clearInterval(this.adaptTimer);
    if (!this.failure) {
      try {
        await this.request({ t: 'bye' });
      } catch {
        // The receiver may already be gone; closing is best effort.
      }
    }
    this.closing = true;
    for (const s of this.slots) s.conn?.close();
  }

  /** Aborts the session with an error (rejects pending sends and requests). */
  abort(err: Error): void {
    this.fail(ensureNovaCronError(err));
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  private fail(err: NovaCronError): void {
    if (this.failure) return;
    this.failure = err;
    this.closing = true;
    if (this.adaptTimer) clearInterval(this.adaptTimer);
    for (const s of this.slots) s.conn?.destroy();
    for (const r of this.requests.values()) r.reject(err);
    this.requests.clear();
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private liveSlots(): Slot[] {
    return this.slots.filter((s) => s.conn && !s.conn.isClosed && !s.retiring);
  }

  private addSlot(): Slot {
    const slot: Slot = {
      index: this.slots.length,
      conn: undefined,
      connecting: undefined,
      inflight: new Set(),
      retiring: false,
      wireBytesClosed: 0,
    };
    this.slots.push(slot);
    return slot;
  }

  private async connectSlot(slot: Slot, retry: boolean): Promise<void> {
    const attempts = retry ? (this.opts.reconnectAttempts ?? 8) : 1;
    let lastErr: unknown;
    for (let i = 0; i < attempts && !this.closing; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** (i - 1))));
      try {
        const conn = await DwcpConnection.connect(
          this.opts.host,
          this.opts.port,
          this.opts.security,
          this.opts.congestionControl,
        );
        if (this.closing) {
          conn.close();
          return;
        }
        slot.conn = conn;
        conn.listen(
          (f) => this.onFrame(slot, f),
          (err) => this.onStreamClosed(slot, conn, err),
        );
        conn.send(
          FrameType.Control,
          0,
          encodeControl({ t: 'attach', session: this.sessionId, stream: slot.index }),
        );
        this.opts.onStream?.(slot.index, conn);
        this.maxStreamsUsed = Math.max(this.maxStreamsUsed, this.liveSlots().length);
        // Requests waiting for any stream, and data queued while no stream was up.
        for (const [id, r] of this.requests) if (!r.slot) this.sendRequest(id);
        this.pump();
        return;
      } catch (err) {
        lastErr = err;
        const e = ensureNovaCronError(err);
        // An authentication failure will not heal by retrying.
        if (e.code === ErrorCode.Unauthenticated || e.code === ErrorCode.PermissionDenied) throw e;
      }
    }
    if (this.closing) return;
    throw ensureNovaCronError(lastErr ?? new UnavailableError('no DWCP stream'));
  }

  private onStreamClosed(slot: Slot, conn: DwcpConnection, err: Error | undefined): void {
    slot.wireBytesClosed += conn.wireBytesOut;
    if (slot.conn === conn) slot.conn = undefined;
    // Frames that went out on this stream and are not acknowledged go again, oldest first.
    const again = [...slot.inflight].filter((q) => this.unacked.has(q)).sort((a, b) => a - b);
    slot.inflight.clear();
    for (const q of again) {
      const p = this.unacked.get(q);
      if (p) {
        p.slot = undefined;
        this.resentBytes += p.payload.length;
      }
    }
    this.resentFrames += again.length;
    this.outQueue.unshift(...again);
    for (const r of this.requests.values()) if (r.slot === slot) r.slot = undefined;
    if (this.closing || slot.retiring) {
      this.pump();
      return;
    }
    this.reconnects++;
    slot.connecting = this.connectSlot(slot, true).catch((e: unknown) => {
      const ne = ensureNovaCronError(e);
      this.fail(
        new UnavailableError(`DWCP stream ${slot.index} could not be reopened: ${ne.message}`, {
          cause: err ?? e,
        }),
      );
    });
    // Other streams carry the resent frames meanwhile.
    this.pump();
    for (const [id, r] of this.requests) if (!r.slot) this.sendRequest(id);
  }

  private onFrame(slot: Slot, f: Frame): void {
    switch (f.type) {
      case FrameType.Ack:
        this.onAck(f.seq);
        return;
      case FrameType.Control: {
        let msg: ControlMessage;
        try {
          msg = decodeControl(f.payload);
        } catch (err) {
          this.fail(ensureNovaCronError(err));
          return;
        }
        if (msg.t === 'attached') this.onAck(msg.ack);
        else if (msg.t === 'res') {
          if (msg.id === 0 && msg.error) {
            this.fail(new NovaCronError(msg.error.code, `receiver ended the session: ${msg.error.message}`));
            return;
          }
          const r = this.requests.get(msg.id);
          if (!r) return;
          this.requests.delete(msg.id);
          if (msg.error)
            r.reject(
              new NovaCronError(msg.error.code, `receiver: ${msg.error.message}`, { retryable: false }),
            );
          else r.resolve(msg.body);
        }
        return;
      }
      case FrameType.Hello:
      case FrameType.HelloReply:
      case FrameType.Auth:
      case FrameType.Data:
        this.fail(new ProtocolError(`unexpected frame type ${f.type} from receiver on stream ${slot.index}`));
    }
  }

  private onAck(upTo: number): void {
    if (upTo <= this.ackedUpTo) return;
    for (const [seq, p] of this.unacked) {
      if (seq >= upTo) break;
      this.unacked.delete(seq);
      this.unackedBytes -= p.payload.length;
      this.ackedBytes += p.payload.length;
      p.slot?.inflight.delete(seq);
    }
    this.ackedUpTo = upTo;
    this.retireIdle();
    this.wake();
  }

  private sendRequest(id: number): void {
    const r = this.requests.get(id);
    const slot = this.liveSlots()[0];
    if (!r || !slot?.conn) return;
    r.slot = slot;
    slot.conn.send(FrameType.Control, 0, encodeControl({ t: 'req', id, body: r.body }));
  }

  /** Moves queued frames onto streams with room; waits for a drain when every stream is full. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    void this.pumpLoop().finally(() => {
      this.pumping = false;
    });
  }

  private async pumpLoop(): Promise<void> {
    while (this.outQueue.length > 0 && !this.failure) {
      const live = this.liveSlots();
      if (live.length === 0) return; // a reconnect calls pump again
      let best: Slot | undefined;
      for (const s of live) if (!best || s.conn!.queuedBytes < best.conn!.queuedBytes) best = s;
      const conn = best!.conn!;
      if (conn.queuedBytes >= SOCKET_HIGH_WATER) {
        await Promise.race(live.map((s) => s.conn!.drained()));
        continue;
      }
      const seq = this.outQueue.shift()!;
      const p = this.unacked.get(seq);
      if (!p) continue; // acknowledged meanwhile
      p.slot = best;
      best!.inflight.add(seq);
      conn.send(FrameType.Data, seq, p.payload);
    }
  }

  /**
   * Bytes the receiver's TCP acknowledged across all streams since the last call: the kernel's
   * count (TCP_INFO) where the addon is available, which follows the link smoothly; else the
   * session's durable acks, which come in bursts after each fsync.
   */
  private deliveredSinceLastSample(): number {
    let sum = 0;
    let kernel = true;
    for (const s of this.slots) {
      const c = s.conn;
      if (!c || c.isClosed) continue;
      const info = c.tcpInfo();
      if (!info) {
        kernel = false;
        break;
      }
      const last = this.kernelAcked.get(c) ?? 0;
      this.kernelAcked.set(c, info.bytesAcked);
      sum += Math.max(0, info.bytesAcked - last);
    }
    const durable = this.ackedBytes - this.lastSample.acked;
    return kernel ? sum : durable;
  }

  private adapt(): void {
    if (!this.controller || this.failure || this.closing) return;
    const now = performance.now();
    const dt = (now - this.lastSample.at) / 1000;
    const goodput = this.deliveredSinceLastSample() / Math.max(dt, 1e-3);
    this.lastSample = { at: now, acked: this.ackedBytes };
    if (this.unackedBytes === 0 && this.outQueue.length === 0) return; // idle: nothing learnt
    const target = this.controller.observe(goodput);
    this.setStreamCount(target);
  }

  /** Opens or retires streams to reach `n` (retired streams close once their frames are acknowledged). */
  setStreamCount(n: number): void {
    const live = this.slots.filter(
      (s) => !s.retiring && (s.conn !== undefined || s.connecting !== undefined),
    );
    if (n > live.length) {
      for (let i = live.length; i < n; i++) {
        const slot = this.addSlot();
        slot.connecting = this.connectSlot(slot, false).catch(() => {
          slot.retiring = true; // the receiver refused another stream: carry on with fewer
        });
      }
    } else {
      for (const s of live.slice(n)) s.retiring = true;
      this.retireIdle();
    }
  }

  private retireIdle(): void {
    for (const s of this.slots) {
      if (s.retiring && s.conn && s.inflight.size === 0) {
        // onStreamClosed accounts for its wire bytes and clears s.conn.
        s.conn.close();
      }
    }
  }
}
