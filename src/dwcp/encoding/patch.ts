// Sub-chunk deltas for files (HDE "patch"): a changed content-defined chunk usually differs from the
// receiver's old bytes at the same place in only a few KiB. The sender does not hold those old
// bytes, so it asks: it sends short hashes of the chunk's 512-byte sub-blocks together with an
// anchor (a neighbouring chunk the receiver holds, and where that chunk sits in the new file); the
// receiver lines the old file up on the anchor, hashes its own sub-blocks there and answers with a
// bitmap of the ones that match. The chunk then goes as a patch record: the bitmap plus only the
// sub-blocks that did not match. The receiver rebuilds it from its old bytes and verifies the
// chunk's SHA-256 like any other record. Pure: no I/O.
import { hash } from 'node:crypto';
import { ProtocolError } from '../../errors.js';

/** Sub-block size of patches. */
export const SUB_BLOCK = 512;
/** Bytes of SHA-256 kept per sub-block in a similarity query (48 bits: a false match in a 1 TB transfer is ~1e-6 likely, and is caught by the chunk hash). */
export const SUB_HASH_BYTES = 6;
/** Chunks shorter than this are not worth a query. */
export const MIN_PATCH_CHUNK = 2 * SUB_BLOCK;
/** Bytes of an anchor's SHA-256 in a query (as in have-queries; the receiver's index is keyed by them). */
export const ANCHOR_PREFIX_BYTES = 16;
const ENTRY_FIXED = 8 + 4 + ANCHOR_PREFIX_BYTES + 8;
/** Largest chunk a query entry may describe (the CDC maximum is 64 KiB). */
const MAX_ENTRY_LENGTH = 1 << 20;

export function subBlockCount(length: number): number {
  return Math.ceil(length / SUB_BLOCK);
}

/** The short hashes of `data`'s sub-blocks, concatenated. */
export function subBlockHashes(data: Uint8Array): Buffer {
  const n = subBlockCount(data.length);
  const out = Buffer.allocUnsafe(n * SUB_HASH_BYTES);
  for (let i = 0; i < n; i++) {
    const h = hash(
      'sha256',
      data.subarray(i * SUB_BLOCK, Math.min(data.length, (i + 1) * SUB_BLOCK)),
      'buffer',
    );
    h.copy(out, i * SUB_HASH_BYTES, 0, SUB_HASH_BYTES);
  }
  return out;
}

/** One chunk the sender would like to patch. */
export interface SimilarityEntry {
  /** Offset and length of the chunk in the new file. */
  readonly offset: number;
  readonly length: number;
  /** Hash prefix of a nearby chunk the receiver holds, and that chunk's offset in the new file. */
  readonly anchor: Buffer;
  readonly anchorOffset: number;
  /** `subBlockHashes` of the chunk. */
  readonly sub: Buffer;
}

export function encodeSimilarityQuery(entries: readonly SimilarityEntry[]): Buffer {
  let size = 0;
  for (const e of entries) size += ENTRY_FIXED + e.sub.length;
  const out = Buffer.allocUnsafe(size);
  let p = 0;
  for (const e of entries) {
    if (e.anchor.length < ANCHOR_PREFIX_BYTES) throw new RangeError('anchor prefix too short');
    if (e.sub.length !== subBlockCount(e.length) * SUB_HASH_BYTES)
      throw new RangeError('sub-block hashes do not fit the length');
    out.writeBigUInt64BE(BigInt(e.offset), p);
    out.writeUInt32BE(e.length, p + 8);
    e.anchor.copy(out, p + 12, 0, ANCHOR_PREFIX_BYTES);
    out.writeBigUInt64BE(BigInt(e.anchorOffset), p + 12 + ANCHOR_PREFIX_BYTES);
    p += ENTRY_FIXED;
    e.sub.copy(out, p);
    p += e.sub.length;
  }
  return out;
}

