// Micro-benchmark of the codec and hash candidates HDE can use, on 64 MiB of 4 KiB pages (50 % zero,
// 25 % random, 25 % text), called per block as HDE calls them (4 KiB pages, 8 KiB CDC chunks).
// Prints a table and writes bench/dwcp/results/codecs.json.
import { brotliCompressSync, constants, deflateSync } from 'node:zlib';
import { hash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compress as zstd, decompress as unzstd } from 'zstd-napi';
import { compressSync as lz4, uncompressSync as unlz4 } from 'lz4-napi';
import { CdcChunker } from '../../src/dwcp/encoding/chunker.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const MiB = 1 << 20;
const SIZE = 64 * MiB;

function data(): Buffer {
  const b = Buffer.alloc(SIZE);
  let x = 42;
  const text = Buffer.from('the quick brown fox jumps over the lazy dog; NovaCron DWCP page ');
  for (let p = 0; p < SIZE / 4096; p++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const kind = x % 4;
    const off = p * 4096;
    if (kind === 2)
      for (let i = 0; i < 4096; i += 4)
        b.writeUInt32LE((x = (Math.imul(x, 1664525) + 1013904223) >>> 0), off + i);
    else if (kind === 3)
      for (let i = 0; i < 4096; i += text.length) text.copy(b, off + i, 0, Math.min(text.length, 4096 - i));
  }
  return b;
}

function time(fn: () => void): number {
  const t = performance.now();
  fn();
  return (performance.now() - t) / 1000;
}

const buf = data();
const rows: Record<string, unknown>[] = [];
for (const block of [4096, 65536]) {
  const blocks: Buffer[] = [];
  for (let i = 0; i < SIZE; i += block) blocks.push(buf.subarray(i, i + block));
  const codecs: [string, (b: Buffer) => Buffer, (b: Buffer) => Buffer][] = [
    ['zstd -1', (b) => zstd(b, { compressionLevel: -1 }), (b) => unzstd(b)],
    ['zstd 1', (b) => zstd(b, { compressionLevel: 1 }), (b) => unzstd(b)],
    ['zstd 3', (b) => zstd(b, { compressionLevel: 3 }), (b) => unzstd(b)],
    ['zstd 9', (b) => zstd(b, { compressionLevel: 9 }), (b) => unzstd(b)],
    ['lz4', (b) => lz4(b), (b) => unlz4(b)],
    ['deflate 1', (b) => deflateSync(b, { level: 1 }), (b) => b],
    ['brotli 1', (b) => brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: 1 } }), (b) => b],
  ];
  for (const [name, c, d] of codecs) {
    let out: Buffer[] = [];
    const ct = time(() => (out = blocks.map(c)));
    const dt = name.startsWith('deflate') || name.startsWith('brotli') ? NaN : time(() => out.forEach(d));
    const size = out.reduce((a, o) => a + o.length, 0);
    rows.push({
      kind: 'codec',
      name,
      block,
      ratio: +(SIZE / size).toFixed(2),
      compressMiBs: Math.round(64 / ct),
      decompressMiBs: Number.isNaN(dt) ? null : Math.round(64 / dt),
    });
  }
  for (const alg of ['sha256', 'sha1', 'md5', 'sha512']) {
    const t = time(() => blocks.forEach((b) => hash(alg, b, 'buffer')));
    rows.push({ kind: 'hash', name: alg, block, MiBs: Math.round(64 / t) });
  }
  const zeroPage = Buffer.alloc(block);
  rows.push({
    kind: 'hash',
    name: 'zero test (Buffer.equals)',
    block,
    MiBs: Math.round(64 / time(() => blocks.forEach((b) => b.equals(zeroPage)))),
  });
}
{
  const c = new CdcChunker();
  const t = time(() => {
    for (let i = 0; i < SIZE; i += MiB) c.push(buf.subarray(i, i + MiB));
    c.end();
  });
  rows.push({ kind: 'chunker', name: 'FastCDC 2/8/64 KiB', block: 0, MiBs: Math.round(64 / t) });
}
for (const r of rows) process.stdout.write(Object.values(r).join(' | ') + '\n');
mkdirSync(join(HERE, 'results'), { recursive: true });
writeFileSync(
  join(HERE, 'results', 'codecs.json'),
  JSON.stringify({ date: new Date().toISOString(), rows }, null, 2) + '\n',
);
