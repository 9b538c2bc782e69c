// Known runs: round trip, every malformed record rejected, and a chunk the receiver holds with
// other bytes (or not at all) failing the check instead of being written.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { IntegrityError, ProtocolError } from '../../errors.js';
import { hashBlock } from './hash.js';
import { decodeKnownRun, encodeKnownRun, isKnownRun, materializeKnownRun } from './known-run.js';
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
});
