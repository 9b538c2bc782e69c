// HDE records: one block of the transferred object, classified as zero, known (the receiver holds a
// block with this hash), delta (XOR against a base block the receiver holds, then compressed) or
// literal (compressed). Encoding, decoding and verified reconstruction; pure, no I/O.
import { IntegrityError, ProtocolError } from '../../errors.js';
import { compressBlock, decompressBlock, type CodecChoice, type CodecId } from './codec.js';
import { HASH_BYTES, hashBlock, isZeroBlock } from './hash.js';
import { applyPatchBody } from './patch.js';
import { readVarint, varintSize, writeVarint } from './varint.js';

export const BlockKind = { Zero: 0, Known: 1, Delta: 2, Literal: 3, Patch: 4 } as const;
export type BlockKind = (typeof BlockKind)[keyof typeof BlockKind];
export type BlockClass = 'zero' | 'known' | 'delta' | 'literal';

export const BLOCK_CLASS: Readonly<Record<BlockKind, BlockClass>> = {
  [BlockKind.Zero]: 'zero',
  [BlockKind.Known]: 'known',
  [BlockKind.Delta]: 'delta',
  [BlockKind.Literal]: 'literal',
  [BlockKind.Patch]: 'delta',
};

/** Largest block a record may describe (a zero record may cover a run of pages). */
export const MAX_BLOCK_BYTES = 64 * 1024 * 1024;
const BASE_HEADER = 14;

interface RecordBase {
  /** Logical offset of the block in the object (file offset, or page index × 4096). */
  readonly offset: number;
  readonly length: number;
}
export interface ZeroRecord extends RecordBase {
  readonly kind: typeof BlockKind.Zero;
}
export interface KnownRecord extends RecordBase {
  readonly kind: typeof BlockKind.Known;
  readonly hash: Buffer;
}
export interface DeltaRecord extends RecordBase {
  readonly kind: typeof BlockKind.Delta;
  readonly hash: Buffer;
  readonly baseHash: Buffer;
  readonly codec: CodecId;
  readonly payload: Buffer;
}
export interface LiteralRecord extends RecordBase {
  readonly kind: typeof BlockKind.Literal;
  readonly hash: Buffer;
  readonly codec: CodecId;
  readonly payload: Buffer;
}
/** A file chunk rebuilt from the receiver's old bytes at the same place plus the sub-blocks that changed (see patch.ts). */
export interface PatchRecord extends RecordBase {
  readonly kind: typeof BlockKind.Patch;
  readonly hash: Buffer;
  /** Bitmap of sub-blocks taken from the base, then the other sub-blocks' bytes. */
  readonly payload: Buffer;
}
export type ChunkRecord = ZeroRecord | KnownRecord | DeltaRecord | LiteralRecord | PatchRecord;

/** What the encoder knows about the receiver when it classifies a block. */
export interface ClassifyContext {
  /** True when the receiver is known to hold a block with this hash. */
  readonly receiverHas: (hash: Buffer) => boolean;
  /** A similar block the receiver holds (same length), e.g. the previous version of this page. */
  readonly base?: { readonly hash: Buffer; readonly data: Buffer } | undefined;
  readonly codec: CodecChoice;
}

/** An encoded record plus what the encoder learnt, for statistics and indexes. */
export interface EncodedBlock {
  readonly kind: BlockKind;
  readonly hash: Buffer | undefined;
  readonly bytes: Buffer;
}

/**
 * Classifies one block and encodes its record. Zero beats known beats delta beats literal; a delta
 * is used only when it is smaller than the literal would be.
 */
