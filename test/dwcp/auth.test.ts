// DWCP authentication over real loopback sockets: nodes with certificates from one cluster CA move
// a file without a shared token; another CA, an expired certificate, a wrong peer name, a tampered
// or replayed signature, a missing certificate and a wrong token each fail with the named cause on
// BOTH ends and leave no file; token mode and mixed mode still work.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReceiver, type FileReceiver } from '../../src/dwcp/file-receiver.js';
import { sendFile } from '../../src/dwcp/file-sender.js';
import type { ConnectionSecurity } from '../../src/dwcp/transport/connection.js';
import { encodeFrame, FrameParser, FrameType, type Frame } from '../../src/dwcp/encoding/frame.js';
import type { NovaCronError } from '../../src/errors.js';
import { certificateAuthFromPem, PeerAuthError, type PeerAuthReason } from '../../src/security/peer-certs.js';
import { issueCert, makeCa, type TestCa, type TestCert } from '../../src/security/test-pki.js';

const DAY = 86400_000;
let work: string;
let ca: TestCa;
let otherCa: TestCa;
let rxCert: TestCert;
let txCert: TestCert;

function certSec(n: TestCert, trust: string, extra: Partial<ConnectionSecurity> = {}): ConnectionSecurity {
  return {
    encrypt: true,
    certificate: certificateAuthFromPem({ cert: n.chainPem, key: n.key, ca: trust }),
    ...extra,
  };
}

interface Rx {
  rx: FileReceiver;
  dir: string;
  errors: NovaCronError[];
}

let n = 0;
async function receiver(security: ConnectionSecurity): Promise<Rx> {
  const dir = join(work, `rx-${++n}`);
  mkdirSync(dir);
  const errors: NovaCronError[] = [];
  const rx = await createReceiver({
    dir,
    host: '127.0.0.1',
    port: 0,
    security,
    onError: (e) => errors.push(e),
  });
  return { rx, dir, errors };
}

