// Sub-chunk deltas for files (HDE "patch"): a changed content-defined chunk usually differs from the
// receiver's old bytes at the same place in only a few KiB. The sender does not hold those old
// bytes, so it asks: it sends short hashes of the chunk's 2 KiB sub-blocks together with an
// anchor (a neighbouring chunk the receiver holds, by its have-query ordinal, and where that chunk
// sits in the new file); the receiver lines the old file up on the anchor, hashes its own
// sub-blocks there and answers with a bitmap of the ones that match. The chunk then goes as a patch record: the bitmap plus only the
// sub-blocks that did not match. The receiver rebuilds it from its old bytes and verifies the
// chunk's SHA-256 like any other record. Pure: no I/O.
//
// The sub-block grid has a phase: boundaries fall where (position in the chunk + phase) is a
// multiple of SUB_BLOCK. The sender picks the phase that puts them on SUB_BLOCK multiples of the
// receiver's old file (it learns the shift between the two files from earlier answers), so a
// rewritten, aligned 4 KiB disk block costs 2 sub-blocks instead of the 3 it straddles otherwise.
import { createHash, hash } from 'node:crypto';
import { ProtocolError } from '../../errors.js';
import { readVarint, unzigzag, varintSize, writeVarint, zigzag } from './varint.js';

/** Sub-block size of patches. */
export const SUB_BLOCK = 2048;
/**
 * Bytes of SHA-256 kept per sub-block in a similarity query (32 bits). A false match (about one in
 * 2^32 comparisons) is caught before any record is sent: the answer carries MATCH_CHECK_BYTES of
 * SHA-256 over all the sub-blocks it matched for the chunk, the sender compares them with its own
 * bytes and sends the chunk whole when they differ. Only both colliding (2^-64 per chunk) lets a
 * wrong patch through, and then the chunk's hash check fails the transfer: never a wrong byte.
 */
export const SUB_HASH_BYTES = 4;
/** Bytes of the check over a chunk's matched sub-blocks in a similarity answer. */
export const MATCH_CHECK_BYTES = 4;
/** Chunks shorter than this are not worth a query (the CDC minimum). */
export const MIN_PATCH_CHUNK = 2048;
/** Largest chunk a query entry may describe (the CDC maximum is 64 KiB). */
const MAX_ENTRY_LENGTH = 1 << 20;

function checkPhase(phase: number): void {
  if (!Number.isInteger(phase) || phase < 0 || phase >= SUB_BLOCK)
    throw new RangeError(`bad sub-block phase ${phase}`);
}

/** Length of the first sub-block of a grid with this phase (the others are SUB_BLOCK but the last). */
function firstSubBlock(phase: number): number {
  return phase === 0 ? SUB_BLOCK : SUB_BLOCK - phase;
}

export function subBlockCount(length: number, phase = 0): number {
  if (length <= 0) return 0;
  const f = firstSubBlock(phase);
  return f >= length ? 1 : 1 + Math.ceil((length - f) / SUB_BLOCK);
}

/** Start of sub-block `i` of a grid with this phase. */
function subStart(i: number, phase: number): number {
  return i === 0 ? 0 : firstSubBlock(phase) + (i - 1) * SUB_BLOCK;
}

