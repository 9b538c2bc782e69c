// Known runs (file transfers): consecutive chunks the receiver already holds go as one record
// instead of one known record each. Each chunk is named by the 16-byte prefix of its SHA-256 (the
// key of the receiver's chunk index) and its length; the receiver reads it from wherever it holds
// it and checks that the SHA-256 of those bytes starts with the prefix, so a wrong or missing
// chunk is an IntegrityError, never a wrong byte. Layout: kind(1) = 5, codec(1) = 0, offset(8),
// total length(4), then per chunk length(4) and hash prefix(16). Byte streams (stream.ts) never
// send it; `decodeRecord` refuses it there. Pure: no I/O.
import { IntegrityError, ProtocolError } from '../../errors.js';
import { hashBlock } from './hash.js';
import { MAX_BLOCK_BYTES } from './record.js';
import { encodeVarints, readVarint } from './varint.js';

export const KNOWN_RUN_KIND = 5;
export const KNOWN_RUN_PREFIX_BYTES = 16;
const HEADER = 14;
const PART = 4 + KNOWN_RUN_PREFIX_BYTES;
/** Most chunks in one run record. */
export const KNOWN_RUN_MAX_PARTS = 4096;

export interface KnownRunPart {
  readonly length: number;
  /** The chunk's SHA-256 (at least its first KNOWN_RUN_PREFIX_BYTES). */
  readonly hash: Buffer;
}

export interface KnownRun {
  readonly offset: number;
  readonly length: number;
  readonly parts: readonly KnownRunPart[];
}

export function encodeKnownRun(offset: number, parts: readonly KnownRunPart[]): Buffer {
  if (parts.length === 0 || parts.length > KNOWN_RUN_MAX_PARTS)
    throw new RangeError('known run: bad part count');
  const out = Buffer.allocUnsafe(HEADER + parts.length * PART);
  out[0] = KNOWN_RUN_KIND;
  out[1] = 0;
  out.writeBigUInt64BE(BigInt(offset), 2);
  let total = 0;
  let p = HEADER;
  for (const part of parts) {
    if (part.hash.length < KNOWN_RUN_PREFIX_BYTES) throw new RangeError('known run: hash too short');
    out.writeUInt32BE(part.length, p);
    part.hash.copy(out, p + 4, 0, KNOWN_RUN_PREFIX_BYTES);
    total += part.length;
    p += PART;
  }
  out.writeUInt32BE(total, 10);
  return out;
}

export function isKnownRun(rec: Uint8Array): boolean {
  return rec.length > 0 && rec[0] === KNOWN_RUN_KIND;
}