export function encodeBlock(offset: number, data: Buffer, ctx: ClassifyContext, hash?: Buffer): EncodedBlock {
  if (isZeroBlock(data))
    return { kind: BlockKind.Zero, hash: undefined, bytes: zeroRecord(offset, data.length) };
  const h = hash ?? hashBlock(data);
  if (ctx.receiverHas(h))
    return {
      kind: BlockKind.Known,
      hash: h,
      bytes: header(BlockKind.Known, 0, offset, data.length, [h], 0).buf,
    };
  const lit = compressBlock(data, ctx.codec);
  const base = ctx.base;
  if (base && base.data.length === data.length && !base.hash.equals(h)) {
    const x = xorBlocks(data, base.data);
    const d = compressBlock(x, ctx.codec);
    if (d.data.length < lit.data.length) {
      return {
        kind: BlockKind.Delta,
        hash: h,
        bytes: withPayload(BlockKind.Delta, d.codec, offset, data.length, [h, base.hash], d.data),
      };
    }
  }
  return {
    kind: BlockKind.Literal,
    hash: h,
    bytes: withPayload(BlockKind.Literal, lit.codec, offset, data.length, [h], lit.data),
  };
}

/** A record describing `length` zero bytes at `offset`. */
export function zeroRecord(offset: number, length: number): Buffer {
  return header(BlockKind.Zero, 0, offset, length, [], 0).buf;
}

function header(
  kind: BlockKind,
  codec: number,
  offset: number,
  length: number,
  hashes: Buffer[],
  payloadLen: number,
) {
  const buf = Buffer.allocUnsafe(BASE_HEADER + hashes.length * HASH_BYTES + payloadLen);
  buf[0] = kind;
  buf[1] = codec;
  buf.writeBigUInt64BE(BigInt(offset), 2);
  buf.writeUInt32BE(length, 10);
  let pos = BASE_HEADER;
  for (const h of hashes) {
    h.copy(buf, pos);
    pos += HASH_BYTES;
  }
  return { buf, pos };
}

function withPayload(
  kind: BlockKind,
  codec: number,
  offset: number,
  length: number,
  hashes: Buffer[],
  payload: Uint8Array,
): Buffer {
  const { buf, pos } = header(kind, codec, offset, length, hashes, payload.length);
  buf.set(payload, pos);
  return buf;
}

