// Bundles: many HDE records compressed together as one Data payload (about 256 KiB raw), so the
// codec sees enough context (small blocks compress poorly alone) and the per-frame costs (GCM, CRC,
// syscalls) are paid once per bundle. Layout: codec u8 | raw length u32 | body, where the raw body
// is a sequence of (record length u32, record). Pure.
import { IntegrityError, ProtocolError } from '../../errors.js';
import { compressBlock, decompressBlock, type CodecChoice } from './codec.js';

export const BUNDLE_TARGET_BYTES = 256 * 1024;
/** Largest raw bundle a receiver accepts (bounds its memory per frame). */
export const MAX_BUNDLE_RAW_BYTES = 16 * 1024 * 1024;

/** Compresses records into one bundle payload. */
export function encodeBundle(records: readonly Buffer[], codec: CodecChoice): Buffer {
  const body = packBundle(records);
  const c = compressBlock(body, codec);
  return sealBundle(body.length, c.codec, c.data);
}

/** The raw body of a bundle: (record length u32, record)… — to compress elsewhere (CompressPool). */
export function packBundle(records: readonly Buffer[]): Buffer {
  let raw = 0;
  for (const r of records) raw += 4 + r.length;
  if (raw > MAX_BUNDLE_RAW_BYTES) throw new ProtocolError(`bundle too large: ${raw} bytes`);
  // Its own ArrayBuffer (not the shared pool), so it can be moved to a worker thread.
  const body = Buffer.from(new ArrayBuffer(raw));
  let pos = 0;
  for (const r of records) {
    body.writeUInt32BE(r.length, pos);
    r.copy(body, pos + 4);
    pos += 4 + r.length;
  }
  return body;
}

/** The bundle payload from a body compressed with `codec` (raw length, codec id, data). */
export function sealBundle(rawLength: number, codec: number, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + data.length);
  out[0] = codec;
  out.writeUInt32BE(rawLength, 1);
  out.set(data, 5);
  return out;
}

/** Splits a bundle payload back into records; throws on any inconsistency. */
export function decodeBundle(payload: Buffer): Buffer[] {
  if (payload.length < 5) throw new ProtocolError(`bundle truncated: ${payload.length} bytes`);
  const raw = payload.readUInt32BE(1);
  if (raw > MAX_BUNDLE_RAW_BYTES) throw new ProtocolError(`bundle raw length ${raw} over the limit`);
  const body = decompressBlock(payload[0]!, payload.subarray(5), raw);
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < body.length) {
    if (pos + 4 > body.length) throw new IntegrityError('bundle ends inside a record length');
    const n = body.readUInt32BE(pos);
    if (n === 0 || pos + 4 + n > body.length) throw new IntegrityError('bundle record overruns the bundle');
    out.push(body.subarray(pos + 4, pos + 4 + n));
    pos += 4 + n;
  }
  return out;
}
