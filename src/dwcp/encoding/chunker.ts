// Splitting input into blocks: fixed-size pages (VM memory, 4 KiB) or content-defined chunks
// (FastCDC with a gear hash, for disk images and files, so an insert shifts only nearby boundaries).
// Streaming and pure: push bytes, get whole chunks back; `end` flushes the tail.

/** One block of the input with its logical offset. */
export interface Chunk {
  readonly offset: number;
  readonly data: Buffer;
}

export interface Chunker {
  /** Feeds bytes; returns the chunks they complete, in order. The chunker copies what it keeps. */
  push(bytes: Uint8Array): Chunk[];
  /** Returns the final (possibly short) chunk, if any bytes remain. */
  end(): Chunk[];
}

export const PAGE_SIZE = 4096;

/** Fixed-size blocks (memory pages); the last one may be short. */
export class FixedChunker implements Chunker {
  private pending: Buffer = Buffer.alloc(0);
  private offset = 0;
  constructor(private readonly size: number = PAGE_SIZE) {
    if (!Number.isInteger(size) || size <= 0) throw new RangeError(`bad block size ${size}`);
  }

  push(bytes: Uint8Array): Chunk[] {
    const buf = this.pending.length ? Buffer.concat([this.pending, bytes]) : Buffer.from(bytes);
    const out: Chunk[] = [];
    let pos = 0;
    while (buf.length - pos >= this.size) {
      out.push({ offset: this.offset, data: buf.subarray(pos, pos + this.size) });
      this.offset += this.size;
      pos += this.size;
    }
    this.pending = Buffer.from(buf.subarray(pos));
    return out;
  }

  end(): Chunk[] {
    if (this.pending.length === 0) return [];
    const c = { offset: this.offset, data: this.pending };
    this.offset += this.pending.length;
    this.pending = Buffer.alloc(0);
    return [c];
  }
}

export interface CdcParams {
  readonly min: number;
  readonly avg: number;
  readonly max: number;
}

/** Default content-defined chunk sizes for files and disk images. */
export const DEFAULT_CDC: CdcParams = { min: 2048, avg: 8192, max: 65536 };

// Gear table from a fixed-seed xorshift so every NovaCron build cuts at the same places.
const GEAR = (() => {
  const t = new Uint32Array(256);
  let x = 0x9e3779b9;
  for (let i = 0; i < 256; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    t[i] = x;
  }
  return t;
})();

const GEAR_I32 = new Int32Array(GEAR.buffer);
/** The gear table (tests compare against a reference implementation). */
export const GEAR_FOR_TEST: Readonly<Int32Array> = GEAR_I32;

/** A mask of the `bits` highest bits: the gear hash's high bits depend on the last 32 bytes. */
function maskOfBits(bits: number): number {
  return (0xffffffff << (32 - bits)) >>> 0;
}

/**
 * Finds the length of the first chunk in `buf[start..]` with FastCDC normalised chunking: a
 * stricter mask before `avg`, a looser one after, a hard cut at `max`. Returns -1 when `final` is
 * false and no boundary was found before the end of the buffer (more bytes are needed).
 */
export function findCut(buf: Uint8Array, start: number, p: CdcParams, final: boolean): number {
  const avail = buf.length - start;
  if (avail <= p.min) return final ? avail : avail === p.min && p.min === p.max ? avail : -1;
  const bits = Math.round(Math.log2(p.avg));
  const maskS = maskOfBits(bits + 2);
  const maskL = maskOfBits(Math.max(1, bits - 2));
  const limit = Math.min(avail, p.max);
  const normal = Math.min(limit, p.avg);
  // Signed 32-bit arithmetic keeps V8 on small-integer fast paths.
  const mS = maskS | 0;
  const mL = maskL | 0;
  const gear = GEAR_I32;
  let h = 0;
  let i = start + p.min;
  const endN = start + normal;
  const endL = start + limit;
  if (isZeroRange(buf, i, endL)) {
    // Fast path for zero runs (most of a VM memory image, sparse regions of disks): the same cuts
    // as the loop below, without touching every byte. On zeros the hash follows h' = 2h + g and
    // reaches its fixed point (-g) within 32 steps; after that every step gives the same test.
    const g = gear[0]!;
    for (; i < endN; i++) {
      const n = ((h << 1) + g) | 0;
      if ((n & mS) === 0) return i + 1 - start;
      if (n === h) {
        i = endN;
        break;
      }
      h = n;
    }
    for (; i < endL; i++) {
      const n = ((h << 1) + g) | 0;
      if ((n & mL) === 0) return i + 1 - start;
      if (n === h) break;
      h = n;
    }
    if (limit === p.max) return p.max;
    return final ? avail : -1;
  }
  for (; i < endN; i++) {
    h = ((h << 1) + gear[buf[i]!]!) | 0;
    if ((h & mS) === 0) return i + 1 - start;
  }
  for (; i < endL; i++) {
    h = ((h << 1) + gear[buf[i]!]!) | 0;
    if ((h & mL) === 0) return i + 1 - start;
  }
  if (limit === p.max) return p.max;
  return final ? avail : -1;
}

const ZEROS = new Uint8Array(64 * 1024);

/** True when buf[from..to) is all zero bytes (memcmp in 64 KiB strides). */
function isZeroRange(buf: Uint8Array, from: number, to: number): boolean {
  for (let p = from; p < to; p += ZEROS.length) {
    const n = Math.min(ZEROS.length, to - p);
    if (Buffer.compare(buf.subarray(p, p + n), ZEROS.subarray(0, n)) !== 0) return false;
  }
  return true;
}

/** Content-defined chunker (FastCDC). Chunk lengths lie in [min, max], except a short final chunk. */
export class CdcChunker implements Chunker {
  private pending: Buffer = Buffer.alloc(0);
  private offset = 0;
  constructor(private readonly params: CdcParams = DEFAULT_CDC) {
    if (!(params.min > 0 && params.min <= params.avg && params.avg <= params.max)) {
      throw new RangeError('CDC params must satisfy 0 < min <= avg <= max');
    }
  }

  push(bytes: Uint8Array): Chunk[] {
    const buf = this.pending.length ? Buffer.concat([this.pending, bytes]) : Buffer.from(bytes);
    return this.cut(buf, false);
  }

  end(): Chunk[] {
    const buf = this.pending;
    this.pending = Buffer.alloc(0);
    return this.cut(buf, true);
  }

  private cut(buf: Buffer, final: boolean): Chunk[] {
    const out: Chunk[] = [];
    let pos = 0;
    while (pos < buf.length) {
      const n = findCut(buf, pos, this.params, final);
      if (n < 0) break;
      out.push({ offset: this.offset, data: buf.subarray(pos, pos + n) });
      this.offset += n;
      pos += n;
    }
    this.pending = Buffer.from(buf.subarray(pos));
    return out;
  }
}
