// Handshake and frame sealing: hybrid key agreement, token and CA-certificate authentication (each
// failure with its named reason), AES-GCM failing cleanly on a wrong key.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  clientFinish,
  clientHello,
  clientReady,
  decodeReject,
  encodeReject,
  serverReply,
  serverVerify,
  type HandshakeAuth,
} from './handshake.js';
import { FrameOpener, FrameSealer } from './cipher.js';
import { IntegrityError, NovaCronError, ProtocolError } from '../../errors.js';
import { certificateAuthFromPem, PeerAuthError, type PeerAuthReason } from '../../security/peer-certs.js';
import { issueCert, makeCa } from '../../security/test-pki.js';

const tok = (token: string): HandshakeAuth => ({ token });

describe('DWCP handshake', () => {
  it('agrees on the same per-direction keys with the same token', () => {
    const c = clientHello(tok('tok'));
    assert.equal(c.hello.length, 1248, 'token-only Hello is the version-1 message');
    const s = serverReply(c.hello, tok('tok'));
    const f = clientFinish(c, s.reply, tok('tok'));
    serverVerify(s, f.auth, tok('tok'));
    assert.equal(f.method, 'token');
    assert.ok(f.keys.c2s.equals(s.keys.c2s));
    assert.ok(f.keys.s2c.equals(s.keys.s2c));
    assert.ok(!f.keys.c2s.equals(f.keys.s2c));
    // Fresh ephemeral keys every time.
    const c2 = clientHello(tok('tok'));
    const f2 = clientFinish(c2, serverReply(c2.hello, tok('tok')).reply, tok('tok'));
    assert.ok(!f2.keys.c2s.equals(f.keys.c2s));
  });

  it('fails with unauthenticated when the tokens differ, on either side', () => {
    const c = clientHello(tok('client-token'));
    const s = serverReply(c.hello, tok('server-token'));
    assert.throws(() => clientFinish(c, s.reply, tok('client-token')), reason('token_mismatch'));
    assert.throws(() => serverVerify(s, Buffer.alloc(32), tok('server-token')), reason('token_mismatch'));
  });

  it('fails when any byte of the reply is tampered with', () => {
    const c = clientHello(tok('tok'));
    const s = serverReply(c.hello, tok('tok'));
    for (const i of [0, 31, 32, 500, 1119, 1120, s.reply.length - 1]) {
      const bad = Buffer.from(s.reply);
      bad[i] = bad[i]! ^ 1;
      assert.throws(() => clientFinish(c, bad, tok('tok')), NovaCronError, `byte ${i}`);
    }
  });

  it('rejects malformed handshake messages', () => {
    assert.throws(() => serverReply(Buffer.alloc(10), tok('tok')), ProtocolError);
    assert.throws(() => clientFinish(clientHello(tok('tok')), Buffer.alloc(10), tok('tok')), ProtocolError);
    assert.throws(() => clientHello({}), /no authentication configured/);
  });
});

function reason(r: PeerAuthReason) {
  return (e: unknown) => {
    assert.ok(e instanceof PeerAuthError, `expected PeerAuthError ${r}, got ${String(e)}`);
    assert.equal(e.reason, r, e.message);
    assert.equal(e.code, 'unauthenticated');
    return true;
  };
}

