// The receiver's chunk index: every place of a chunk held more than once, the first kept by
// default, and another place taking over when its file goes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ChunkIndex } from './chunk-index.js';

describe('chunk index', () => {
  it('keeps every place of repeated content and falls back when a file goes', () => {
    const idx = new ChunkIndex();
    const h = randomBytes(32);
    const other = randomBytes(32);
    idx.add(h, { file: 'a', offset: 0, length: 10 });
    idx.add(h, { file: 'b', offset: 4096, length: 10 });
    idx.add(other, { file: 'b', offset: 0, length: 5 });
    // The latest manifest wins; the earlier place is still known.
    assert.deepEqual(idx.locate(h), { file: 'b', offset: 4096, length: 10 });
    assert.deepEqual(
      idx.locateAll(h).map((l) => l.file),
      ['b', 'a'],
    );
    // A transfer's part file adds places without displacing the old version's.
    idx.add(h, { file: 'part', offset: 8192, length: 10 }, true);
    assert.equal(idx.locate(h)!.file, 'b');
    assert.deepEqual(
      idx.locateAll(h).map((l) => l.file),
      ['b', 'a', 'part'],
    );
    idx.add(h, { file: 'a', offset: 0, length: 10 }, true); // already known: no duplicate
    assert.equal(idx.locateAll(h).length, 3);
    idx.removeFile('b');
    assert.deepEqual(idx.locate(h), { file: 'a', offset: 0, length: 10 });
    assert.equal(idx.locate(other), undefined);
    idx.removeFile('part');
    idx.removeFile('a');
    assert.equal(idx.size, 0);
    assert.deepEqual(idx.locateAll(h), []);
  });

  it('bounds the places kept per chunk', () => {
    const idx = new ChunkIndex();
    const h = randomBytes(32);
    for (let i = 0; i < 100; i++) idx.add(h, { file: 'f', offset: i * 4096, length: 4096 });
    assert.equal(idx.locateAll(h).length, 8);
    assert.equal(idx.size, 1);
  });
});
