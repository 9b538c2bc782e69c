// Compression on worker threads: results match inline compression, many jobs in flight resolve
// to their own inputs, incompressible input comes back as is, and a closed pool refuses work.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { CompressPool } from './compress-pool.js';
import { CodecId, decompressBlock } from './codec.js';

describe('CompressPool', () => {
  it('compresses on workers; every job decodes to its own input', async () => {
    const pool = new CompressPool(2);
    try {
      const inputs = Array.from({ length: 24 }, (_, i) =>
        i % 3 === 0 ? randomBytes(70_000) : Buffer.from(`bundle ${i} `.repeat(5000 + i)),
      );
      const copies = inputs.map((b) => Buffer.from(b));
      const out = await Promise.all(
        inputs.map((b, i) =>
          pool.compress(b, i % 2 ? { codec: 'lz4', level: 0 } : { codec: 'zstd', level: 3 }),
        ),
      );
      out.forEach((c, i) => {
        const back = decompressBlock(c.codec, c.data, copies[i]!.length);
        assert.ok(back.equals(copies[i]!), `job ${i}`);
        if (i % 3 === 0)
          assert.equal(c.codec, CodecId.None); // random: sent as is
        else assert.ok(c.data.length < copies[i]!.length / 4);
      });
    } finally {
      await pool.close();
    }
    await assert.rejects(pool.compress(Buffer.alloc(100), { codec: 'zstd', level: 1 }));
  });

  it('compresses inline with no threads', async () => {
    const pool = new CompressPool(0);
    const raw = Buffer.from('x'.repeat(10_000));
    const c = await pool.compress(raw, { codec: 'zstd', level: 1 });
    assert.ok(decompressBlock(c.codec, c.data, 10_000).equals(raw));
    await pool.close();
  });

  it('keeps a whole-file SHA-256 in call order, on a worker or inline', async () => {
    for (const threads of [2, 0]) {
      const pool = new CompressPool(threads);
      const parts = Array.from({ length: 20 }, (_, i) => randomBytes(1000 + i * 3000));
      const reused = Buffer.alloc(5000);
      for (const p of parts) {
        // The caller reuses its buffer right away: the pool must have copied it.
        p.copy(reused, 0, 0, Math.min(p.length, reused.length));
        pool.hashUpdate(p);
        reused.fill(0);
      }
      const want = createHash('sha256').update(Buffer.concat(parts)).digest('hex');
      assert.equal(await pool.hashDigest(), want, `threads ${threads}`);
      await pool.close();
    }
  });
});
