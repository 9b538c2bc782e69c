// Handshake and frame sealing: hybrid key agreement, token authentication, AES-GCM failing cleanly on a wrong key.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { clientFinish, clientHello, serverReply, serverVerify } from './handshake.js';
import { FrameOpener, FrameSealer } from './cipher.js';
import { IntegrityError, NovaCronError, ProtocolError } from '../../errors.js';

describe('DWCP handshake', () => {
  it('agrees on the same per-direction keys with the same token', () => {
    const c = clientHello();
    const s = serverReply(c.hello, 'tok');
    const f = clientFinish(c, s.reply, 'tok');
    serverVerify(s.expectClientProof, f.auth);
    assert.ok(f.keys.c2s.equals(s.keys.c2s));
    assert.ok(f.keys.s2c.equals(s.keys.s2c));
    assert.ok(!f.keys.c2s.equals(f.keys.s2c));
    // Fresh ephemeral keys every time.
    const c2 = clientHello();
    const f2 = clientFinish(c2, serverReply(c2.hello, 'tok').reply, 'tok');
    assert.ok(!f2.keys.c2s.equals(f.keys.c2s));
  });

  it('fails with unauthenticated when the tokens differ, on either side', () => {
    const c = clientHello();
    const s = serverReply(c.hello, 'server-token');
    assert.throws(
      () => clientFinish(c, s.reply, 'client-token'),
      (e: unknown) => e instanceof NovaCronError && e.code === 'unauthenticated',
    );
    assert.throws(
      () => serverVerify(s.expectClientProof, Buffer.alloc(32)),
      (e: unknown) => e instanceof NovaCronError && e.code === 'unauthenticated',
    );
  });

  it('fails when any byte of the reply is tampered with', () => {
    const c = clientHello();
    const s = serverReply(c.hello, 'tok');
    for (const i of [0, 31, 32, 500, 1119, 1120, s.reply.length - 1]) {
      const bad = Buffer.from(s.reply);
      bad[i] = bad[i]! ^ 1;
      assert.throws(() => clientFinish(c, bad, 'tok'), NovaCronError, `byte ${i}`);
    }
  });

  it('rejects malformed handshake messages', () => {
    assert.throws(() => serverReply(Buffer.alloc(10), 'tok'), ProtocolError);
    assert.throws(() => clientFinish(clientHello(), Buffer.alloc(10), 'tok'), ProtocolError);
  });
});

describe('frame sealing (AES-256-GCM)', () => {
  const key = Buffer.alloc(32, 7);
  it('round-trips frames in order', () => {
    const s = new FrameSealer(key);
    const o = new FrameOpener(key);
    for (let i = 0; i < 5; i++) {
      const msg = Buffer.from(`frame ${i}`);
      assert.ok(o.open(5, i, s.seal(5, i, msg)).equals(msg));
    }
  });

  it('fails cleanly with a wrong key, a tampered byte, another seq, or a replay', () => {
    const sealed = new FrameSealer(key).seal(5, 1, Buffer.from('secret data'));
    assert.throws(() => new FrameOpener(Buffer.alloc(32, 8)).open(5, 1, sealed), IntegrityError);
    const bad = Buffer.from(sealed);
    bad[0] = bad[0]! ^ 1;
    assert.throws(() => new FrameOpener(key).open(5, 1, bad), IntegrityError);
    assert.throws(() => new FrameOpener(key).open(5, 2, sealed), IntegrityError);
    assert.throws(() => new FrameOpener(key).open(6, 1, sealed), IntegrityError);
    const o = new FrameOpener(key);
    o.open(5, 1, sealed);
    assert.throws(() => o.open(5, 1, sealed), IntegrityError);
    assert.throws(() => new FrameOpener(key).open(5, 1, Buffer.alloc(3)), IntegrityError);
  });
});