/** The short hashes of `data`'s sub-blocks on the grid with this phase, concatenated. */
export function subBlockHashes(data: Uint8Array, phase = 0): Buffer {
  checkPhase(phase);
  const n = subBlockCount(data.length, phase);
  const out = Buffer.allocUnsafe(n * SUB_HASH_BYTES);
  for (let i = 0; i < n; i++) {
    const h = hash(
      'sha256',
      data.subarray(subStart(i, phase), Math.min(data.length, subStart(i + 1, phase))),
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
  /** The chunk's ordinal in the session's have-queries (every hashed chunk has one). */
  readonly ordinal: number;
  /** Ordinal of a nearby chunk the receiver said it holds, and that chunk's offset in the new file. */
  readonly anchor: number;
  readonly anchorOffset: number;
  /** Phase of the sub-block grid (0 ≤ phase < SUB_BLOCK). */
  readonly phase: number;
  /** `subBlockHashes(chunk, phase)`. */
  readonly sub: Buffer;
}

// Query entries, all varints (LEB128; signed ones zigzag-coded): the offset as a delta from the
// previous entry's offset, the length, the ordinal as a delta from the previous entry's ordinal,
// the anchor's ordinal as a delta from the entry's, the anchor's offset as a delta from the entry's
// offset, the phase; then the sub-block hashes. An anchor costs a byte or two, not a hash prefix:
// the receiver remembers which chunk each ordinal it answered "held" names.
const WHAT = 'similarity query';

export function encodeSimilarityQuery(entries: readonly SimilarityEntry[]): Buffer {
  const fields: number[][] = [];
  let size = 0;
  let prev = 0;
  let prevOrd = 0;
  for (const e of entries) {
    checkPhase(e.phase);
    if (e.sub.length !== subBlockCount(e.length, e.phase) * SUB_HASH_BYTES)
      throw new RangeError('sub-block hashes do not fit the length');
    const f = [
      zigzag(e.offset - prev),
      e.length,
      zigzag(e.ordinal - prevOrd),
      zigzag(e.anchor - e.ordinal),
      zigzag(e.anchorOffset - e.offset),
      e.phase,
    ];
    prev = e.offset;
    prevOrd = e.ordinal;
    fields.push(f);
    for (const v of f) size += varintSize(v);
    size += e.sub.length;
  }
  const out = Buffer.allocUnsafe(size);
  let p = 0;
  entries.forEach((e, i) => {
    for (const v of fields[i]!) p = writeVarint(out, p, v);
    p += e.sub.copy(out, p);
  });
  return out;
}

/** Parses a similarity query; throws ProtocolError on anything malformed. */
export function decodeSimilarityQuery(buf: Buffer, maxEntries = 65536): SimilarityEntry[] {
  const out: SimilarityEntry[] = [];
  let p = 0;
  let prev = 0;
  let prevOrd = 0;
  while (p < buf.length) {
    if (out.length >= maxEntries) throw new ProtocolError('similarity query: too many entries');
    const f: number[] = [];
    for (let k = 0; k < 6; k++) {
      let v: number;
      [v, p] = readVarint(buf, p, WHAT);
      f.push(v);
    }
    const offset = prev + unzigzag(f[0]!);
    const length = f[1]!;
    const ordinal = prevOrd + unzigzag(f[2]!);
    const anchor = ordinal + unzigzag(f[3]!);
    const anchorOffset = offset + unzigzag(f[4]!);
    const phase = f[5]!;
    if (phase >= SUB_BLOCK) throw new ProtocolError(`similarity query: phase out of range: ${phase}`);
    for (const v of [offset, anchorOffset, ordinal, anchor])
      if (!Number.isSafeInteger(v) || v < 0)
        throw new ProtocolError('similarity query: offset or ordinal out of range');
    if (length === 0 || length > MAX_ENTRY_LENGTH)
      throw new ProtocolError(`similarity query: length out of range: ${length}`);
    const n = subBlockCount(length, phase) * SUB_HASH_BYTES;
    if (p + n > buf.length) throw new ProtocolError('similarity query: truncated sub-block hashes');
    out.push({ offset, length, ordinal, anchor, anchorOffset, phase, sub: buf.subarray(p, p + n) });
    p += n;
    prev = offset;
    prevOrd = ordinal;
  }
  return out;
}

/**
 * Bitmap (LSB first) of the sub-blocks (grid of this phase) of a chunk described by `sub` whose hash
 * equals that of the bytes at the same position in `base` (the receiver's old bytes lined up on the
 * anchor; it may be shorter than the chunk near the end of the old file).
 */
export function matchSubBlocks(sub: Buffer, length: number, base: Uint8Array, phase = 0): Buffer {
  const n = subBlockCount(length, phase);
  const bits = Buffer.alloc(Math.ceil(n / 8));
  const mine = subBlockHashes(base.subarray(0, Math.min(base.length, length)), phase);
  for (let i = 0; i < n; i++) {
    const start = subStart(i, phase);
    const want = Math.min(subStart(i + 1, phase), length) - start;
    const have = Math.min(subStart(i + 1, phase), base.length) - start;
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

/**
 * The check over the sub-blocks (grid of this phase) whose bit is set: the first MATCH_CHECK_BYTES
 * of the SHA-256 of their bytes in order. The receiver computes it over its base, the sender over
 * its chunk; they agree unless a sub-block hash matched falsely.
 */
export function matchCheck(data: Uint8Array, length: number, bits: Uint8Array, phase: number): Buffer {
  checkPhase(phase);
  const h = createHash('sha256');
  const n = subBlockCount(length, phase);
  for (let i = 0; i < n; i++)
    if ((bits[i >> 3]! >> (i & 7)) & 1)
      h.update(data.subarray(subStart(i, phase), Math.min(length, subStart(i + 1, phase))));
  return h.digest().subarray(0, MATCH_CHECK_BYTES);
}

export function bitmapCount(bits: Uint8Array, n: number): number {
  let c = 0;
  for (let i = 0; i < n; i++) if ((bits[i >> 3]! >> (i & 7)) & 1) c++;
  return c;
}

/** The patch body: the grid's phase (2 bytes), the bitmap, then the sub-blocks whose bit is clear, in order. */
export function encodePatchBody(data: Uint8Array, bits: Uint8Array, phase = 0): Buffer {
  checkPhase(phase);
  const n = subBlockCount(data.length, phase);
  const bm = Math.ceil(n / 8);
  const head = Buffer.allocUnsafe(2);
  head.writeUInt16BE(phase, 0);
  const parts: Uint8Array[] = [head, bits.subarray(0, bm)];
  let size = 2 + bm;
  for (let i = 0; i < n; i++) {
    if ((bits[i >> 3]! >> (i & 7)) & 1) continue;
    const s = data.subarray(subStart(i, phase), Math.min(data.length, subStart(i + 1, phase)));
    parts.push(s);
    size += s.length;
  }
  return Buffer.concat(parts, size);
}

/** The sub-blocks of `data` whose bit is clear, in order: a file patch record's payload. */
export function unmatchedSubBlocks(data: Uint8Array, bits: Uint8Array, phase: number): Buffer {
  checkPhase(phase);
  const n = subBlockCount(data.length, phase);
  const parts: Uint8Array[] = [];
  let size = 0;
  for (let i = 0; i < n; i++) {
    if ((bits[i >> 3]! >> (i & 7)) & 1) continue;
    const s = data.subarray(subStart(i, phase), Math.min(data.length, subStart(i + 1, phase)));
    parts.push(s);
    size += s.length;
  }
  return Buffer.concat(parts, size);
}

/**
 * Rebuilds a chunk of `length` bytes: sub-blocks (grid of this phase) whose bit is set from the
 * base, the others in order from `subs`; throws ProtocolError when `subs` does not fit (the caller
 * verifies the chunk's hash).
 */
export function applySubBlocks(
  subs: Uint8Array,
  length: number,
  base: Uint8Array,
  bits: Uint8Array,
  phase: number,
): Buffer {
  if (!Number.isInteger(phase) || phase < 0 || phase >= SUB_BLOCK)
    throw new ProtocolError(`patch: phase out of range: ${phase}`);
  const n = subBlockCount(length, phase);
  if (bits.length < Math.ceil(n / 8)) throw new ProtocolError('patch: bitmap too short');
  const out = Buffer.allocUnsafe(length);
  let p = 0;
  for (let i = 0; i < n; i++) {
    const start = subStart(i, phase);
    const size = Math.min(subStart(i + 1, phase), length) - start;
    if ((bits[i >> 3]! >> (i & 7)) & 1) {
      if (base.length < start + size) throw new ProtocolError('patch refers past the end of its base');
      out.set(base.subarray(start, start + size), start);
    } else {
      if (p + size > subs.length) throw new ProtocolError('patch body truncated');
      out.set(subs.subarray(p, p + size), start);
      p += size;
    }
  }
  if (p !== subs.length) throw new ProtocolError('patch body has trailing bytes');
  return out;
}

/**
 * Rebuilds a chunk of `length` bytes from a patch body and the base; throws ProtocolError when the
 * body does not fit the length (the caller verifies the chunk's hash).
 */
export function applyPatchBody(body: Buffer, length: number, base: Uint8Array): Buffer {
  if (body.length < 2) throw new ProtocolError('patch body shorter than its header');
  const phase = body.readUInt16BE(0);
  if (phase >= SUB_BLOCK) throw new ProtocolError(`patch body: phase out of range: ${phase}`);
  const bm = Math.ceil(subBlockCount(length, phase) / 8);
  if (body.length < 2 + bm) throw new ProtocolError('patch body shorter than its bitmap');
  return applySubBlocks(body.subarray(2 + bm), length, base, body.subarray(2, 2 + bm), phase);
}
