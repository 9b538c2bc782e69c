// Chunk identity for HDE: SHA-256 of the raw bytes (strong: a chunk is reused from any file the
// receiver holds on the strength of this hash alone) and the zero-block test.
import { hash } from 'node:crypto';

export const HASH_BYTES = 32;

/** SHA-256 of a block. */
export function hashBlock(data: Uint8Array): Buffer {
  // crypto.hash skips the Hash object: cheaper per call on small blocks.
  return hash('sha256', data, 'buffer');
}

const ZERO_PAGE = Buffer.alloc(64 * 1024);

/** True when every byte of `data` is zero (checked in 64 KiB strides with Buffer.equals). */
export function isZeroBlock(data: Uint8Array): boolean {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.length);
  for (let off = 0; off < buf.length; off += ZERO_PAGE.length) {
    const n = Math.min(ZERO_PAGE.length, buf.length - off);
    if (!buf.subarray(off, off + n).equals(ZERO_PAGE.subarray(0, n))) return false;
  }
  return true;
}

/** Hex key of a hash, for maps. */
export function hashKey(hash: Uint8Array): string {
  return Buffer.from(hash.buffer, hash.byteOffset, hash.length).toString('hex');
}
