// The DWCP byte stream (what live migration carries QEMU's stream through): in-order, byte-identical,
// dedup of repeated blocks, survives a dropped stream, and a slow reader slows the writer.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { AmstServer } from '../../src/dwcp/transport/server.js';
import { openStreamSender, streamReceiver } from '../../src/dwcp/stream.js';
import { AmstSender } from '../../src/dwcp/transport/sender.js';
import { encodeBundle } from '../../src/dwcp/encoding/bundle.js';
import { encodeBlock } from '../../src/dwcp/encoding/record.js';
import { NovaCronError } from '../../src/errors.js';

const security = { token: 'stream-token', encrypt: true };

async function collect(r: Readable, slow: boolean): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r as AsyncIterable<Buffer>) {
    parts.push(c);
    if (slow && parts.length % 256 === 0) await new Promise<void>((res) => setImmediate(res));
  }
  return Buffer.concat(parts);
}

describe('DWCP byte stream', () => {
  it('carries a stream byte-identically with dedup, across a dropped stream and a slow reader', async () => {
    let got: Promise<Buffer> | undefined;
    let label = '';
    const server = await AmstServer.listen({
      host: '127.0.0.1',
      port: 0,
      security,
      onSession: streamReceiver((r, l) => {
        label = l;
        got = collect(r, true);
      }),
    });
    const page = randomBytes(4096);
    // Unaligned writes of: random data, zero pages, a page repeated many times.
    const parts = [
      randomBytes(3 << 20),
      Buffer.alloc(1 << 20),
      ...Array.from({ length: 200 }, () => page),
      randomBytes(12345),
    ];
    const all = Buffer.concat(parts);
    const w = await openStreamSender({
      host: '127.0.0.1',
      port: server.address.port,
      security,
      streams: 3,
      codec: { codec: 'zstd', level: 1 },
      windowBytes: 1 << 20,
      label: 'vm-42',
    });
    let killed = false;
    for (let off = 0; off < all.length; off += 100_001) {
      const ok = w.write(all.subarray(off, off + 100_001));
      if (!killed && off > all.length / 2) {
        killed = true;
        w.amst.connections()[0]?.destroy();
      }
      if (!ok) await new Promise<void>((r) => w.once('drain', r));
    }
    await new Promise<void>((resolve, reject) =>
      w.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
    const out = await got!;
    assert.equal(label, 'vm-42');
    assert.equal(out.length, all.length);
    assert.equal(
      createHash('sha256').update(out).digest('hex'),
      createHash('sha256').update(all).digest('hex'),
    );
    assert.ok(w.chunks.zero >= 255, `zero blocks: ${w.chunks.zero}`);
    assert.ok(w.chunks.known >= 150, `known blocks: ${w.chunks.known}`);
    await server.close();
  });

  it('compresses content repeated far back at unaligned offsets (one zstd context per session)', async () => {
    let got: Promise<Buffer> | undefined;
    const server = await AmstServer.listen({
      host: '127.0.0.1',
      port: 0,
      security,
      onSession: streamReceiver((r) => {
        got = collect(r, false);
      }),
    });
    try {
      // 4 MiB of random bytes, then the same bytes again shifted by 8 bytes (as QEMU's page
      // headers shift pages): no 4 KiB block repeats, and bundles alone cannot see 4 MiB back.
      const a = randomBytes(4 << 20);
      const all = Buffer.concat([a, Buffer.from('8 bytes!'), a]);
      const w = await openStreamSender({
        host: '127.0.0.1',
        port: server.address.port,
        security,
        streams: 2,
        codec: { codec: 'zstd', level: 1 },
        windowBytes: 1 << 20,
      });
      for (let off = 0; off < all.length; off += 65_536) {
        if (!w.write(all.subarray(off, off + 65_536))) await new Promise<void>((r) => w.once('drain', r));
      }
      await new Promise<void>((resolve, reject) =>
        w.end((err?: Error | null) => (err ? reject(err) : resolve())),
      );
      const out = await got!;
      assert.ok(out.equals(all), 'delivered bytes differ');
      assert.equal(w.chunks.known, 0);
      // Without the session context the second copy would cost another 4 MiB.
      assert.ok(w.amst.stats.wireBytes < 5.5 * 2 ** 20, `wire bytes ${w.amst.stats.wireBytes}`);
    } finally {
      await server.close();
    }
  });

  it('rejects a corrupted bundle on the stream path instead of delivering wrong bytes', async () => {
    let failed: Promise<unknown> | undefined;
    const server = await AmstServer.listen({
      host: '127.0.0.1',
      port: 0,
      security,
      onSession: streamReceiver((r) => {
        failed = collect(r, false).then(
          () => 'delivered',
          (e: unknown) => e,
        );
      }),
    });
    const sender = await AmstSender.open({
      host: '127.0.0.1',
      port: server.address.port,
      security,
      streams: 1,
    });
    await sender.request({ t: 'stream-open', label: 'x', bundles: 1 });
    const page = randomBytes(4096);
    const rec = encodeBlock(0, page, { receiverHas: () => false, codec: { codec: 'none', level: 0 } }).bytes;
    rec[rec.length - 1]! ^= 1; // one bit of the page flipped after hashing
    await sender.send(encodeBundle([rec], { codec: 'zstd', level: 1 }));
    await assert.rejects(sender.flush());
    const outcome = await failed!;
    assert.ok(outcome instanceof NovaCronError && outcome.code === 'integrity', String(outcome));
    sender.abort(new Error('test over'));
    await server.close();
  });
});