/** Parses a similarity query; throws ProtocolError on anything malformed. */
export function decodeSimilarityQuery(buf: Buffer, maxEntries = 65536): SimilarityEntry[] {
  const out: SimilarityEntry[] = [];
  let p = 0;
  while (p < buf.length) {
    if (out.length >= maxEntries) throw new ProtocolError('similarity query: too many entries');
    if (p + ENTRY_FIXED > buf.length) throw new ProtocolError('similarity query: truncated entry');
    const offset = Number(buf.readBigUInt64BE(p));
    const length = buf.readUInt32BE(p + 8);
    const anchor = Buffer.from(buf.subarray(p + 12, p + 12 + ANCHOR_PREFIX_BYTES));
    const anchorOffset = Number(buf.readBigUInt64BE(p + 12 + ANCHOR_PREFIX_BYTES));
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(anchorOffset))
      throw new ProtocolError('similarity query: offset beyond 2^53');
    if (length === 0 || length > MAX_ENTRY_LENGTH)
      throw new ProtocolError(`similarity query: length out of range: ${length}`);
    p += ENTRY_FIXED;
    const n = subBlockCount(length) * SUB_HASH_BYTES;
    if (p + n > buf.length) throw new ProtocolError('similarity query: truncated sub-block hashes');
    out.push({ offset, length, anchor, anchorOffset, sub: buf.subarray(p, p + n) });
    p += n;
  }
  return out;
}

/**
 * Bitmap (LSB first) of the sub-blocks of a chunk described by `sub` whose hash equals that of the
 * bytes at the same position in `base` (the receiver's old bytes lined up on the anchor; it may be
 * shorter than the chunk near the end of the old file).
 */
export function matchSubBlocks(sub: Buffer, length: number, base: Uint8Array): Buffer {
  const n = subBlockCount(length);
  const bits = Buffer.alloc(Math.ceil(n / 8));
  const mine = subBlockHashes(base.subarray(0, Math.min(base.length, length)));
  for (let i = 0; i < n; i++) {
    const want = Math.min(SUB_BLOCK, length - i * SUB_BLOCK);
    const have = Math.min(SUB_BLOCK, base.length - i * SUB_BLOCK);
    if (have !== want) continue; // a short tail of the base cannot stand for a full sub-block
    if (
      sub.compare(
        mine,
        i * SUB_HASH_BYTES,
        (i + 1) * SUB_HASH_BYTES,
        i * SUB_HASH_BYTES,
        (i + 1) * SUB_HASH_BYTES,
      ) === 0
    )
      bits[i >> 3]! |= 1 << (i & 7);
  }
  return bits;
}

export function bitmapCount(bits: Uint8Array, n: number): number {
  let c = 0;
  for (let i = 0; i < n; i++) if ((bits[i >> 3]! >> (i & 7)) & 1) c++;
  return c;
}

/** The patch body: bitmap then the sub-blocks whose bit is clear, in order. */
export function encodePatchBody(data: Uint8Array, bits: Uint8Array): Buffer {
  const n = subBlockCount(data.length);
  const bm = Math.ceil(n / 8);
  const parts: Uint8Array[] = [bits.subarray(0, bm)];
  let size = bm;
  for (let i = 0; i < n; i++) {
    if ((bits[i >> 3]! >> (i & 7)) & 1) continue;
    const s = data.subarray(i * SUB_BLOCK, Math.min(data.length, (i + 1) * SUB_BLOCK));
    parts.push(s);
    size += s.length;
  }
  return Buffer.concat(parts, size);
}

/**
 * Rebuilds a chunk of `length` bytes from a patch body and the base; throws ProtocolError when the
 * body does not fit the length (the caller verifies the chunk's hash).
 */
export function applyPatchBody(body: Buffer, length: number, base: Uint8Array): Buffer {
  const n = subBlockCount(length);
  const bm = Math.ceil(n / 8);
  if (body.length < bm) throw new ProtocolError('patch body shorter than its bitmap');
  const out = Buffer.allocUnsafe(length);
  let p = bm;
  for (let i = 0; i < n; i++) {
    const start = i * SUB_BLOCK;
    const size = Math.min(SUB_BLOCK, length - start);
    if ((body[i >> 3]! >> (i & 7)) & 1) {
      if (base.length < start + size) throw new ProtocolError('patch refers past the end of its base');
      out.set(base.subarray(start, start + size), start);
    } else {
      if (p + size > body.length) throw new ProtocolError('patch body truncated');
      body.copy(out, start, p, p + size);
      p += size;
    }
  }
  if (p !== body.length) throw new ProtocolError('patch body has trailing bytes');
  return out;
}
