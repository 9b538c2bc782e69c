// Block compression for HDE: zstd (zstd-napi) or lz4 (lz4-napi) or none, and the policy that picks
// codec and level from the mode profile and from whether the link or the CPU is the bottleneck.
import { compress as zstdCompress, decompress as zstdDecompress } from 'zstd-napi';
import { compressSync as lz4Compress, uncompressSync as lz4Uncompress } from 'lz4-napi';
import { IntegrityError, ProtocolError } from '../../errors.js';

/** Codec ids as they appear on the wire. */
export const CodecId = { None: 0, Lz4: 1, Zstd: 2 } as const;
export type CodecId = (typeof CodecId)[keyof typeof CodecId];

export type CodecName = 'none' | 'lz4' | 'zstd';

export interface CodecChoice {
  readonly codec: CodecName;
  /** zstd level (negative: fast modes); ignored by lz4 and none. */
  readonly level: number;
}

export function codecId(name: CodecName): CodecId {
  switch (name) {
    case 'none':
      return CodecId.None;
    case 'lz4':
      return CodecId.Lz4;
    case 'zstd':
      return CodecId.Zstd;
  }
}

/**
 * Compresses `raw` with the chosen codec. Returns the codec actually used: `none` when compression
 * would not shrink the block (incompressible data goes as is, costing no decode CPU).
 */
export function compressBlock(raw: Uint8Array, choice: CodecChoice): { codec: CodecId; data: Uint8Array } {
  if (choice.codec === 'none' || raw.length < 64) return { codec: CodecId.None, data: raw };
  const data =
    choice.codec === 'zstd'
      ? zstdCompress(raw, { compressionLevel: choice.level })
      : lz4Compress(Buffer.from(raw.buffer, raw.byteOffset, raw.length));
  if (data.length >= raw.length) return { codec: CodecId.None, data: raw };
  return { codec: codecId(choice.codec), data };
}

/** Inverse of compressBlock; the result must have exactly `rawLength` bytes or it is an integrity error. */
export function decompressBlock(codec: number, data: Uint8Array, rawLength: number): Buffer {
  let out: Buffer;
  try {
    switch (codec) {
      case CodecId.None:
        out = Buffer.from(data.buffer, data.byteOffset, data.length);
        break;
      case CodecId.Zstd:
        out = zstdDecompress(data);
        break;
      case CodecId.Lz4:
        out = lz4Uncompress(data);
        break;
      default:
        throw new ProtocolError(`unknown codec id ${codec}`);
    }
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new IntegrityError('block does not decompress', { cause: err });
  }
  if (out.length !== rawLength) {
    throw new IntegrityError(`block decompressed to ${out.length} bytes, expected ${rawLength}`);
  }
  return out;
}

/** Below this raw/compressed ratio the data counts as incompressible. */
export const INCOMPRESSIBLE_RATIO = 1.03;

export interface CodecPolicyInput {
  /** The mode profile's codec and level (config `dwcp.profiles.<mode>`). */
  readonly profile: CodecChoice;
  /** Measured wire goodput, bytes/s (undefined before the first measurement). */
  readonly linkBytesPerSec?: number | undefined;
  /** Measured compressor throughput on this host at the current choice, raw bytes/s. */
  readonly compressBytesPerSec?: number | undefined;
  /** Observed compression ratio (raw/compressed) at the current choice. */
  readonly ratio?: number | undefined;
}

/**
 * Picks the codec and level for the next blocks. Compression pays only while the link is the
 * bottleneck: when the compressor's output rate (compressBytesPerSec / ratio) cannot keep the link
 * busy, step down (zstd level → 1 → lz4 → none); when the link is much slower than the compressor,
 * step up to a stronger zstd level (at most 9). Pure: the caller measures.
 */
export function chooseCodec(input: CodecPolicyInput): CodecChoice {
  const { profile, linkBytesPerSec, compressBytesPerSec } = input;
  if (profile.codec === 'none' || linkBytesPerSec === undefined || compressBytesPerSec === undefined) {
    return profile;
  }
  // Incompressible data (random, already compressed): compressing costs CPU for nothing. lz4 still
  // runs (it gives up on such data at GB/s) so the ratio keeps being measured and a compressible
  // stretch brings the profile's codec back.
  if (input.ratio !== undefined && input.ratio < INCOMPRESSIBLE_RATIO) return { codec: 'lz4', level: 0 };
  // The effective rate at which raw bytes can leave: min(CPU, link * ratio).
  const ratio = Math.max(1, input.ratio ?? 1);
  const cpuBound = compressBytesPerSec < linkBytesPerSec * ratio;
  if (cpuBound) {
    if (profile.codec === 'zstd' && profile.level > 1) return { codec: 'zstd', level: 1 };
    if (profile.codec === 'zstd') return { codec: 'lz4', level: 0 };
    return { codec: 'none', level: 0 };
  }
  // Link-bound by a wide margin (CPU 8× faster than the link can carry): compress harder.
  if (profile.codec === 'zstd' && compressBytesPerSec > 8 * linkBytesPerSec * ratio) {
    return { codec: 'zstd', level: Math.min(9, Math.max(profile.level, 3) + 3) };
  }
  return profile;
}
