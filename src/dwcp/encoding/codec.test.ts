// Codec round trips (including refusal of bad input) and the policy that picks codec and level.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { IntegrityError } from '../../errors.js';
import { CodecId, chooseCodec, compressBlock, decompressBlock } from './codec.js';

describe('HDE codecs', () => {
  it('round-trips text with zstd and lz4, and sends random data as is', () => {
    const text = Buffer.from('a page of text that repeats itself. '.repeat(200));
    for (const choice of [
      { codec: 'zstd', level: 3 },
      { codec: 'lz4', level: 0 },
    ] as const) {
      const c = compressBlock(text, choice);
      assert.ok(c.data.length < text.length / 4);
      assert.ok(decompressBlock(c.codec, c.data, text.length).equals(text));
    }
    const rnd = randomBytes(65536);
    assert.equal(compressBlock(rnd, { codec: 'zstd', level: 3 }).codec, CodecId.None);
  });

  it('rejects a block that decompresses to the wrong length or not at all', () => {
    const text = Buffer.from('x'.repeat(10000));
    const c = compressBlock(text, { codec: 'zstd', level: 1 });
    assert.throws(() => decompressBlock(c.codec, c.data, text.length + 1), IntegrityError);
    assert.throws(() => decompressBlock(CodecId.Zstd, randomBytes(100), 100), IntegrityError);
  });

  it('chooses: profile until measured, lz4 for incompressible data, lighter when CPU-bound, harder when the link is slow', () => {
    const profile = { codec: 'zstd', level: 3 } as const;
    assert.deepEqual(chooseCodec({ profile }), profile);
    // Random data: compression pays nothing, whatever the link.
    assert.deepEqual(
      chooseCodec({ profile, linkBytesPerSec: 12e6, compressBytesPerSec: 300e6, ratio: 1.0 }),
      { codec: 'lz4', level: 0 },
    );
    // Compressor slower than the link can carry: step down.
    assert.deepEqual(chooseCodec({ profile, linkBytesPerSec: 500e6, compressBytesPerSec: 200e6, ratio: 3 }), {
      codec: 'zstd',
      level: 1,
    });
    // Link far slower than the compressor: compress harder.
    assert.deepEqual(chooseCodec({ profile, linkBytesPerSec: 2e6, compressBytesPerSec: 300e6, ratio: 3 }), {
      codec: 'zstd',
      level: 6,
    });
    assert.deepEqual(chooseCodec({ profile: { codec: 'none', level: 0 }, ratio: 1 }), {
      codec: 'none',
      level: 0,
    });
  });
});