/** Parses a known-run record; throws ProtocolError on anything malformed. */
export function decodeKnownRun(buf: Buffer): KnownRun {
  if (buf.length < HEADER + PART || buf[0] !== KNOWN_RUN_KIND || buf[1] !== 0)
    throw new ProtocolError('known run: bad header');
  if ((buf.length - HEADER) % PART !== 0) throw new ProtocolError('known run: truncated part');
  const n = (buf.length - HEADER) / PART;
  if (n > KNOWN_RUN_MAX_PARTS) throw new ProtocolError(`known run: too many parts (${n})`);
  const off = buf.readBigUInt64BE(2);
  if (off > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError('known run: offset beyond 2^53');
  const length = buf.readUInt32BE(10);
  const parts: KnownRunPart[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    const p = HEADER + i * PART;
    const len = buf.readUInt32BE(p);
    if (len === 0 || len > MAX_BLOCK_BYTES)
      throw new ProtocolError(`known run: part length out of range: ${len}`);
    total += len;
    parts.push({ length: len, hash: Buffer.from(buf.subarray(p + 4, p + PART)) });
  }
  if (total !== length) throw new ProtocolError(`known run: parts add up to ${total}, not ${length}`);
  return { offset: Number(off), length, parts };
}

/**
 * Reads every chunk of a run through `resolve` (by hash prefix) and verifies it; returns each
 * chunk with its offset and full SHA-256.
 */
export function materializeKnownRun(
  run: KnownRun,
  resolve: (prefix: Buffer, length: number) => Buffer | undefined,
): { offset: number; data: Buffer; hash: Buffer }[] {
  const out: { offset: number; data: Buffer; hash: Buffer }[] = [];
  let offset = run.offset;
  for (const part of run.parts) {
    const data = resolve(part.hash, part.length);
    if (!data || data.length !== part.length)
      throw new IntegrityError(
        `known block ${part.hash.toString('hex').slice(0, 16)} not held by the receiver`,
      );
    const hash = hashBlock(data);
    if (!hash.subarray(0, KNOWN_RUN_PREFIX_BYTES).equals(part.hash.subarray(0, KNOWN_RUN_PREFIX_BYTES)))
      throw new IntegrityError(`block at offset ${offset} fails its hash check`);
    out.push({ offset, data, hash });
    offset += part.length;
  }
  return out;
}

// Held runs: consecutive chunks the receiver said it holds in its answer to a have-query. The
// have-query named each chunk by its hash prefix and a session-wide ordinal; the receiver keeps the
// prefixes of the chunks it said yes to, so the run needs no hashes at all: kind(1) = 6, then
// varints offset, total length, first ordinal, count. The receiver reads each chunk from its index
// by the remembered prefix, checks that the chunk's SHA-256 starts with it, and that the lengths
// add up to the total.
export const HELD_RUN_KIND = 6;

export interface HeldRun {
  readonly offset: number;
  readonly length: number;
  readonly first: number;
  readonly count: number;
}

export function encodeHeldRun(run: HeldRun): Buffer {
  if (run.count <= 0 || run.count > KNOWN_RUN_MAX_PARTS || run.length <= 0)
    throw new RangeError('held run: bad part count or length');
  const v = encodeVarints([run.offset, run.length, run.first, run.count]);
  return Buffer.concat([Buffer.from([HELD_RUN_KIND]), v]);
}

export function isHeldRun(rec: Uint8Array): boolean {
  return rec.length > 0 && rec[0] === HELD_RUN_KIND;
}

/** Parses a held-run record; throws ProtocolError on anything malformed. */
export function decodeHeldRun(buf: Buffer): HeldRun {
  if (buf.length < 5 || buf[0] !== HELD_RUN_KIND) throw new ProtocolError('held run: bad header');
  const what = 'held run';
  const f: number[] = [];
  let p = 1;
  for (let k = 0; k < 4; k++) {
    let v: number;
    [v, p] = readVarint(buf, p, what);
    f.push(v);
  }
  const [offset, length, first, count] = f as [number, number, number, number];
  if (p !== buf.length) throw new ProtocolError('held run: trailing bytes');
  if (count === 0 || count > KNOWN_RUN_MAX_PARTS)
    throw new ProtocolError(`held run: bad part count ${count}`);
  if (length === 0 || length > count * MAX_BLOCK_BYTES)
    throw new ProtocolError(`held run: length out of range: ${length}`);
  return { offset, length, first, count };
}

/**
 * Reads every chunk of a held run: `resolve(ordinal)` gives the hash prefix the have-query named
 * for that ordinal and the bytes the receiver holds under it. Verifies each chunk against its
 * prefix and the lengths against the run; returns each chunk with its offset and full SHA-256.
 */
export function materializeHeldRun(
  run: HeldRun,
  resolve: (ordinal: number) => { prefix: Buffer; data: Buffer | undefined } | undefined,
): { offset: number; data: Buffer; hash: Buffer }[] {
  const out: { offset: number; data: Buffer; hash: Buffer }[] = [];
  let offset = run.offset;
  for (let i = 0; i < run.count; i++) {
    const r = resolve(run.first + i);
    if (!r) throw new ProtocolError(`held run: chunk ${run.first + i} was not reported held`);
    if (!r.data)
      throw new IntegrityError(`held block ${r.prefix.toString('hex').slice(0, 16)} no longer readable`);
    const hash = hashBlock(r.data);
    if (!hash.subarray(0, r.prefix.length).equals(r.prefix))
      throw new IntegrityError(`block at offset ${offset} fails its hash check`);
    if (offset + r.data.length > run.offset + run.length)
      throw new IntegrityError(`held run at ${run.offset}: chunks overrun its length ${run.length}`);
    out.push({ offset, data: r.data, hash });
    offset += r.data.length;
  }
  if (offset !== run.offset + run.length)
    throw new IntegrityError(
      `held run at ${run.offset}: chunks add up to ${offset - run.offset}, not ${run.length}`,
    );
  return out;
}
