// End-to-end DWCP file transfers over loopback: round trip, reuse of held chunks on a second send,
// a stream killed mid-transfer with byte-identical output, wrong token, a peer of another protocol
// version refused both ways, and bounded memory.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  openSync,
  writeSync,
  closeSync,
  mkdirSync,
  existsSync,
  utimesSync,
} from 'node:fs';
import { randomBytes, createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReceiver, PARTIAL_KEEP_MS, type FileReceiver } from '../../src/dwcp/file-receiver.js';
import { sendFile, type SendFileOptions } from '../../src/dwcp/file-sender.js';
import { AmstSender } from '../../src/dwcp/transport/sender.js';
import { AmstServer } from '../../src/dwcp/transport/server.js';
import { ErrorCode, NovaCronError } from '../../src/errors.js';

const TOKEN = 'test-join-token';
let work: string;
let dest: string;
let rx: FileReceiver;

function opts(over: Partial<SendFileOptions> = {}): SendFileOptions {
  return {
    host: '127.0.0.1',
    port: rx.address.port,
    security: { token: TOKEN, encrypt: true },
    streams: 4,
    codec: { codec: 'zstd', level: 3 },
    ...over,
  };
}

/** A disk-image-like file: zero regions, text, random data. */
function makeImage(bytes: number, seed: number): Buffer {
  const b = Buffer.alloc(bytes);
  let x = seed | 1;
  for (let off = 0; off < bytes; off += 4096) {
    const kind = Math.floor(off / 65536) % 4;
    if (kind === 0) continue;
    if (kind === 1) b.write(`block ${off} of a text region `.repeat(200), off, Math.min(4096, bytes - off));
    else
      for (let i = off; i < Math.min(off + 4096, bytes); i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        b[i] = x & 0xff;
      }
  }
  return b;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('DWCP file transfer (loopback)', () => {
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'dwcp-test-'));
    dest = join(work, 'dest');
    rx = await createReceiver({
      dir: dest,
      host: '127.0.0.1',
      port: 0,
      security: { token: TOKEN, encrypt: true },
    });
  });
  after(async () => {
    await rx.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('round-trips a structured file, then resends a modified version cheaply', async () => {
    const v1 = makeImage(6 * 1024 * 1024 + 123, 7);
    writeFileSync(join(work, 'disk.img'), v1);
    const s1 = await sendFile(join(work, 'disk.img'), opts());
    assert.equal(sha(readFileSync(join(dest, 'disk.img'))), sha(v1));
    assert.equal(s1.bytes, v1.length);
    assert.ok(s1.chunks.zero > 0 && s1.chunks.literal > 0);

    // Version 2: a few scattered 4 KiB blocks changed and 1000 bytes inserted near the middle.
    const v2parts = Buffer.from(v1);
    for (let i = 0; i < 20; i++) randomBytes(4096).copy(v2parts, ((i * 7919) % 1500) * 4096);
    const mid = 3 * 1024 * 1024;
    const v2 = Buffer.concat([v2parts.subarray(0, mid), randomBytes(1000), v2parts.subarray(mid)]);
    writeFileSync(join(work, 'disk.img'), v2);
    const s2 = await sendFile(join(work, 'disk.img'), opts());
    assert.equal(sha(readFileSync(join(dest, 'disk.img'))), sha(v2));
    assert.ok(s2.chunks.known > 0);
    assert.ok(
      s2.wireBytes < s1.wireBytes / 4,
      `second send cost ${s2.wireBytes} B on the wire vs ${s1.wireBytes} B`,
    );
    // No temporary files are left behind.
    assert.deepEqual(
      readdirSync(dest).filter((n) => n.endsWith('.dwcp-part')),
      [],
    );
  });

  it('sends chunks changed in place as patches against the old version (sub-chunk delta)', async () => {
    const v1 = makeImage(4 * 1024 * 1024, 11);
    writeFileSync(join(work, 'patch.img'), v1);
    await sendFile(join(work, 'patch.img'), opts());
    // 24 blocks of 4 KiB rewritten in the random regions (64 KiB regions of kind 2 and 3): whole
    // chunks there cost their full size; patches should cost little more than the new bytes.
    const v2 = Buffer.from(v1);
    let changed = 0;
    for (let blk = 0; changed < 24; blk += 5) {
      if (Math.floor((blk * 4096) / 65536) % 4 < 2) continue;
      randomBytes(4096).copy(v2, blk * 4096);
      changed++;
    }
    writeFileSync(join(work, 'patch.img'), v2);
    const s2 = await sendFile(join(work, 'patch.img'), opts());
    assert.equal(sha(readFileSync(join(dest, 'patch.img'))), sha(v2));
    assert.ok(s2.chunks.delta > 0, `patch records: ${JSON.stringify(s2.chunks)}`);
    const newBytes = changed * 4096;
    assert.ok(
      s2.wireBytes < newBytes * 1.5 + 64 * 1024,
      `second send cost ${s2.wireBytes} B on the wire for ${newBytes} B of new data`,
    );
  });

  it('patches aligned rewrites behind an insert at their own size (grid phased to the old file)', async () => {
    const v1 = makeImage(4 * 1024 * 1024, 13);
    writeFileSync(join(work, 'phased.img'), v1);
    await sendFile(join(work, 'phased.img'), opts());
    // 32 aligned 4 KiB blocks rewritten in the random regions, then 1000 bytes inserted before all
    // of them: every rewrite sits 1000 bytes off the new file's 2 KiB sub-block grid, so only a grid phased
    // by the shift the receiver reports costs no more than the rewritten bytes.
    const mid = Buffer.from(v1);
    let changed = 0;
    for (let blk = 20; changed < 32; blk += 3) {
      if (Math.floor((blk * 4096) / 65536) % 4 < 2) continue;
      randomBytes(4096).copy(mid, blk * 4096);
      changed++;
    }
    const v2 = Buffer.concat([mid.subarray(0, 5000), randomBytes(1000), mid.subarray(5000)]);
    writeFileSync(join(work, 'phased.img'), v2);
    const s2 = await sendFile(join(work, 'phased.img'), opts());
    assert.equal(sha(readFileSync(join(dest, 'phased.img'))), sha(v2));
    assert.ok(s2.chunks.delta > 0, `patch records: ${JSON.stringify(s2.chunks)}`);
    const newBytes = changed * 4096 + 1000;
    // Unphased 2 KiB sub-blocks cost 6 KiB per aligned 4 KiB rewrite (1.5×); phased, about 154 KB here.
    assert.ok(
      s2.wireBytes < newBytes * 1.06 + 24 * 1024,
      `second send cost ${s2.wireBytes} B on the wire for ${newBytes} B of new data`,
    );
  });

  it('survives streams killed mid-transfer, with byte-identical output and nothing acknowledged resent', async () => {
    const data = randomBytes(12 * 1024 * 1024);
    writeFileSync(join(work, 'random.bin'), data);
    const armed = new Set<number>();
    const s = await sendFile(
      join(work, 'random.bin'),
      opts({
        name: 'random-resumed.bin',
        streams: 3,
        windowBytes: 4 * 1024 * 1024,
        onProgress: () => {},
        onStream: (index, conn) => {
          // Kill streams 0 and 1 once each, after some data has flowed through them.
          if (index < 2 && !armed.has(index)) {
            armed.add(index);
            const start = conn.wireBytesOut;
            const t = setInterval(() => {
              if (conn.wireBytesOut - start > 2 * 1024 * 1024 || conn.isClosed) {
                clearInterval(t);
                conn.destroy();
              }
            }, 1);
          }
        },
      }),
    );
    assert.equal(sha(readFileSync(join(dest, 'random-resumed.bin'))), sha(data));
    assert.ok(s.reconnects >= 1, `expected a reconnect, got ${s.reconnects}`);
    // Only unacknowledged frames went again: each dropped stream resends at most the retransmit
    // window (a frame resent on a stream that is dropped in turn counts again).
    assert.ok(s.resentFrames > 0);
    assert.ok(
      s.resentBytes <= s.reconnects * 4 * 1024 * 1024,
      `resent ${s.resentBytes} B in ${s.resentFrames} frames over ${s.reconnects} reconnects, more than a window each`,
    );
  });

  it('fails cleanly with a wrong token and leaves no file', async () => {
    writeFileSync(join(work, 'secret.bin'), randomBytes(100_000));
    await assert.rejects(
      sendFile(join(work, 'secret.bin'), opts({ security: { token: 'wrong-token', encrypt: true } })),
      (e: unknown) => e instanceof NovaCronError && e.code === 'unauthenticated',
    );
    assert.ok(!readdirSync(dest).some((n) => n.includes('secret')));
  });

  it('refuses a peer speaking another file protocol version, both ways, with a clear error', async () => {
    // An older sender: its open carries no version (version 1).
    const old = await AmstSender.open({
      host: '127.0.0.1',
      port: rx.address.port,
      security: { token: TOKEN, encrypt: true },
      streams: 1,
    });
    await assert.rejects(
      old.request({ t: 'open', name: 'old.bin', size: 10 }),
      (e: unknown) =>
        e instanceof NovaCronError &&
        e.code === 'protocol' &&
        /sender speaks DWCP file protocol version 1, this receiver version 2/.test(e.message),
    );
    old.abort(new NovaCronError(ErrorCode.Internal, 'test done'));
    // An older receiver: answers open without a version.
    const oldRx = await AmstServer.listen({
      host: '127.0.0.1',
      port: 0,
      security: { token: TOKEN, encrypt: true },
      onSession: () => ({
        onData: () => Promise.resolve(),
        sync: () => Promise.resolve(),
        onRequest: () => Promise.resolve({ ok: true, held: 0 }),
        onEnd: () => {},
      }),
    });
    writeFileSync(join(work, 'v.bin'), randomBytes(10_000));
    await assert.rejects(
      sendFile(join(work, 'v.bin'), opts({ port: oldRx.address.port })),
      (e: unknown) =>
        e instanceof NovaCronError &&
        e.code === 'protocol' &&
        /receiver speaks DWCP file protocol version 1, this sender version 2/.test(e.message),
    );
    await oldRx.close(0);
    assert.ok(!readdirSync(dest).some((n) => n.includes('old.bin')));
  });

  it('keeps sender memory bounded on a 512 MiB sparse file', async () => {
    const p = join(work, 'big.img');
    const fd = openSync(p, 'w');
    // Mostly holes, with random data every 64 MiB.
    for (let off = 0; off < 512 * 1024 * 1024; off += 64 * 1024 * 1024)
      writeSync(fd, randomBytes(1024 * 1024), 0, 1024 * 1024, off);
    writeSync(fd, Buffer.from('end'), 0, 3, 512 * 1024 * 1024 - 3);
    closeSync(fd);
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const s = await sendFile(
      p,
      opts({
        windowBytes: 8 * 1024 * 1024,
        onProgress: () => (peak = Math.max(peak, process.memoryUsage().rss)),
      }),
    );
    assert.equal(s.bytes, 512 * 1024 * 1024);
    assert.ok(peak - before < 256 * 1024 * 1024, `RSS grew by ${((peak - before) / 1048576).toFixed(0)} MiB`);
    rmSync(p);
    rmSync(join(dest, 'big.img'));
  });

  it('a receiver starting removes partial files older than PARTIAL_KEEP_MS, keeps newer ones', async () => {
    const dir = join(work, 'prune');
    const partial = join(dir, '.dwcp', 'partial');
    const manifests = join(dir, '.dwcp', 'manifests');
    mkdirSync(partial, { recursive: true });
    mkdirSync(manifests, { recursive: true });
    for (const name of ['old.img', 'new.img']) {
      writeFileSync(join(partial, name), randomBytes(4096));
      writeFileSync(join(manifests, `${name}.partial.manifest`), '{}\n');
    }
    // a manifest whose partial file is gone goes too
    writeFileSync(join(manifests, 'orphan.img.partial.manifest'), '{}\n');
    const past = (Date.now() - PARTIAL_KEEP_MS - 60_000) / 1000;
    utimesSync(join(partial, 'old.img'), past, past);
    const r = await createReceiver({
      dir,
      host: '127.0.0.1',
      port: 0,
      security: { token: TOKEN, encrypt: true },
    });
    try {
      assert.ok(!existsSync(join(partial, 'old.img')));
      assert.ok(!existsSync(join(manifests, 'old.img.partial.manifest')));
      assert.ok(!existsSync(join(manifests, 'orphan.img.partial.manifest')));
      assert.ok(existsSync(join(partial, 'new.img')));
      assert.ok(existsSync(join(manifests, 'new.img.partial.manifest')));
    } finally {
      await r.close();
    }
  });
});
