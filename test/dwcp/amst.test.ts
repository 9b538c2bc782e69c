// AMST over loopback with an in-memory handler: acks wait for the durable sync, duplicates after a
// resend are dropped, a corrupted record ends the session with an integrity error at the sender.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AmstServer, type SessionHandler } from '../../src/dwcp/transport/server.js';
import { AmstSender } from '../../src/dwcp/transport/sender.js';
import { FILE_PROTOCOL_VERSION, createReceiver } from '../../src/dwcp/file-receiver.js';
import { NovaCronError } from '../../src/errors.js';
import { encodeBundle } from '../../src/dwcp/encoding/bundle.js';

const security = { token: 'amst-token', encrypt: true };

function gatedHandler() {
  const written = new Map<number, Buffer>();
  let openGate: () => void = () => {};
  const gate = new Promise<void>((r) => (openGate = r));
  let onWrite: () => void = () => {};
  const handler: SessionHandler = {
    onData: (seq, payload) => {
      written.set(seq, Buffer.from(payload));
      onWrite();
      return Promise.resolve();
    },
    sync: () => gate,
    onRequest: (body) => Promise.resolve({ echo: body }),
    onEnd: () => {},
  };
  return {
    handler,
    written,
    openGate,
    waitWrites: (n: number) => new Promise<void>((r) => (onWrite = () => written.size >= n && r())),
  };
}

describe('AMST transport (loopback)', () => {
  it('acknowledges only after the durable sync completes', async () => {
    const h = gatedHandler();
    const server = await AmstServer.listen({
      host: '127.0.0.1',
      port: 0,
      security,
      onSession: () => h.handler,
    });
    const sender = await AmstSender.open({
      host: '127.0.0.1',
      port: server.address.port,
      security,
      streams: 2,
    });
    const writes = h.waitWrites(3);
    for (let i = 0; i < 3; i++) await sender.send(Buffer.from(`payload ${i}`));
    await writes;
    // Written but not durable: nothing acknowledged, flush still pending.
    let flushed = false;
    const flush = sender.flush().then(() => (flushed = true));
    assert.deepEqual(await sender.request({ ping: 1 }), { echo: { ping: 1 } });
    assert.equal(sender.stats.ackedBytes, 0);
    assert.equal(flushed, false);
    h.openGate();
    await flush;
    assert.equal(sender.stats.ackedBytes, 3 * 'payload 0'.length);
    assert.deepEqual([...h.written.keys()].sort(), [1, 2, 3]);
    await sender.close();
    await server.close();
  });

  it('ends the session with an integrity error when a record is corrupt', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dwcp-amst-'));
    const rx = await createReceiver({ dir, host: '127.0.0.1', port: 0, security });
    const sender = await AmstSender.open({ host: '127.0.0.1', port: rx.address.port, security, streams: 2 });
    await sender.request({ t: 'open', name: 'x.bin', size: 100, v: FILE_PROTOCOL_VERSION });
    // A literal record header claiming 100 bytes, with a payload that does not hash to it.
    const rec = Buffer.alloc(14 + 32 + 100);
    rec[0] = 3;
    rec.writeUInt32BE(100, 10);
    await sender.send(encodeBundle([rec], { codec: 'none', level: 0 }));
    await assert.rejects(
      sender.flush(),
      (e: unknown) => e instanceof NovaCronError && e.code === 'integrity',
    );
    await rx.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses an unencrypted client when the receiver requires encryption', async () => {
    const h = gatedHandler();
    const server = await AmstServer.listen({
      host: '127.0.0.1',
      port: 0,
      security,
      onSession: () => h.handler,
    });
    await assert.rejects(
      AmstSender.open({
        host: '127.0.0.1',
        port: server.address.port,
        security: { ...security, encrypt: false },
        streams: 1,
      }),
      (e: unknown) => e instanceof NovaCronError,
    );
    await server.close();
  });

  it('opens the other streams in the background and reads the kernel TCP counters', async () => {
    const h = gatedHandler();
    h.openGate();
    const server = await AmstServer.listen({
      host: '127.0.0.1',
      port: 0,
      security,
      onSession: () => h.handler,
    });
    const opened: number[] = [];
    let allUp: () => void = () => {};
    const up = new Promise<void>((r) => (allUp = r));
    const sender = await AmstSender.open({
      host: '127.0.0.1',
      port: server.address.port,
      security,
      streams: 3,
      onStream: (i) => {
        opened.push(i);
        if (opened.length === 3) allUp();
      },
    });
    // open() resolved with the first stream; the rest follow without being awaited.
    assert.ok(opened.includes(0));
    await up;
    assert.deepEqual([...opened].sort(), [0, 1, 2]);
    for (let i = 0; i < 20; i++) await sender.send(Buffer.alloc(64 * 1024, i));
    await sender.flush();
    // Per-socket TCP_INFO comes from the same addon as TCP_CONGESTION (compiled with cc on first use).
    const infos = sender.connections().map((c) => c.tcpInfo());
    assert.ok(
      infos.every((i) => i !== undefined),
      'TCP_INFO unavailable: is cc installed?',
    );
    const acked = infos.reduce((a, i) => a + (i?.bytesAcked ?? 0), 0);
    assert.ok(acked >= 20 * 64 * 1024, `kernel acknowledged ${acked} bytes`);
    await sender.close();
    await server.close();
  });
});