/** XOR of two equal-length blocks: mostly zeros when few bytes changed, so it compresses well. */
export function xorBlocks(a: Uint8Array, b: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** Parses a record; throws ProtocolError on any malformed or truncated input. Does not decompress. */
export function decodeRecord(buf: Buffer): ChunkRecord {
  if (buf.length < BASE_HEADER) throw new ProtocolError(`record truncated: ${buf.length} bytes`);
  const kind = buf[0]!;
  const codec = buf[1]!;
  const offBig = buf.readBigUInt64BE(2);
  if (offBig > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError('record offset beyond 2^53');
  const offset = Number(offBig);
  const length = buf.readUInt32BE(10);
  if (length === 0 || length > MAX_BLOCK_BYTES)
    throw new ProtocolError(`record length out of range: ${length}`);
  const needHashes = kind === BlockKind.Zero ? 0 : kind === BlockKind.Delta ? 2 : 1;
  if (kind > BlockKind.Patch) throw new ProtocolError(`unknown record kind ${kind}`);
  if (codec > 2) throw new ProtocolError(`unknown codec id ${codec}`);
  const payloadAt = BASE_HEADER + needHashes * HASH_BYTES;
  if (buf.length < payloadAt) throw new ProtocolError('record truncated inside its hashes');
  const hash = () => Buffer.from(buf.subarray(BASE_HEADER, BASE_HEADER + HASH_BYTES));
  switch (kind) {
    case BlockKind.Zero:
    case BlockKind.Known:
      if (buf.length !== payloadAt || codec !== 0)
        throw new ProtocolError('zero/known record carries a payload');
      return kind === BlockKind.Zero ? { kind, offset, length } : { kind, offset, length, hash: hash() };
    case BlockKind.Delta:
      if (length > 16 * 1024 * 1024) throw new ProtocolError('delta block too large');
      return {
        kind,
        offset,
        length,
        hash: hash(),
        baseHash: Buffer.from(buf.subarray(BASE_HEADER + HASH_BYTES, payloadAt)),
        codec: codec as CodecId,
        payload: buf.subarray(payloadAt),
      };
    case BlockKind.Patch:
      if (length > 16 * 1024 * 1024 || codec !== 0) throw new ProtocolError('bad patch record');
      return { kind, offset, length, hash: hash(), payload: buf.subarray(payloadAt) };
    default:
      if (length > 16 * 1024 * 1024) throw new ProtocolError('literal block too large');
      return {
        kind: BlockKind.Literal,
        offset,
        length,
        hash: hash(),
        codec: codec as CodecId,
        payload: buf.subarray(payloadAt),
      };
  }
}

/** Fetches a block the receiver holds by hash (verified by the caller of `materialize`). */
export type BlockResolver = (hash: Buffer, length: number) => Buffer | undefined;
/** Fetches the base of a patch record: the receiver's old bytes lined up with the chunk at `offset`. */
export type PatchBaseResolver = (offset: number, length: number) => Buffer | undefined;

/** A patch record: header, chunk hash, then the patch body (bitmap and changed sub-blocks). */
export function patchRecord(offset: number, length: number, hash: Buffer, body: Uint8Array): Buffer {
  return withPayload(BlockKind.Patch, 0, offset, length, [hash], body);
}

/**
 * Rebuilds a record's bytes and verifies them against its hash. Known and delta records need the
 * receiver's blocks through `resolve`. Any mismatch or missing base is an IntegrityError: a block
 * is never written unverified.
 */
export function materialize(rec: ChunkRecord, resolve: BlockResolver, patchBase?: PatchBaseResolver): Buffer {
  let out: Buffer;
  switch (rec.kind) {
    case BlockKind.Zero:
      return Buffer.alloc(rec.length);
    case BlockKind.Known: {
      const b = resolve(rec.hash, rec.length);
      if (!b)
        throw new IntegrityError(
          `known block ${rec.hash.toString('hex').slice(0, 16)} not held by the receiver`,
        );
      out = b;
      break;
    }
    case BlockKind.Delta: {
      const base = resolve(rec.baseHash, rec.length);
      if (!base || base.length !== rec.length) {
        throw new IntegrityError(
          `delta base ${rec.baseHash.toString('hex').slice(0, 16)} not held by the receiver`,
        );
      }
      out = xorBlocks(decompressBlock(rec.codec, rec.payload, rec.length), base);
      break;
    }
    case BlockKind.Literal:
      out = decompressBlock(rec.codec, rec.payload, rec.length);
      break;
    case BlockKind.Patch: {
      const base = patchBase?.(rec.offset, rec.length);
      if (!base) throw new IntegrityError(`patch at offset ${rec.offset} has no base at the receiver`);
      try {
        out = applyPatchBody(rec.payload, rec.length, base);
      } catch (err) {
        throw new IntegrityError(`patch at offset ${rec.offset} is malformed`, { cause: err });
      }
      break;
    }
  }
  if (out.length !== rec.length || !hashBlock(out).equals(rec.hash)) {
    throw new IntegrityError(`block at offset ${rec.offset} fails its hash check`);
  }
  return out;
}

// File records (file transfers only; byte streams never send them, `decodeRecord` refuses them).
// A bundle of a file transfer covers consecutive bytes, so each record's offset goes as a varint
// delta from the end of the previous record in the bundle (the first: from 0), and each chunk is
// verified by the first FILE_HASH_BYTES of its SHA-256 (2^-128 for a wrong chunk to pass), with
// the whole file checked by its full SHA-256 at the end.
//   zero     kind 7 | offset delta | length
//   literal  kind 8 | offset delta | hash prefix | bytes (the length is the rest of the record)
//   patch    kind 9 | offset delta | hash prefix | the sub-blocks the receiver lacks; length, grid
//            phase and which sub-blocks come from its old bytes are what it answered to the
//            similarity query for the chunk at that offset
export const FileRecordKind = { Zero: 7, Literal: 8, Patch: 9 } as const;
export type FileRecordKind = (typeof FileRecordKind)[keyof typeof FileRecordKind];
export const FILE_HASH_BYTES = 16;

export interface FileRecord {
  readonly kind: FileRecordKind;
  readonly offset: number;
  /** Zero and literal records: the chunk length. Patch records: undefined (the query gave it). */
  readonly length: number | undefined;
  /** Literal and patch records. */
  readonly hash: Buffer | undefined;
  readonly payload: Buffer;
}

export function isFileRecord(rec: Uint8Array): boolean {
  return rec.length > 0 && rec[0]! >= FileRecordKind.Zero && rec[0]! <= FileRecordKind.Patch;
}

/** Encodes a file record; `prevEnd` is the end of the previous record in the bundle (0 for the first). */
export function encodeFileRecord(
  kind: FileRecordKind,
  offset: number,
  prevEnd: number,
  opts: { length?: number; hash?: Buffer; payload?: Uint8Array },
): Buffer {
  if (offset < prevEnd) throw new RangeError('file records go in offset order');
  const delta = offset - prevEnd;
  if (kind === FileRecordKind.Zero) {
    const len = opts.length ?? 0;
    const out = Buffer.allocUnsafe(1 + varintSize(delta) + varintSize(len));
    out[0] = kind;
    writeVarint(out, writeVarint(out, 1, delta), len);
    return out;
  }
  const hash = opts.hash;
  if (!hash || hash.length < FILE_HASH_BYTES) throw new RangeError('file record: hash too short');
  const payload = opts.payload ?? new Uint8Array(0);
  const out = Buffer.allocUnsafe(1 + varintSize(delta) + FILE_HASH_BYTES + payload.length);
  out[0] = kind;
  let p = writeVarint(out, 1, delta);
  p += hash.copy(out, p, 0, FILE_HASH_BYTES);
  out.set(payload, p);
  return out;
}

/** Parses a file record; `prevEnd` as for encoding. Throws ProtocolError on anything malformed. */
export function decodeFileRecord(buf: Buffer, prevEnd: number): FileRecord {
  const kind = buf[0];
  if (kind === undefined || kind < FileRecordKind.Zero || kind > FileRecordKind.Patch)
    throw new ProtocolError(`not a file record (kind ${String(kind)})`);
  const what = 'file record';
  const [delta, p] = readVarint(buf, 1, what);
  const offset = prevEnd + delta;
  if (!Number.isSafeInteger(offset)) throw new ProtocolError('file record offset beyond 2^53');
  if (kind === FileRecordKind.Zero) {
    const [length, q] = readVarint(buf, p, what);
    if (q !== buf.length) throw new ProtocolError('zero file record: trailing bytes');
    if (length === 0 || length > MAX_BLOCK_BYTES)
      throw new ProtocolError(`record length out of range: ${length}`);
    return { kind, offset, length, hash: undefined, payload: buf.subarray(q) };
  }
  if (p + FILE_HASH_BYTES > buf.length) throw new ProtocolError('file record truncated inside its hash');
  const hash = Buffer.from(buf.subarray(p, p + FILE_HASH_BYTES));
  const payload = buf.subarray(p + FILE_HASH_BYTES);
  if (kind === FileRecordKind.Literal) {
    if (payload.length === 0 || payload.length > 16 * 1024 * 1024)
      throw new ProtocolError(`literal file record length out of range: ${payload.length}`);
    return { kind, offset, length: payload.length, hash, payload };
  }
  return { kind: FileRecordKind.Patch, offset, length: undefined, hash, payload };
}

/** Checks a rebuilt chunk against a file record's hash prefix; returns its full SHA-256. */
export function verifyFileChunk(data: Buffer, prefix: Buffer, offset: number): Buffer {
  const h = hashBlock(data);
  if (!h.subarray(0, FILE_HASH_BYTES).equals(prefix.subarray(0, FILE_HASH_BYTES)))
    throw new IntegrityError(`block at offset ${offset} fails its hash check`);
  return h;
}
