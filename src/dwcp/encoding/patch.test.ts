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
  SUB_HASH_BYTES,
  applyPatchBody,
  applySubBlocks,
  bitmapCount,
  decodeSimilarityQuery,
  matchCheck,
  encodePatchBody,
  encodeSimilarityQuery,
  matchSubBlocks,
  subBlockCount,
  subBlockHashes,
  unmatchedSubBlocks,
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
        ordinal: 900,
        anchor: 899,
        anchorOffset: 100000,
        phase: 300,
        sub: subBlockHashes(a, 300),
      },
      {
        offset: 7,
        length: b.length,
        ordinal: 1 << 30,
        anchor: 12,
        anchorOffset: 0,
        phase: 0,
        sub: subBlockHashes(b),
      },
    ];
    const back = decodeSimilarityQuery(encodeSimilarityQuery(entries));
    assert.equal(back.length, 2);
    for (let i = 0; i < 2; i++) {
      assert.equal(back[i]!.offset, entries[i]!.offset);
      assert.equal(back[i]!.length, entries[i]!.length);
      assert.equal(back[i]!.anchorOffset, entries[i]!.anchorOffset);
      assert.equal(back[i]!.phase, entries[i]!.phase);
      assert.equal(back[i]!.ordinal, entries[i]!.ordinal);
      assert.equal(back[i]!.anchor, entries[i]!.anchor);
      assert.ok(back[i]!.sub.equals(entries[i]!.sub));
    }
  });

  it('sends only the changed sub-blocks of a block rewritten in place', () => {
    const base = randomBytes(12 * 1024 + 100);
    const chunk = Buffer.from(base);
    randomBytes(4096).copy(chunk, 5000); // a 4 KiB block rewritten across sub-block edges
    const bits = matchSubBlocks(subBlockHashes(chunk), chunk.length, base);
    const n = subBlockCount(chunk.length);
    // The sub-blocks overlapping [5000, 9096) differ; the others match.
    const straddled = Math.floor((9096 - 1) / SUB_BLOCK) - Math.floor(5000 / SUB_BLOCK) + 1;
    assert.equal(bitmapCount(bits, n), n - straddled);
    const body = encodePatchBody(chunk, bits);
    assert.ok(body.length <= straddled * SUB_BLOCK + 2 + Math.ceil(n / 8), `patch body ${body.length} B`);
    assert.ok(applyPatchBody(body, chunk.length, base).equals(chunk));
  });

  it('a grid phased to the base costs exactly the rewritten 4 KiB block', () => {
    // The chunk starts 300 bytes past a sub-block multiple of the old file; the rewrite is aligned
    // there (as a filesystem block is), i.e. at chunk position 4096 - 300.
    const base = randomBytes(16 * 1024);
    const chunk = Buffer.from(base);
    randomBytes(4096).copy(chunk, 4096 - 300);
    const phase = 300;
    const n = subBlockCount(chunk.length, phase);
    assert.equal(n, 1 + Math.ceil((chunk.length - (SUB_BLOCK - phase)) / SUB_BLOCK));
    const bits = matchSubBlocks(subBlockHashes(chunk, phase), chunk.length, base, phase);
    assert.equal(bitmapCount(bits, n), n - 4096 / SUB_BLOCK);
    const body = encodePatchBody(chunk, bits, phase);
    assert.equal(body.length, 2 + Math.ceil(n / 8) + 4096);
    assert.ok(applyPatchBody(body, chunk.length, base).equals(chunk));
    // Unphased, the same rewrite straddles one sub-block more.
    const bits0 = matchSubBlocks(subBlockHashes(chunk), chunk.length, base);
    assert.equal(
      subBlockCount(chunk.length) - bitmapCount(bits0, subBlockCount(chunk.length)),
      4096 / SUB_BLOCK + 1,
    );
  });

  it('the match check agrees on true matches and catches a false one', () => {
    const base = randomBytes(10_000);
    const chunk = Buffer.from(base);
    randomBytes(3000).copy(chunk, 4000);
    const phase = 300;
    const bits = matchSubBlocks(subBlockHashes(chunk, phase), chunk.length, base, phase);
    assert.ok(bitmapCount(bits, subBlockCount(chunk.length, phase)) >= 2);
    assert.ok(
      matchCheck(base, chunk.length, bits, phase).equals(matchCheck(chunk, chunk.length, bits, phase)),
    );
    // A sub-block the receiver wrongly took for a match (as after a sub-hash collision).
    const wrong = Buffer.from(bits);
    wrong[0] = 0xff;
    wrong[1] = 0xff;
    assert.ok(
      !matchCheck(base, chunk.length, wrong, phase).equals(matchCheck(chunk, chunk.length, wrong, phase)),
    );
  });

  it('file patches: only the unmatched sub-blocks travel, and rebuild the chunk exactly', () => {
    const r = rng(77);
    for (let run = 0; run < 100; run++) {
      const base = randomBytes(2048 + r(20000));
      const chunk = edit(base, r);
      const phase = r(SUB_BLOCK);
      const bits = matchSubBlocks(subBlockHashes(chunk, phase), chunk.length, base, phase);
      const subs = unmatchedSubBlocks(chunk, bits, phase);
      assert.equal(subs.length, encodePatchBody(chunk, bits, phase).length - 2 - bits.length);
      assert.ok(applySubBlocks(subs, chunk.length, base, bits, phase).equals(chunk));
      if (subs.length > 0) {
        assert.throws(() => applySubBlocks(subs.subarray(1), chunk.length, base, bits, phase), ProtocolError);
        assert.throws(
          () => applySubBlocks(Buffer.concat([subs, Buffer.alloc(1)]), chunk.length, base, bits, phase),
          ProtocolError,
        );
      }
    }
    assert.throws(
      () => applySubBlocks(Buffer.alloc(0), 4096, Buffer.alloc(4096), Buffer.alloc(0), 0),
      ProtocolError,
    );
    assert.throws(
      () => applySubBlocks(Buffer.alloc(0), 4096, Buffer.alloc(4096), Buffer.from([3]), SUB_BLOCK),
      ProtocolError,
    );
  });

  it('rebuilds the chunk exactly for random edits, lengths and base lengths (property)', () => {
    const r = rng(42);
    for (let t = 0; t < 300; t++) {
      const len = 1 + r(20000);
      const base = randomBytes(len + r(2) * (r(3000) - 1500 > 0 ? r(1500) : 0));
      const chunk = edit(base.subarray(0, Math.min(base.length, len)), r);
      const full = chunk.length < len ? Buffer.concat([chunk, randomBytes(len - chunk.length)]) : chunk;
      const lined = base.subarray(0, r(2) ? base.length : Math.max(0, base.length - r(2000)));
      const phase = r(2) ? 0 : r(SUB_BLOCK);
      const bits = matchSubBlocks(subBlockHashes(full, phase), full.length, lined, phase);
      const rebuilt = applyPatchBody(encodePatchBody(full, bits, phase), full.length, lined);
      assert.ok(
        rebuilt.equals(full),
        `case ${t}: length ${full.length}, base ${lined.length}, phase ${phase}`,
      );
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
      {
        offset: 0,
        length: 4096,
        ordinal: 1,
        anchor: 0,
        anchorOffset: 0,
        phase: 0,
        sub: subBlockHashes(chunk),
      },
    ]);
    assert.throws(() => decodeSimilarityQuery(q.subarray(0, q.length - 1)), ProtocolError);
    assert.throws(() => decodeSimilarityQuery(q.subarray(0, 10)), ProtocolError);
    // Hand-built entries: offset delta 0, length (varint), ordinal delta 0, anchor delta 0, anchor
    // offset delta 0, phase.
    const entry = (len: number[], phase: number[]) => Buffer.from([0, ...len, 0, 0, 0, ...phase]);
    assert.throws(() => decodeSimilarityQuery(entry([0], [0])), ProtocolError); // zero length
    assert.throws(() => decodeSimilarityQuery(entry([0x80, 0x20], [0x80, SUB_BLOCK / 128])), ProtocolError); // phase = SUB_BLOCK
    assert.throws(
      () => decodeSimilarityQuery(entry([0x80, 0x20], [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1])),
      ProtocolError,
    ); // varint too long
    // A negative offset (zigzag 1 = -1 from 0), a negative ordinal, an anchor before ordinal 0.
    const ok = entry([0x80, 0x20], [0]);
    assert.equal(decodeSimilarityQuery(Buffer.concat([ok, Buffer.alloc(2 * SUB_HASH_BYTES)])).length, 1);
    for (const at of [0, 3, 4]) {
      const bad = Buffer.concat([ok, Buffer.alloc(2 * SUB_HASH_BYTES)]);
      bad[at] = 1;
      assert.throws(() => decodeSimilarityQuery(bad), ProtocolError);
    }
    const badBodyPhase = Buffer.from(body);
    badBodyPhase.writeUInt16BE(SUB_BLOCK, 0);
    assert.throws(() => applyPatchBody(badBodyPhase, chunk.length, base), ProtocolError);
    assert.throws(() => applyPatchBody(body.subarray(0, 1), chunk.length, base), ProtocolError);
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
