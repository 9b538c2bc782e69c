// Known runs: round trip, every malformed record rejected, and a chunk the receiver holds with
// other bytes (or not at all) failing the check instead of being written.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { IntegrityError, ProtocolError } from '../../errors.js';
import { hashBlock } from './hash.js';
import {
  decodeHeldRun,
  decodeKnownRun,
  encodeHeldRun,
  encodeKnownRun,
  isHeldRun,
  isKnownRun,
  materializeHeldRun,
  materializeKnownRun,
} from './known-run.js';
import { decodeRecord } from './record.js';

const held = new Map<string, Buffer>();
const chunks = [randomBytes(5000), randomBytes(8192), randomBytes(3)];
for (const c of chunks) held.set(hashBlock(c).toString('hex', 0, 16), c);
const resolve = (h: Buffer) => held.get(h.toString('hex', 0, 16));

describe('known runs', () => {
  it('round-trips and rebuilds consecutive held chunks with their full hashes', () => {
    const rec = encodeKnownRun(
      1 << 40,
      chunks.map((c) => ({ length: c.length, hash: hashBlock(c) })),
    );
    assert.ok(isKnownRun(rec));
    assert.equal(rec.length, 14 + 3 * 20);
    const run = decodeKnownRun(rec);
    assert.equal(run.offset, 1 << 40);
    assert.equal(run.length, 5000 + 8192 + 3);
    const parts = materializeKnownRun(run, resolve);
    assert.deepEqual(
      parts.map((p) => p.offset),
      [1 << 40, (1 << 40) + 5000, (1 << 40) + 13192],
    );
    for (let i = 0; i < 3; i++) {
      assert.ok(parts[i]!.data.equals(chunks[i]!));
      assert.ok(parts[i]!.hash.equals(hashBlock(chunks[i]!)));
    }
    // Byte streams never carry it: the generic record decoder refuses the kind.
    assert.throws(() => decodeRecord(rec), ProtocolError);
  });

  it('rejects malformed records', () => {
    const rec = encodeKnownRun(0, [{ length: 5000, hash: hashBlock(chunks[0]!) }]);
    assert.throws(() => decodeKnownRun(rec.subarray(0, rec.length - 1)), ProtocolError);
    assert.throws(() => decodeKnownRun(rec.subarray(0, 14)), ProtocolError);
    const badTotal = Buffer.from(rec);
    badTotal.writeUInt32BE(5001, 10);
    assert.throws(() => decodeKnownRun(badTotal), ProtocolError);
    const zeroPart = Buffer.from(rec);
    zeroPart.writeUInt32BE(0, 14);
    zeroPart.writeUInt32BE(0, 10);
    assert.throws(() => decodeKnownRun(zeroPart), ProtocolError);
    const badCodec = Buffer.from(rec);
    badCodec[1] = 1;
    assert.throws(() => decodeKnownRun(badCodec), ProtocolError);
  });

  it('fails on a chunk the receiver lacks or holds with other bytes', () => {
    const missing = decodeKnownRun(encodeKnownRun(0, [{ length: 10, hash: randomBytes(32) }]));
    assert.throws(() => materializeKnownRun(missing, resolve), IntegrityError);
    const c = chunks[1]!;
    const run = decodeKnownRun(encodeKnownRun(0, [{ length: c.length, hash: hashBlock(c) }]));
    const corrupted = Buffer.from(c);
    corrupted[100] = corrupted[100]! ^ 1;
    assert.throws(() => materializeKnownRun(run, () => corrupted), IntegrityError);
    assert.throws(() => materializeKnownRun(run, () => c.subarray(1)), IntegrityError);
  });

  it('held runs: a few bytes for any number of chunks named by ordinal, each verified', () => {
    const prefixes = new Map(chunks.map((c, i) => [1000 + i, hashBlock(c).subarray(0, 12)]));
    const rec = encodeHeldRun({ offset: 1 << 40, length: 5000 + 8192 + 3, first: 1000, count: 3 });
    assert.ok(isHeldRun(rec) && !isKnownRun(rec));
    assert.ok(rec.length <= 12, `${rec.length} bytes`);
    assert.throws(() => decodeRecord(rec), ProtocolError);
    const run = decodeHeldRun(rec);
    assert.deepEqual(run, { offset: 1 << 40, length: 13195, first: 1000, count: 3 });
    const resolve = (ord: number) => {
      const prefix = prefixes.get(ord);
      return prefix && { prefix, data: held.get(hashBlock(chunks[ord - 1000]!).toString('hex', 0, 16)) };
    };
    const parts = materializeHeldRun(run, resolve);
    assert.deepEqual(
      parts.map((p) => p.offset),
      [1 << 40, (1 << 40) + 5000, (1 << 40) + 13192],
    );
    for (let i = 0; i < 3; i++) assert.ok(parts[i]!.hash.equals(hashBlock(chunks[i]!)));
    // An ordinal never reported held, other bytes under the prefix, lengths that do not add up.
    assert.throws(() => materializeHeldRun({ ...run, first: 999 }, resolve), ProtocolError);
    assert.throws(
      () => materializeHeldRun(run, (o) => ({ prefix: prefixes.get(o)!, data: randomBytes(5000) })),
      IntegrityError,
    );
    assert.throws(() => materializeHeldRun({ ...run, length: 13194 }, resolve), IntegrityError);
    assert.throws(() => materializeHeldRun({ ...run, length: 13196 }, resolve), IntegrityError);
    assert.throws(
      () => materializeHeldRun(run, (o) => ({ prefix: prefixes.get(o)!, data: undefined })),
      IntegrityError,
    );
    // Malformed records.
    assert.throws(() => decodeHeldRun(rec.subarray(0, rec.length - 1)), ProtocolError);
    assert.throws(() => decodeHeldRun(Buffer.concat([rec, Buffer.from([0])])), ProtocolError);
    assert.throws(() => decodeHeldRun(encodeHeldRunRaw(0, 10, 0, 0)), ProtocolError);
    assert.throws(() => decodeHeldRun(encodeHeldRunRaw(0, 0, 0, 1)), ProtocolError);
  });
});

/** A held-run record with any field values (the encoder refuses bad ones). */
function encodeHeldRunRaw(...v: number[]): Buffer {
  return Buffer.from([6, ...v]);
}
