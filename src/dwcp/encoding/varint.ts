// LEB128 varints for the compact file-transfer encodings (similarity queries, held runs, file
// records): unsigned values below 2^53, signed ones zigzag-coded (|v| < 2^52). Pure.
import { ProtocolError } from '../../errors.js';

export function varintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** Writes `v` at `p`; returns the position after it. */
export function writeVarint(out: Buffer, p: number, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint out of range: ${v}`);
  while (v >= 128) {
    out[p++] = (v % 128) | 128;
    v = Math.floor(v / 128);
  }
  out[p++] = v;
  return p;
}

/** Reads a varint at `p`: [value, position after it]; `what` names the structure in errors. */
export function readVarint(buf: Uint8Array, p: number, what: string): [number, number] {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    if (p >= buf.length) throw new ProtocolError(`${what}: truncated`);
    const b = buf[p++]!;
    v += (b & 127) * mul;
    if ((b & 128) === 0) {
      if (!Number.isSafeInteger(v)) throw new ProtocolError(`${what}: value beyond 2^53`);
      return [v, p];
    }
    mul *= 128;
  }
  throw new ProtocolError(`${what}: varint too long`);
}

export function zigzag(v: number): number {
  if (!Number.isSafeInteger(v) || Math.abs(v) >= 2 ** 52) throw new RangeError(`delta out of range: ${v}`);
  return v < 0 ? -2 * v - 1 : 2 * v;
}

export function unzigzag(v: number): number {
  return v % 2 === 1 ? -(v + 1) / 2 : v / 2;
}

/** Encodes unsigned values as consecutive varints. */
export function encodeVarints(values: readonly number[]): Buffer {
  let size = 0;
  for (const v of values) size += varintSize(v);
  const out = Buffer.allocUnsafe(size);
  let p = 0;
  for (const v of values) p = writeVarint(out, p, v);
  return out;
}
