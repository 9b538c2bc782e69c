// Memory-page encoding (4 KiB pages, e.g. VM RAM or QEMU's RAM pages): both ends keep an identical,
// bounded cache of the last version of each page, so a page can go as zero, as known (the same
// content sits in another cached page), as an XOR delta against its own previous version
// (XBZRLE-like), or as a compressed literal. Pure: the caller feeds pages/records in order.
import { IntegrityError } from '../../errors.js';
import type { CodecChoice } from './codec.js';
import { hashKey } from './hash.js';
import { BLOCK_CLASS, BlockKind, decodeRecord, encodeBlock, materialize, type BlockClass } from './record.js';
import { PAGE_SIZE } from './chunker.js';

interface Cached {
  readonly hash: Buffer;
  readonly data: Buffer;
}

/**
 * The last version of each page, bounded to `maxPages` (least recently written evicted first).
 * Sender and receiver apply the same sequence of writes, so their caches stay identical.
 */
export class PageCache {
  private readonly byIndex = new Map<number, Cached>();
  private readonly byHash = new Map<string, Map<number, Cached>>();
  constructor(readonly maxPages: number) {}

  get(index: number): Cached | undefined {
    return this.byIndex.get(index);
  }

  findByHash(hash: Buffer): Buffer | undefined {
    const m = this.byHash.get(hashKey(hash));
    if (!m) return undefined;
    for (const c of m.values()) return c.data;
    return undefined;
  }

  hasHash(hash: Buffer): boolean {
    return this.byHash.has(hashKey(hash));
  }

  put(index: number, hash: Buffer, data: Buffer): void {
    this.drop(index);
    const c = { hash, data };
    this.byIndex.set(index, c);
    const k = hashKey(hash);
    let m = this.byHash.get(k);
    if (!m) this.byHash.set(k, (m = new Map()));
    m.set(index, c);
    if (this.byIndex.size > this.maxPages) {
      const oldest = this.byIndex.keys().next().value;
      if (oldest !== undefined) this.drop(oldest);
    }
  }

  /** Forgets a page (e.g. it became zero). */
  drop(index: number): void {
    const c = this.byIndex.get(index);
    if (!c) return;
    this.byIndex.delete(index);
    const k = hashKey(c.hash);
    const m = this.byHash.get(k);
    m?.delete(index);
    if (m && m.size === 0) this.byHash.delete(k);
  }
}

export interface PageEncoderOptions {
  readonly codec: CodecChoice;
  /** Pages remembered for known/delta (both ends must agree). Default 65536 pages = 256 MiB. */
  readonly maxCachedPages?: number;
}

/** Sender side of page encoding. `encodePage` must be called in the order records are delivered. */
export class PageEncoder {
  private readonly cache: PageCache;
  constructor(private readonly options: PageEncoderOptions) {
    this.cache = new PageCache(options.maxCachedPages ?? 65536);
  }

  encodePage(index: number, page: Buffer): { bytes: Buffer; cls: BlockClass } {
    if (page.length !== PAGE_SIZE) throw new RangeError(`a page is ${PAGE_SIZE} bytes, got ${page.length}`);
    const prev = this.cache.get(index);
    const enc = encodeBlock(index * PAGE_SIZE, page, {
      receiverHas: (h) => this.cache.hasHash(h),
      base: prev,
      codec: this.options.codec,
    });
    if (enc.hash) this.cache.put(index, enc.hash, Buffer.from(page));
    else this.cache.drop(index);
    return { bytes: enc.bytes, cls: BLOCK_CLASS[enc.kind] };
  }
}

/** Receiver side: turns records back into verified pages, mirroring the encoder's cache. */
export class PageDecoder {
  private readonly cache: PageCache;
  constructor(options: { maxCachedPages?: number } = {}) {
    this.cache = new PageCache(options.maxCachedPages ?? 65536);
  }

  decode(recordBytes: Buffer): { index: number; data: Buffer } {
    const rec = decodeRecord(recordBytes);
    if (rec.offset % PAGE_SIZE !== 0 || rec.length !== PAGE_SIZE) {
      throw new IntegrityError(`page record at ${rec.offset}+${rec.length} is not one aligned page`);
    }
    const index = rec.offset / PAGE_SIZE;
    const data = materialize(rec, (h) => {
      const own = this.cache.get(index);
      if (rec.kind === BlockKind.Delta && own?.hash.equals(h)) return own.data;
      return this.cache.findByHash(h);
    });
    if (rec.kind === BlockKind.Zero) this.cache.drop(index);
    else this.cache.put(index, rec.hash, data);
    return { index, data };
  }
}
