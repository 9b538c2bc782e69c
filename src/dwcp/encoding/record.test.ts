// HDE record tests: round trips on random and structured blocks, page encoder/decoder mirroring,
// corruption rejection, and the compact records of file transfers.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import {
  BlockKind,
  FILE_HASH_BYTES,
  FileRecordKind,
  decodeFileRecord,
  decodeRecord,
  encodeBlock,
  encodeFileRecord,
  isFileRecord,
  materialize,
  verifyFileChunk,
} from './record.js';
import { hashBlock, hashKey } from './hash.js';
import { PageDecoder, PageEncoder } from './pages.js';
import { IntegrityError, ProtocolError } from '../../errors.js';
import type { CodecChoice } from './codec.js';

const codecs: CodecChoice[] = [
  { codec: 'zstd', level: 3 },
  { codec: 'zstd', level: -1 },
  { codec: 'lz4', level: 0 },
  { codec: 'none', level: 0 },
];

/** Blocks with structure: zeros, repeats, text, random, sparse edits. */
const blockArb = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 9000 }).map((a) => Buffer.from(a)),
  fc.integer({ min: 1, max: 9000 }).map((n) => Buffer.alloc(n)),
  fc
    .tuple(fc.string({ minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 300 }))
    .map(([s, n]) => Buffer.from(s.repeat(n) || 'x')),
  fc.tuple(fc.integer({ min: 1, max: 9000 }), fc.array(fc.nat(), { maxLength: 10 })).map(([n, pos]) => {
    const b = Buffer.alloc(n);
    for (const p of pos) b[p % n] = (p % 255) + 1;
    return b;
  }),
);

