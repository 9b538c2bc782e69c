// Chunker tests: fixed pages and FastCDC cut the same way whatever the push sizes; inserts only move nearby boundaries.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { CdcChunker, FixedChunker, GEAR_FOR_TEST, type Chunk, type Chunker, DEFAULT_CDC } from './chunker.js';

function run(c: Chunker, data: Buffer, step: number): Chunk[] {
  const out: Chunk[] = [];
  for (let i = 0; i < data.length; i += step) out.push(...c.push(data.subarray(i, i + step)));
  out.push(...c.end());
  return out;
}

function checkCover(chunks: Chunk[], data: Buffer): void {
  let off = 0;
  for (const c of chunks) {
    assert.equal(c.offset, off);
    off += c.data.length;
  }
  assert.equal(off, data.length);
  assert.ok(Buffer.concat(chunks.map((c) => c.data)).equals(data));
}

describe('chunkers', () => {
  it('FixedChunker cuts 4 KiB pages with a short tail', () => {
    const data = randomBytes(4096 * 3 + 100);
    const chunks = run(new FixedChunker(), data, 1000);
    assert.deepEqual(
      chunks.map((c) => c.data.length),
      [4096, 4096, 4096, 100],
    );
    checkCover(chunks, data);
  });

  it('CdcChunker boundaries do not depend on push sizes (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 300_000 }),
        fc.integer({ min: 1, max: 70_000 }),
        fc.integer(),
        (len, step, seed) => {
          const data = Buffer.alloc(len);
          let x = seed | 1;
          for (let i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >>> 17;
            x ^= x << 5;
            data[i] = x & 0xff;
          }
          const whole = run(new CdcChunker(), data, Math.max(1, len));
          const split = run(new CdcChunker(), data, step);
          checkCover(split, data);
          assert.deepEqual(
            split.map((c) => c.data.length),
            whole.map((c) => c.data.length),
          );
          for (const c of whole.slice(0, -1)) {
            assert.ok(c.data.length >= DEFAULT_CDC.min && c.data.length <= DEFAULT_CDC.max);
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  it('an insert near the start leaves most later chunks unchanged', () => {
    const data = randomBytes(1 << 20);
    const edited = Buffer.concat([
      data.subarray(0, 5000),
      Buffer.from('inserted bytes'),
      data.subarray(5000),
    ]);
    const key = (c: Chunk) => c.data.toString('base64');
    const a = new Set(run(new CdcChunker(), data, 65536).map(key));
    const b = run(new CdcChunker(), edited, 65536);
    const shared = b.filter((c) => a.has(key(c))).length;
    assert.ok(shared >= b.length - 3, `only ${shared} of ${b.length} chunks survived an insert`);
  });

  it('cuts zero runs exactly as the byte-by-byte gear hash does (property, against a reference)', () => {
    // Reference: the plain FastCDC loop with no zero fast path.
    const ref = (buf: Uint8Array, p: typeof DEFAULT_CDC): number[] => {
      const bits = Math.round(Math.log2(p.avg));
      const mS = ((0xffffffff << (32 - bits - 2)) >>> 0) | 0;
      const mL = ((0xffffffff << (32 - Math.max(1, bits - 2))) >>> 0) | 0;
      const cuts: number[] = [];
      let start = 0;
      while (start < buf.length) {
        const avail = buf.length - start;
        if (avail <= p.min) {
          cuts.push(avail);
          break;
        }
        const limit = Math.min(avail, p.max);
        const normal = Math.min(limit, p.avg);
        let h = 0;
        let n = -1;
        for (let i = start + p.min; i < start + limit; i++) {
          h = ((h << 1) + GEAR_FOR_TEST[buf[i]!]!) | 0;
          if ((h & (i < start + normal ? mS : mL)) === 0) {
            n = i + 1 - start;
            break;
          }
        }
        if (n < 0) n = limit;
        cuts.push(n);
        start += n;
      }
      return cuts;
    };
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 90_000 })), { minLength: 1, maxLength: 8 }),
        fc.constantFrom(
          DEFAULT_CDC,
          { min: 64, avg: 256, max: 1024 },
          { min: 2048, avg: 8192, max: 8192 },
          // Masks of 1-3 bits, where this gear table does cut inside zero runs.
          { min: 16, avg: 32, max: 256 },
          { min: 4, avg: 8, max: 64 },
        ),
        (runs, params) => {
          const data = Buffer.concat(runs.map(([zero, n]) => (zero ? Buffer.alloc(n) : randomBytes(n))));
          const got = run(new CdcChunker(params), data, 70_000).map((c) => c.data.length);
          assert.deepEqual(got, ref(data, params));
        },
      ),
      { numRuns: 60 },
    );
  });
});
