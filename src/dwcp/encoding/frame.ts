// DWCP wire frames: a fixed 16-byte header, a payload and a CRC-32 trailer. `encodeFrame` builds one;
// `FrameParser` takes bytes in any split and emits whole frames, with no I/O (in the manner of nats.js).
import { crc32 } from 'node:zlib';
import { ProtocolError, IntegrityError } from '../../errors.js';

/** Frame types on a DWCP stream, as an `as const` enum. */
export const FrameType = {
  /** Client handshake opening (public keys, session id, stream index). */
  Hello: 1,
  /** Server handshake reply (public key, KEM ciphertext, server proof). */
  HelloReply: 2,
  /** Client handshake proof. */
  Auth: 3,
  /** A JSON control message (open, have-query, have-reply, end, result, error). */
  Control: 4,
  /** An HDE record carrying part of the transferred object; `seq` is its session-wide sequence number. */
  Data: 5,
  /** Receiver to sender: every Data frame with seq < `seq` is durably written. */
  Ack: 6,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

const KNOWN_TYPES: ReadonlySet<number> = new Set(Object.values(FrameType));

export const FRAME_MAGIC_0 = 0x44; // 'D'
export const FRAME_MAGIC_1 = 0x57; // 'W'
export const FRAME_VERSION = 1;
export const FRAME_HEADER_BYTES = 16;
export const FRAME_TRAILER_BYTES = 4;
/** Largest payload a frame may carry; anything larger is a protocol error (caps receiver memory). */
export const MAX_FRAME_PAYLOAD = 8 * 1024 * 1024;

export interface Frame {
  readonly type: FrameType;
  /** Session-wide sequence number for Data/Ack frames, 0 otherwise. Below 2^53. */
  readonly seq: number;
  readonly payload: Buffer;
}

/** Serialises one frame: header, payload, CRC-32 over header and payload. */
export function encodeFrame(type: FrameType, seq: number, payload: Uint8Array): Buffer {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new ProtocolError(`frame seq out of range: ${seq}`);
  if (payload.length > MAX_FRAME_PAYLOAD) {
    throw new ProtocolError(`frame payload too large: ${payload.length} > ${MAX_FRAME_PAYLOAD}`);
  }
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length + FRAME_TRAILER_BYTES);
  out[0] = FRAME_MAGIC_0;
  out[1] = FRAME_MAGIC_1;
  out[2] = FRAME_VERSION;
  out[3] = type;
  out.writeBigUInt64BE(BigInt(seq), 4);
  out.writeUInt32BE(payload.length, 12);
  out.set(payload, FRAME_HEADER_BYTES);
  const end = FRAME_HEADER_BYTES + payload.length;
  out.writeUInt32BE(crc32(out.subarray(0, end)), end);
  return out;
}

/**
 * Incremental frame parser. `push` accepts bytes split anywhere and returns the frames completed by
 * them, in order. A malformed header, an oversized length or a CRC mismatch throws (ProtocolError or
 * IntegrityError) and leaves the parser failed: every later `push` throws too, since the byte stream
 * can no longer be trusted. `end` throws if a frame was cut short.
 */
export class FrameParser {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private failed: Error | undefined;
  private maxPayload: number;

  constructor(options: { maxPayload?: number } = {}) {
    this.maxPayload = options.maxPayload ?? MAX_FRAME_PAYLOAD;
  }

  /** Changes the payload limit (a handshake runs with a small one, data with the full one). */
  setMaxPayload(n: number): void {
    this.maxPayload = Math.min(n, MAX_FRAME_PAYLOAD);
  }

  /** Bytes held for an incomplete frame. */
  get buffered(): number {
    return this.pendingBytes;
  }

  push(bytes: Uint8Array): Frame[] {
    if (this.failed) throw this.failed;
    if (bytes.length > 0) {
      this.pending.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
      this.pendingBytes += bytes.length;
    }
    const frames: Frame[] = [];
    try {
      for (;;) {
        const f = this.next();
        if (!f) break;
        frames.push(f);
      }
    } catch (err) {
      this.failed = err instanceof Error ? err : new ProtocolError(String(err));
      throw this.failed;
    }
    return frames;
  }

  /** Declares the end of the byte stream; throws if it stopped inside a frame. */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.pendingBytes > 0) {
      this.failed = new ProtocolError(`stream ended inside a frame (${this.pendingBytes} bytes pending)`);
      throw this.failed;
    }
  }

  private next(): Frame | undefined {
    if (this.pendingBytes < FRAME_HEADER_BYTES) {
      // Validate what we have of the header early, so garbage fails fast, byte by byte.
      if (this.pendingBytes > 0) this.checkHeaderPrefix(this.peek(Math.min(this.pendingBytes, 4)));
      return undefined;
    }
    const head = this.peek(FRAME_HEADER_BYTES);
    this.checkHeaderPrefix(head);
    const seqBig = head.readBigUInt64BE(4);
    if (seqBig > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError('frame seq beyond 2^53');
    const len = head.readUInt32BE(12);
    if (len > this.maxPayload)
      throw new ProtocolError(`frame length ${len} exceeds limit ${this.maxPayload}`);
    const total = FRAME_HEADER_BYTES + len + FRAME_TRAILER_BYTES;
    if (this.pendingBytes < total) return undefined;
    const whole = this.take(total);
    const end = FRAME_HEADER_BYTES + len;
    const want = whole.readUInt32BE(end);
    if (crc32(whole.subarray(0, end)) !== want) throw new IntegrityError('frame CRC-32 mismatch');
    return {
      type: head[3] as FrameType,
      seq: Number(seqBig),
      payload: whole.subarray(FRAME_HEADER_BYTES, end),
    };
  }

  private checkHeaderPrefix(b: Buffer): void {
    if (b.length > 0 && b[0] !== FRAME_MAGIC_0)
      throw new ProtocolError(`bad frame magic byte 0x${hex(b[0])}`);
    if (b.length > 1 && b[1] !== FRAME_MAGIC_1)
      throw new ProtocolError(`bad frame magic byte 0x${hex(b[1])}`);
    if (b.length > 2 && b[2] !== FRAME_VERSION) throw new ProtocolError(`unsupported frame version ${b[2]}`);
    if (b.length > 3 && !KNOWN_TYPES.has(b[3]!)) throw new ProtocolError(`unknown frame type ${b[3]}`);
  }

  /** The first n pending bytes, without consuming them (n <= pendingBytes). */
  private peek(n: number): Buffer {
    const first = this.pending[0]!;
    if (first.length >= n) return first.subarray(0, n);
    this.pending = [Buffer.concat(this.pending)];
    return this.pending[0]!.subarray(0, n);
  }

  /** Consumes and returns the first n pending bytes (n <= pendingBytes). */
  private take(n: number): Buffer {
    let first = this.pending[0]!;
    if (first.length < n) {
      first = Buffer.concat(this.pending);
      this.pending = [first];
    }
    // Copy so a frame's payload never pins a larger socket buffer.
    const out = Buffer.from(first.subarray(0, n));
    if (first.length === n) this.pending.shift();
    else this.pending[0] = first.subarray(n);
    this.pendingBytes -= n;
    return out;
  }
}

function hex(n: number | undefined): string {
  return (n ?? 0).toString(16).padStart(2, '0');
}