function file(bytes: number): { path: string; data: Buffer } {
  const data = Buffer.concat([randomBytes(bytes >> 1), Buffer.alloc(bytes >> 2), randomBytes(bytes >> 2)]);
  const path = join(work, `f-${++n}.bin`);
  writeFileSync(path, data);
  return { path, data };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function send(r: Rx, security: ConnectionSecurity, port = r.rx.address.port) {
  const f = file(1 << 20);
  const name = `t-${n}.bin`;
  const run = sendFile(f.path, {
    host: '127.0.0.1',
    port,
    security,
    streams: 2,
    codec: { codec: 'zstd', level: 1 },
    name,
  });
  return { f, name, run };
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

/** Sender fails with `reason`, the receiver reports the same reason, and nothing was written. */
async function expectRefused(r: Rx, sec: ConnectionSecurity, reason: PeerAuthReason, port?: number) {
  const { run, name } = await send(r, sec, port);
  await assert.rejects(run, (e: unknown) => {
    assert.ok(e instanceof PeerAuthError, `sender: expected PeerAuthError, got ${String(e)}`);
    assert.equal(e.reason, reason, e.message);
    return true;
  });
  await waitFor(() => r.errors.some((e) => e instanceof PeerAuthError), 'the receiver to report');
  const rxErr = r.errors.find((e) => e instanceof PeerAuthError) as PeerAuthError;
  assert.equal(rxErr.reason, reason, `receiver: ${rxErr.message}`);
  assert.deepEqual(
    readdirSync(r.dir).filter((f) => f.includes(name)),
    [],
    'nothing of the transfer is written',
  );
  r.errors.length = 0;
}

describe('DWCP authentication (loopback)', () => {
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'dwcp-auth-'));
    ca = makeCa('NovaCron cluster CA');
    otherCa = makeCa('Some other CA');
    rxCert = issueCert(ca, { cn: 'node-rx', dns: ['node-rx'], ips: ['127.0.0.1'] });
    txCert = issueCert(ca, { cn: 'node-tx', dns: ['node-tx'] });
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it('moves a file byte-identical between nodes with certificates from the same CA, no token', async () => {
    const r = await receiver(certSec(rxCert, ca.cert, { peerNames: ['node-tx'] }));
    try {
      const { f, name, run } = await send(r, certSec(txCert, ca.cert, { peerNames: ['node-rx'] }));
      const summary = await run;
      assert.equal(summary.bytes, f.data.length);
      assert.equal(sha(readFileSync(join(r.dir, name))), sha(f.data));
      assert.deepEqual(r.errors, []);
    } finally {
      await r.rx.close();
    }
  });

  it('refuses, with the named cause on both ends: another CA, expired, wrong name, missing certificate, token mismatch', async () => {
    const r = await receiver(certSec(rxCert, ca.cert));
    try {
      // The sender's certificate is from another CA.
      const stranger = issueCert(otherCa, { cn: 'node-x', dns: ['node-x'] });
      await expectRefused(r, certSec(stranger, ca.cert), 'unknown_ca');
      // The sender does not trust the receiver's CA.
      await expectRefused(r, certSec(txCert, otherCa.cert), 'unknown_ca');
      // Expired sender certificate.
      const expired = issueCert(ca, {
        cn: 'node-old',
        dns: ['node-old'],
        notBefore: new Date(Date.now() - 30 * DAY),
        notAfter: new Date(Date.now() - DAY),
      });
      await expectRefused(r, certSec(expired, ca.cert), 'certificate_expired');
      // The receiver is not the node the sender meant.
      await expectRefused(r, certSec(txCert, ca.cert, { peerNames: ['node-7'] }), 'wrong_peer_name');
      // A token-only sender to a CA-only receiver.
      await expectRefused(r, { encrypt: true, token: 'a-token' }, 'missing_certificate');
    } finally {
      await r.rx.close();
    }
    // The receiver accepts only a named sender.
    const picky = await receiver(certSec(rxCert, ca.cert, { peerNames: ['node-9'] }));
    try {
      await expectRefused(picky, certSec(txCert, ca.cert), 'wrong_peer_name');
    } finally {
      await picky.rx.close();
    }
    // Token mode: a wrong token.
    const t = await receiver({ encrypt: true, token: 'right' });
    try {
      await expectRefused(t, { encrypt: true, token: 'wrong' }, 'token_mismatch');
    } finally {
      await t.rx.close();
    }
  });

  it('refuses a tampered and a replayed receiver signature (bad_signature on both ends)', async () => {
    const r = await receiver(certSec(rxCert, ca.cert));
    const proxy = new ReplyProxy(r.rx.address.port);
    await proxy.listen();
    try {
      // Flip a byte inside the signature, fixing the frame CRC so only the signature is wrong.
      proxy.rewrite = (p) => {
        const b = Buffer.from(p);
        b[b.length - 40] = b[b.length - 40]! ^ 0x10;
        return b;
      };
      await expectRefused(r, certSec(txCert, ca.cert), 'bad_signature', proxy.port);
      // Record a genuine HelloReply, then play it to a later Hello.
      proxy.rewrite = (p) => {
        proxy.recorded ??= Buffer.from(p);
        return p;
      };
      const ok = await send(r, certSec(txCert, ca.cert), proxy.port);
      await ok.run;
      assert.ok(proxy.recorded);
      const old = proxy.recorded;
      proxy.rewrite = () => old;
      await expectRefused(r, certSec(txCert, ca.cert), 'bad_signature', proxy.port);
    } finally {
      await proxy.close();
      await r.rx.close();
    }
  });

  it('token mode still works, and mixed mode accepts either', async () => {
    const t = await receiver({ encrypt: true, token: 'tok' });
    const mixed = await receiver({ ...certSec(rxCert, ca.cert), token: 'tok' });
    try {
      for (const [r, sec] of [
        [t, { encrypt: true, token: 'tok' }],
        [mixed, { encrypt: true, token: 'tok' }],
        [mixed, certSec(txCert, ca.cert)],
        [mixed, { ...certSec(txCert, ca.cert), token: 'tok' }],
        [t, { ...certSec(txCert, ca.cert), token: 'tok' }],
      ] as const) {
        const { f, name, run } = await send(r, sec);
        await run;
        assert.ok(readFileSync(join(r.dir, name)).equals(f.data));
      }
      // Mixed sender with a wrong token and a certificate from another CA: refused by the
      // certificate (the receiver prefers it).
      const stranger = issueCert(otherCa, { cn: 'node-y' });
      await expectRefused(mixed, { ...certSec(stranger, ca.cert), token: 'nope' }, 'unknown_ca');
      // A certificate-only sender to a token-only receiver.
      await expectRefused(t, certSec(txCert, ca.cert), 'auth_mode_mismatch');
    } finally {
      await t.rx.close();
      await mixed.rx.close();
    }
  });
});

/**
 * A TCP relay that hands the server's HelloReply payload (the first frame of each connection) to
 * `rewrite` and forwards what it returns, re-framed with a correct CRC; everything else passes.
 */
class ReplyProxy {
  rewrite: (payload: Buffer) => Buffer = (p) => p;
  recorded: Buffer | undefined;
  private server: Server;
  private socks = new Set<Socket>();
  port = 0;

  constructor(private readonly target: number) {
    this.server = createServer((client) => {
      const upstream = connect({ host: '127.0.0.1', port: this.target });
      this.socks.add(client).add(upstream);
      const parser = new FrameParser({ maxPayload: 64 * 1024 });
      let first = true;
      client.pipe(upstream);
      upstream.on('data', (d: Buffer) => {
        if (!first) {
          client.write(d);
          return;
        }
        const frames: Frame[] = parser.push(d);
        for (const f of frames) {
          if (first && f.type === FrameType.HelloReply) {
            first = false;
            client.write(encodeFrame(f.type, f.seq, this.rewrite(f.payload)));
          } else client.write(encodeFrame(f.type, f.seq, f.payload));
        }
      });
      const kill = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('end', () => upstream.end()).on('error', kill);
      upstream.on('end', () => client.end()).on('error', kill);
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    for (const s of this.socks) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