describe('DWCP handshake with cluster CA certificates', () => {
  const ca = makeCa('Cluster CA');
  const otherCa = makeCa('Other CA');
  const nodeA = issueCert(ca, { cn: 'node-a', dns: ['node-a', 'a.example'], ips: ['127.0.0.1'] });
  const nodeB = issueCert(ca, { cn: 'node-b', dns: ['node-b'] });
  const inter = issueCert(ca, { cn: 'Cluster intermediate', ca: true });
  const nodeC = issueCert(inter, { cn: 'node-c', dns: ['node-c'] });
  const auth = (
    n: { chainPem: string; key: string },
    trust = ca.cert,
    extra: Partial<HandshakeAuth> = {},
  ) => ({
    certificate: certificateAuthFromPem({ cert: n.chainPem, key: n.key, ca: trust }),
    ...extra,
  });

  function run(client: HandshakeAuth, server: HandshakeAuth) {
    const c = clientHello(client);
    const s = serverReply(c.hello, server);
    const f = clientFinish(c, s.reply, client);
    serverVerify(s, f.auth, server);
    // Version 2 (anything but a token-only client) ends with the server's ready.
    assert.equal(f.ready !== undefined, c.v2);
    assert.equal(s.ready !== undefined, c.v2);
    if (f.ready) clientReady(f.ready, s.ready!);
    return { c, s, f };
  }

  it('agrees on keys when both sides hold certificates from the cluster CA (also through an intermediate)', () => {
    const { s, f } = run(auth(nodeA, ca.cert, { peerNames: ['node-b'] }), auth(nodeB));
    assert.equal(f.method, 'ca');
    assert.equal(s.method, 'ca');
    assert.ok(f.keys.c2s.equals(s.keys.c2s) && f.keys.s2c.equals(s.keys.s2c));
    const r = run(
      auth(nodeC, ca.cert, { peerNames: ['node-a'] }),
      auth(nodeA, ca.cert, { peerNames: ['node-c'] }),
    );
    assert.ok(r.f.keys.c2s.equals(r.s.keys.c2s));
  });

  it('names the cause of each failure: unknown CA, expired, not yet valid, wrong name, key usage', () => {
    const stranger = issueCert(otherCa, { cn: 'node-x', dns: ['node-x'] });
    // Server presents a certificate from another CA: the client refuses it.
    assert.throws(() => run(auth(nodeA), auth(stranger, ca.cert)), reason('unknown_ca'));
    // Client presents one: the server refuses it.
    assert.throws(() => run(auth(stranger, ca.cert), auth(nodeB)), reason('unknown_ca'));
    const day = 86400_000;
    const expired = issueCert(ca, {
      cn: 'node-old',
      notBefore: new Date(Date.now() - 10 * day),
      notAfter: new Date(Date.now() - day),
    });
    assert.throws(() => run(auth(nodeA), auth(expired)), reason('certificate_expired'));
    assert.throws(() => run(auth(expired), auth(nodeA)), reason('certificate_expired'));
    const future = issueCert(ca, { cn: 'node-new', notBefore: new Date(Date.now() + day) });
    assert.throws(() => run(auth(future), auth(nodeA)), reason('certificate_not_yet_valid'));
    assert.throws(
      () => run(auth(nodeA, ca.cert, { peerNames: ['node-z'] }), auth(nodeB)),
      reason('wrong_peer_name'),
    );
    assert.throws(
      () => run(auth(nodeA), auth(nodeB, ca.cert, { peerNames: ['node-z', '10.0.0.9'] })),
      reason('wrong_peer_name'),
    );
    // The name may be given as a SAN IP or as another SAN DNS name.
    run(auth(nodeB, ca.cert, { peerNames: ['127.0.0.1'] }), auth(nodeA));
    run(auth(nodeB, ca.cert, { peerNames: ['a.example'] }), auth(nodeA));
    const noSign = issueCert(ca, { cn: 'node-k', keyUsage: { keyEncipherment: true } });
    assert.throws(() => run(auth(nodeA), auth(noSign)), reason('certificate_usage'));
    const codeSigning = issueCert(ca, { cn: 'node-e', extKeyUsage: { codeSigning: true } });
    assert.throws(() => run(auth(codeSigning), auth(nodeA)), reason('certificate_usage'));
    // A leaf (not a CA) cannot issue: a chain through node-a's certificate is refused.
    const underLeaf = issueCert({ cert: nodeA.cert, key: nodeA.key, chainPem: nodeA.cert }, { cn: 'node-l' });
    assert.throws(() => run(auth(underLeaf), auth(nodeB)), reason('certificate_usage'));
    // An expired CA fails every certificate it signed.
    const oldCa = makeCa('Old CA', {
      notBefore: new Date(Date.now() - 10 * day),
      notAfter: new Date(Date.now() - day),
    });
    const underOld = issueCert(oldCa, { cn: 'node-o' });
    assert.throws(
      () => run(auth(underOld, oldCa.cert + ca.cert), auth(nodeA, oldCa.cert + ca.cert)),
      reason('certificate_expired'),
    );
  });

  it('refuses tampered, replayed and relayed signatures (bad_signature)', () => {
    const client = auth(nodeA);
    const server = auth(nodeB);
    // Flip a byte of the server's signature.
    const c = clientHello(client);
    const s = serverReply(c.hello, server);
    const bad = Buffer.from(s.reply);
    bad[bad.length - 40] = bad[bad.length - 40]! ^ 1;
    assert.throws(() => clientFinish(c, bad, client), reason('bad_signature'));
    // Replay: a reply (validly signed) made for another Hello.
    const c2 = clientHello(client);
    assert.throws(() => clientFinish(c2, s.reply, client), reason('bad_signature'));
    // Relay the client's Auth (validly signed) into another exchange with the server.
    const f = clientFinish(c, s.reply, client);
    serverVerify(s, f.auth, server);
    const s2 = serverReply(c.hello, server);
    assert.throws(() => serverVerify(s2, f.auth, server), reason('bad_signature'));
    // A forged ready.
    assert.throws(() => clientReady(f.ready!, Buffer.alloc(32)), reason('bad_signature'));
    // The client's signature byte flipped.
    const badAuth = Buffer.from(f.auth);
    badAuth[badAuth.length - 40] = badAuth[badAuth.length - 40]! ^ 1;
    assert.throws(() => serverVerify(s, badAuth, server), reason('bad_signature'));
    // A certificate with someone else's key: node-a's chain signed with node-b's key.
    const liar: HandshakeAuth = {
      certificate: { ...auth(nodeA).certificate, key: auth(nodeB).certificate.key },
    };
    assert.throws(() => run(liar, server), reason('bad_signature'));
  });

  it('missing certificate and method mismatches are named on the side that decides', () => {
    // A token-only sender to a CA-only receiver.
    const c = clientHello(tok('t'));
    assert.throws(() => serverReply(c.hello, auth(nodeB)), reason('missing_certificate'));
    // A certificate-only sender to a token-only receiver.
    const c2 = clientHello(auth(nodeA));
    assert.throws(() => serverReply(c2.hello, tok('t')), reason('auth_mode_mismatch'));
    // An Auth with no certificate in it.
    const client = auth(nodeA);
    const server = auth(nodeB);
    const c3 = clientHello(client);
    const s3 = serverReply(c3.hello, server);
    clientFinish(c3, s3.reply, client);
    const empty = Buffer.concat([Buffer.from([0, 0, 0]), Buffer.alloc(32)]);
    assert.throws(() => serverVerify(s3, empty, server), reason('missing_certificate'));
  });

  it('mixed: token or CA accepted; a receiver with both prefers certificates', () => {
    const both = (n: typeof nodeA): HandshakeAuth => ({ ...auth(n), token: 'shared' });
    assert.equal(run(both(nodeA), both(nodeB)).f.method, 'ca');
    assert.equal(run(tok('shared'), both(nodeB)).f.method, 'token');
    assert.equal(run(auth(nodeA), both(nodeB)).f.method, 'ca');
    assert.equal(run(both(nodeA), tok('shared')).f.method, 'token');
    assert.throws(() => run({ ...both(nodeA), token: 'other' }, tok('shared')), reason('token_mismatch'));
  });

  it('rejects travel as control payloads and come back with their reason', () => {
    const e = new PeerAuthError('unknown_ca', 'DWCP sender certificate is not signed by the cluster CA');
    const back = decodeReject(encodeReject(e), 'DWCP receiver');
    assert.equal(back.reason, 'unknown_ca');
    assert.equal(back.byPeer, true);
    assert.match(back.message, /^DWCP receiver refused the handshake: DWCP sender certificate/);
    assert.throws(
      () => decodeReject(Buffer.from('{"t":"auth-reject","reason":"nope","message":"x"}'), 'x'),
      ProtocolError,
    );
    assert.throws(() => decodeReject(Buffer.from('not json'), 'x'), ProtocolError);
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
