// Sub-chunk patches: query round trip, matching against a lined-up base, rebuild identical to the
// chunk for any edits (property test), malformed bodies and queries rejected, and a patch record
// whose base is wrong failing its hash check instead of producing wrong bytes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ProtocolError, IntegrityError } from '../../errors.js';
import { hashBlock } from './hash.js';
import {
  SUB_BLOCK,
  applyPatchBody,
  bitmapCount,
  decodeSimilarityQuery,
  encodePatchBody,
  encodeSimilarityQuery,
  matchSubBlocks,
  subBlockCount,
  subBlockHashes,
} from './patch.js';
import { decodeRecord, materialize, patchRecord } from './record.js';

/** Deterministic xorshift for reproducible property runs. */
function rng(seed: number) {
  let x = seed | 1;
  return (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

function edit(base: Buffer, r: (n: number) => number): Buffer {
  const out = Buffer.from(base);
  const edits = r(4);
  for (let e = 0; e < edits; e++) {
    const at = r(out.length);
    const len = Math.min(out.length - at, 1 + r(3000));
    randomBytes(len).copy(out, at);
  }
  return out;
}

describe('HDE patches', () => {
  it('round-trips a similarity query', () => {
    const a = randomBytes(9000);
    const b = randomBytes(1500);
    const entries = [
      {
        offset: 123456,
        length: a.length,
        anchor: randomBytes(32),
        anchorOffset: 100000,
        sub: subBlockHashes(a),
      },
      { offset: 7, length: b.length, anchor: randomBytes(32), anchorOffset: 0, sub: subBlockHashes(b) },
    ];
    const back = decodeSimilarityQuery(encodeSimilarityQuery(entries));
    assert.equal(back.length, 2);
    for (let i = 0; i < 2; i++) {
      assert.equal(back[i]!.offset, entries[i]!.offset);
      assert.equal(back[i]!.length, entries[i]!.length);
      assert.equal(back[i]!.anchorOffset, entries[i]!.anchorOffset);
      assert.ok(back[i]!.anchor.equals(entries[i]!.anchor.subarray(0, 16)));
      assert.ok(back[i]!.sub.equals(entries[i]!.sub));
    }
  });

  it('sends only the changed sub-blocks of a block rewritten in place', () => {
    const base = randomBytes(12 * 1024 + 100);
    const chunk = Buffer.from(base);
    randomBytes(4096).copy(chunk, 5000); // a 4 KiB block rewritten across sub-block edges
    const bits = matchSubBlocks(subBlockHashes(chunk), chunk.length, base);
    const n = subBlockCount(chunk.length);
    // Sub-blocks 9..17 overlap [5000, 9096); the other 17 match.
    assert.equal(bitmapCount(bits, n), n - 9);
    const body = encodePatchBody(chunk, bits);
    assert.ok(body.length <= 9 * SUB_BLOCK + 4, `patch body ${body.length} B`);
    assert.ok(applyPatchBody(body, chunk.length, base).equals(chunk));
  });

  it('rebuilds the chunk exactly for random edits, lengths and base lengths (property)', () => {
    const r = rng(42);
    for (let t = 0; t < 300; t++) {
      const len = 1 + r(20000);
      const base = randomBytes(len + r(2) * (r(3000) - 1500 > 0 ? r(1500) : 0));
      const chunk = edit(base.subarray(0, Math.min(base.length, len)), r);
      const full = chunk.length < len ? Buffer.concat([chunk, randomBytes(len - chunk.length)]) : chunk;
      const lined = base.subarray(0, r(2) ? base.length : Math.max(0, base.length - r(2000)));
      const bits = matchSubBlocks(subBlockHashes(full), full.length, lined);
      const rebuilt = applyPatchBody(encodePatchBody(full, bits), full.length, lined);
      assert.ok(rebuilt.equals(full), `case ${t}: length ${full.length}, base ${lined.length}`);
    }
  });

  it('rejects malformed patch bodies and similarity queries', () => {
    const base = randomBytes(4096);
    const chunk = Buffer.from(base);
    chunk[100] = chunk[100]! ^ 1;
    const bits = matchSubBlocks(subBlockHashes(chunk), chunk.length, base);
    const body = encodePatchBody(chunk, bits);
    assert.throws(() => applyPatchBody(body.subarray(0, body.length - 1), chunk.length, base), ProtocolError);
    assert.throws(
      () => applyPatchBody(Buffer.concat([body, Buffer.from([0])]), chunk.length, base),
      ProtocolError,
    );
    assert.throws(() => applyPatchBody(body, chunk.length, base.subarray(0, 2000)), ProtocolError);
    const q = encodeSimilarityQuery([
      { offset: 0, length: 4096, anchor: randomBytes(16), anchorOffset: 0, sub: subBlockHashes(chunk) },
    ]);
    assert.throws(() => decodeSimilarityQuery(q.subarray(0, q.length - 1)), ProtocolError);
    assert.throws(() => decodeSimilarityQuery(q.subarray(0, 10)), ProtocolError);
    const zeroLen = Buffer.from(q);
    zeroLen.writeUInt32BE(0, 8);
    assert.throws(() => decodeSimilarityQuery(zeroLen), ProtocolError);
  });

  it('a patch record over the wrong base fails its hash check', () => {
    const base = randomBytes(8192);
    const chunk = Buffer.from(base);
    randomBytes(700).copy(chunk, 3000);
    const bits = matchSubBlocks(subBlockHashes(chunk), chunk.length, base);
    const rec = decodeRecord(
      patchRecord(65536, chunk.length, hashBlock(chunk), encodePatchBody(chunk, bits)),
    );
    assert.ok(
      materialize(
        rec,
        () => undefined,
        () => base,
      ).equals(chunk),
    );
    const other = Buffer.from(base);
    other[0] = other[0]! ^ 0xff;
    assert.throws(
      () =>
        materialize(
          rec,
          () => undefined,
          () => other,
        ),
      (e: unknown) => e instanceof IntegrityError,
    );
    assert.throws(
      () =>
        materialize(
          rec,
          () => undefined,
          () => undefined,
        ),
      (e: unknown) => e instanceof IntegrityError,
    );
  });
});
