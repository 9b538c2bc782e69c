// A byte stream carried over DWCP: the sender side is a Writable, the receiver side a Readable, in
// order, with AMST underneath (multi-stream, resume, acks, backpressure) and HDE on 4 KiB blocks:
// zero blocks and blocks whose content was already sent (a bounded cache both ends mirror) cost a
// few bytes. Live migration carries QEMU's migration stream through this (see docs/dwcp.md).
import { Readable, Writable } from 'node:stream';
import { ProtocolError } from '../errors.js';
import { FixedChunker, PAGE_SIZE } from './encoding/chunker.js';
import type { CodecChoice } from './encoding/codec.js';
import { hashBlock, hashKey } from './encoding/hash.js';
import {
  BLOCK_CLASS,
  BlockKind,
  decodeRecord,
  encodeBlock,
  materialize,
  type BlockClass,
} from './encoding/record.js';
import { AmstSender, type AmstSenderOptions } from './transport/sender.js';
import type { SessionHandler } from './transport/server.js';

/** Content cache keyed by hash, least recently inserted evicted; both ends apply the same inserts in the same order. */
class ContentCache {
  private readonly map = new Map<string, Buffer>();
  constructor(private readonly max: number) {}
  has(h: Buffer): boolean {
    return this.map.has(hashKey(h));
  }
  get(h: Buffer): Buffer | undefined {
    return this.map.get(hashKey(h));
  }
  put(h: Buffer, data: Buffer): void {
    const k = hashKey(h);
    this.map.delete(k);
    this.map.set(k, data);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }
}

export interface StreamSenderOptions extends Omit<AmstSenderOptions, 'onStream'> {
  readonly codec: CodecChoice;
  /** Blocks remembered for dedup (both ends must agree). Default 16384 (64 MiB). */
  readonly cacheBlocks?: number;
  /** Opaque description of the stream for the receiver (e.g. a migration id). */
  readonly label?: string;
}

/** Sender end: a Writable whose `final` waits until the receiver has delivered every byte. */
export interface DwcpStreamWriter extends Writable {
  readonly chunks: Record<BlockClass, number>;
  readonly amst: AmstSender;
}

/** Opens a DWCP byte stream to an AMST server whose sessions are served by `streamReceiver`. */
export async function openStreamSender(opts: StreamSenderOptions): Promise<DwcpStreamWriter> {
  const amst = await AmstSender.open(opts);
  await amst.request({ t: 'stream-open', label: opts.label ?? '' });
  const cache = new ContentCache(opts.cacheBlocks ?? 16384);
  const chunker = new FixedChunker(PAGE_SIZE);
  const chunks: Record<BlockClass, number> = { zero: 0, known: 0, delta: 0, literal: 0 };
  let offset = 0;
  let lastSeq = 0;
  const sendBlocks = async (blocks: { offset: number; data: Buffer }[]) => {
    for (const b of blocks) {
      const h = hashBlock(b.data);
      const enc = encodeBlock(b.offset, b.data, { receiverHas: (x) => cache.has(x), codec: opts.codec }, h);
      if (enc.kind !== BlockKind.Zero) cache.put(h, Buffer.from(b.data));
      chunks[BLOCK_CLASS[enc.kind]]++;
      lastSeq = await amst.send(enc.bytes);
      offset = b.offset + b.data.length;
    }
  };
  const w = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _enc, cb) {
      sendBlocks(chunker.push(chunk)).then(() => cb(), cb);
    },
    final(cb) {
      sendBlocks(chunker.end())
        .then(() => amst.flush())
        .then(() => amst.request({ t: 'stream-end', lastSeq, bytes: offset }))
        .then(() => amst.close())
        .then(() => cb(), cb);
    },
    destroy(err, cb) {
      if (err) amst.abort(err);
      cb(err);
    },
  });
  return Object.assign(w, { chunks, amst });
}

/**
 * Session handler factory for the receiving end: each session becomes a Readable handed to
 * `onStream`. Data is delivered in order; a Data frame counts as durable (and is acked) once the
 * Readable accepted it, so a slow consumer slows the sender (backpressure end to end).
 */
export function streamReceiver(
  onStream: (stream: Readable, label: string) => void,
  options: { cacheBlocks?: number } = {},
): (sessionId: string) => SessionHandler {
  return () => {
    const cache = new ContentCache(options.cacheBlocks ?? 16384);
    const pending = new Map<number, { payload: Buffer; resolve: () => void; reject: (e: Error) => void }>();
    let next = 1;
    let wantMore: (() => void) | undefined;
    let endAt: number | undefined;
    let ended = false;
    const readable = new Readable({
      highWaterMark: 4 << 20,
      read() {
        const w = wantMore;
        wantMore = undefined;
        w?.();
      },
    });
    const finishIfDone = () => {
      if (!ended && endAt !== undefined && next > endAt) {
        ended = true;
        readable.push(null);
      }
    };
    const drain = () => {
      for (;;) {
        const p = pending.get(next);
        if (!p) break;
        let data: Buffer;
        try {
          const rec = decodeRecord(p.payload);
          data = materialize(rec, (h) => cache.get(h));
          if (rec.kind !== BlockKind.Zero) cache.put(rec.hash, data);
        } catch (err) {
          p.reject(err as Error);
          readable.destroy(err as Error);
          return;
        }
        pending.delete(next);
        next++;
        const more = readable.push(data);
        p.resolve();
        if (!more) {
          wantMore = drain;
          return;
        }
      }
      finishIfDone();
    };
    return {
      onData: (seq, payload) =>
        new Promise<void>((resolve, reject) => {
          pending.set(seq, { payload, resolve, reject });
          if (!wantMore) drain();
        }),
      sync: () => Promise.resolve(),
      onRequest: (body) => {
        const b = (body ?? {}) as Record<string, unknown>;
        if (b.t === 'stream-open') {
          onStream(readable, typeof b.label === 'string' ? b.label : '');
          return Promise.resolve({ ok: true });
        }
        if (b.t === 'stream-end' && typeof b.lastSeq === 'number') {
          endAt = b.lastSeq;
          finishIfDone();
          return Promise.resolve({ ok: true });
        }
        return Promise.reject(new ProtocolError(`unknown stream request ${String(b.t)}`));
      },
      onEnd: (err) => {
        if (err && !ended) readable.destroy(err);
      },
    };
  };
}