describe('HDE records', () => {
  it('round-trips literal/zero/known blocks under every codec (property)', () => {
    fc.assert(
      fc.property(
        blockArb,
        fc.constantFrom(...codecs),
        fc.boolean(),
        fc.nat(),
        (data, codec, known, offset) => {
          const store = new Map<string, Buffer>();
          if (known) store.set(hashKey(hashBlock(data)), data);
          const enc = encodeBlock(offset, data, { receiverHas: (h) => store.has(hashKey(h)), codec });
          const rec = decodeRecord(enc.bytes);
          assert.equal(rec.offset, offset);
          const out = materialize(rec, (h) => store.get(hashKey(h)));
          assert.ok(out.equals(data));
          if (data.every((b) => b === 0)) assert.equal(enc.kind, BlockKind.Zero);
          else if (known) assert.equal(enc.kind, BlockKind.Known);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('uses a small delta against a similar base block', () => {
    const base = randomBytes(4096);
    const next = Buffer.from(base);
    next.write('changed', 100);
    const baseHash = hashBlock(base);
    const enc = encodeBlock(0, next, {
      receiverHas: () => false,
      base: { hash: baseHash, data: base },
      codec: codecs[0]!,
    });
    assert.equal(enc.kind, BlockKind.Delta);
    assert.ok(enc.bytes.length < 200, `delta record is ${enc.bytes.length} bytes`);
    const out = materialize(decodeRecord(enc.bytes), (h) => (h.equals(baseHash) ? base : undefined));
    assert.ok(out.equals(next));
    assert.throws(() => materialize(decodeRecord(enc.bytes), () => undefined), IntegrityError);
  });

  it('rejects every truncation and any corrupted payload byte of a literal record', () => {
    const data = Buffer.from('some text that compresses '.repeat(50));
    const enc = encodeBlock(4096, data, { receiverHas: () => false, codec: codecs[0]! });
    for (let cut = 0; cut < enc.bytes.length; cut++) {
      assert.throws(
        () => materialize(decodeRecord(enc.bytes.subarray(0, cut)), () => undefined),
        (e) => e instanceof ProtocolError || e instanceof IntegrityError,
      );
    }
    for (let i = 14; i < enc.bytes.length; i++) {
      const bad = Buffer.from(enc.bytes);
      bad[i] = bad[i]! ^ 0x01;
      assert.throws(
        () => materialize(decodeRecord(bad), () => undefined),
        (e) => e instanceof ProtocolError || e instanceof IntegrityError,
        `byte ${i}`,
      );
    }
  });

  it('rejects malformed headers', () => {
    const enc = encodeBlock(0, randomBytes(100), { receiverHas: () => false, codec: codecs[3]! }).bytes;
    const cases: Buffer[] = [
      Buffer.alloc(0),
      Buffer.alloc(13),
      Buffer.from(enc).fill(9, 0, 1),
      Buffer.from(enc).fill(7, 1, 2),
    ];
    const zeroLen = Buffer.from(enc);
    zeroLen.writeUInt32BE(0, 10);
    cases.push(zeroLen);
    const zeroWithPayload = Buffer.concat([
      encodeBlock(0, Buffer.alloc(10), { receiverHas: () => false, codec: codecs[3]! }).bytes,
      Buffer.from([1]),
    ]);
    cases.push(zeroWithPayload);
    for (const c of cases) assert.throws(() => decodeRecord(c), ProtocolError);
  });
});

describe('page encoding', () => {
  it('decoder reproduces every page over rounds of dirtying (property), with delta and known pages', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.array(fc.tuple(fc.nat({ max: 15 }), fc.nat({ max: 4095 }), fc.nat({ max: 3 })), {
            maxLength: 20,
          }),
          { minLength: 1, maxLength: 5 },
        ),
        fc.constantFrom(...codecs),
        (rounds, codec) => {
          const pages = Array.from({ length: 16 }, (_, i) =>
            i % 4 === 0 ? Buffer.alloc(4096) : randomBytes(4096),
          );
          const enc = new PageEncoder({ codec, maxCachedPages: 8 });
          const dec = new PageDecoder({ maxCachedPages: 8 });
          const seen = new Set<string>();
          const sendAll = () => {
            pages.forEach((p, i) => {
              const { bytes, cls } = enc.encodePage(i, p);
              seen.add(cls);
              const out = dec.decode(bytes);
              assert.equal(out.index, i);
              assert.ok(out.data.equals(p));
            });
          };
          sendAll();
          for (const edits of rounds) {
            for (const [page, pos, what] of edits) {
              if (what === 0) pages[page] = Buffer.alloc(4096);
              else if (what === 1) pages[page] = Buffer.from(pages[(page + 1) % 16]!);
              else pages[page]![pos] = pages[page]![pos]! ^ 0x5a;
            }
            sendAll();
          }
          assert.ok(seen.has('zero'));
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('bundles', () => {
  it('round-trips records under every codec and rejects truncation and corruption', async () => {
    const { encodeBundle, decodeBundle } = await import('./bundle.js');
    const recs = [randomBytes(100), Buffer.from('text '.repeat(500)), Buffer.alloc(3000)];
    for (const codec of codecs) {
      const b = encodeBundle(recs, codec);
      assert.deepEqual(
        decodeBundle(b).map((r) => r.toString('hex')),
        recs.map((r) => r.toString('hex')),
      );
      for (const cut of [0, 4, 5, b.length - 1]) {
        assert.throws(
          () => decodeBundle(b.subarray(0, cut)),
          (e) => e instanceof ProtocolError || e instanceof IntegrityError,
        );
      }
      const bad = Buffer.from(b);
      bad.writeUInt32BE(bad.readUInt32BE(1) + 1, 1);
      assert.throws(
        () => decodeBundle(bad),
        (e) => e instanceof ProtocolError || e instanceof IntegrityError,
      );
    }
  });
});

describe('file records', () => {
  it('round-trip with offsets relative to the previous record, a few bytes of header each', () => {
    const chunk = randomBytes(5000);
    const h = hashBlock(chunk);
    const zero = encodeFileRecord(FileRecordKind.Zero, 1 << 40, 1 << 40, { length: 65536 });
    assert.equal(zero.length, 1 + 1 + 3);
    assert.deepEqual(decodeFileRecord(zero, 1 << 40), {
      kind: FileRecordKind.Zero,
      offset: 1 << 40,
      length: 65536,
      hash: undefined,
      payload: Buffer.alloc(0),
    });
    const lit = encodeFileRecord(FileRecordKind.Literal, 70_000, 65_536, { hash: h, payload: chunk });
    assert.equal(lit.length, 1 + 2 + FILE_HASH_BYTES + chunk.length);
    const r = decodeFileRecord(lit, 65_536);
    assert.equal(r.offset, 70_000);
    assert.equal(r.length, 5000);
    assert.ok(r.payload.equals(chunk));
    assert.ok(verifyFileChunk(r.payload, r.hash!, r.offset).equals(h));
    const patch = encodeFileRecord(FileRecordKind.Patch, 0, 0, { hash: h, payload: chunk.subarray(0, 10) });
    const p = decodeFileRecord(patch, 0);
    assert.equal(p.kind, FileRecordKind.Patch);
    assert.equal(p.length, undefined);
    assert.ok(p.payload.equals(chunk.subarray(0, 10)));
    // Byte streams never carry them: the generic record decoder refuses the kinds.
    for (const rec of [zero, lit, patch]) {
      assert.ok(isFileRecord(rec));
      assert.throws(() => decodeRecord(rec), ProtocolError);
    }
    assert.throws(
      () => encodeFileRecord(FileRecordKind.Literal, 5, 6, { hash: h, payload: chunk }),
      RangeError,
    );
  });

  it('rejects malformed records and chunks that fail their hash', () => {
    const chunk = randomBytes(3000);
    const lit = encodeFileRecord(FileRecordKind.Literal, 0, 0, { hash: hashBlock(chunk), payload: chunk });
    assert.throws(() => decodeFileRecord(lit.subarray(0, 1 + 1 + FILE_HASH_BYTES), 0), ProtocolError);
    assert.throws(() => decodeFileRecord(lit.subarray(0, 10), 0), ProtocolError);
    assert.throws(() => decodeFileRecord(Buffer.from([7, 0, 0]), 0), ProtocolError); // zero length
    assert.throws(() => decodeFileRecord(Buffer.from([7, 0, 1, 0]), 0), ProtocolError); // trailing byte
    assert.throws(() => decodeFileRecord(Buffer.from([3, 0, 1]), 0), ProtocolError); // not a file record
    const r = decodeFileRecord(lit, 0);
    const flipped = Buffer.from(r.payload);
    flipped[7] = flipped[7]! ^ 1;
    assert.throws(() => verifyFileChunk(flipped, r.hash!, 0), IntegrityError);
  });
});
