// Peer certificate checks outside the handshake: ECDSA and Ed25519 keys (certificates made with
// openssl), a chain sent out of order, CN as the name when there are no DNS SANs, and the loader's
// limits.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import {
  certificateAuthFromPem,
  certificateNames,
  PeerAuthError,
  signTranscript,
  verifyPeerChain,
  verifyTranscript,
} from './peer-certs.js';
import { issueCert, makeCa } from './test-pki.js';
import { ConfigError } from '../errors.js';

function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}
const openssl = haveOpenssl();
if (!openssl && process.env.CI === 'true') throw new Error('openssl is required for these tests in CI');

describe('peer certificates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peer-certs-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it(
    'signs and verifies transcripts with ECDSA P-256 and Ed25519 certificates (openssl)',
    { skip: !openssl },
    () => {
      const o = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
      const f = (p: string) => readFileSync(join(dir, p), 'utf8');
      o(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key']);
      o([
        'req',
        '-x509',
        '-new',
        '-key',
        'ca.key',
        '-subj',
        '/CN=EC CA',
        '-days',
        '2',
        '-out',
        'ca.pem',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign',
      ]);
      writeFileSync(
        join(dir, 'ext'),
        'subjectAltName=DNS:node-ec,IP:10.1.2.3\nkeyUsage=critical,digitalSignature\n',
      );
      for (const [name, gen] of [
        ['ec', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ec.key']],
        ['ed', ['genpkey', '-algorithm', 'ed25519', '-out', 'ed.key']],
      ] as const) {
        o([...gen]);
        o(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=node-${name}`, '-out', `${name}.csr`]);
        o([
          'x509',
          '-req',
          '-in',
          `${name}.csr`,
          '-CA',
          'ca.pem',
          '-CAkey',
          'ca.key',
          '-CAcreateserial',
          '-days',
          '2',
          '-extfile',
          'ext',
          '-out',
          `${name}.pem`,
        ]);
        const auth = certificateAuthFromPem({
          cert: f(`${name}.pem`),
          key: f(`${name}.key`),
          ca: f('ca.pem'),
        });
        const leaf = verifyPeerChain(auth.chain, auth.trusted, { peerNames: ['10.1.2.3'] });
        const data = Buffer.from('transcript');
        const sig = signTranscript(auth.key, data);
        assert.ok(verifyTranscript(leaf, data, sig), name);
        assert.ok(!verifyTranscript(leaf, Buffer.from('other'), sig), name);
        assert.throws(
          () => verifyPeerChain(auth.chain, auth.trusted, { peerNames: ['10.1.2.4'] }),
          (e: unknown) => e instanceof PeerAuthError && e.reason === 'wrong_peer_name',
        );
      }
    },
  );

  it('walks intermediates in order, refuses a chain out of order, names by CN without DNS SANs', () => {
    const root = makeCa('Root');
    const inter = issueCert(root, { cn: 'Inter', ca: true });
    const leaf = issueCert(inter, { cn: 'node-cn' });
    const auth = certificateAuthFromPem({ cert: leaf.chainPem, key: leaf.key, ca: root.cert });
    assert.equal(auth.chain.length, 2);
    const got = verifyPeerChain(auth.chain, auth.trusted, { peerNames: ['node-cn'] });
    assert.ok(certificateNames(got, 'node-cn'));
    assert.ok(!certificateNames(got, 'node-cx'));
    // Leaf missing its intermediate: the root did not sign it.
    assert.throws(
      () => verifyPeerChain([auth.chain[0]!], auth.trusted),
      (e: unknown) => e instanceof PeerAuthError && e.reason === 'unknown_ca',
    );
    // A broken chain: what follows the leaf is not its issuer.
    assert.throws(
      () => verifyPeerChain([auth.chain[0]!, auth.chain[0]!], auth.trusted),
      (e: unknown) =>
        e instanceof PeerAuthError && e.reason === 'bad_certificate' && /chain is broken/.test(e.message),
    );
    // An intermediate presented as the leaf: it may not sign handshakes (keyUsage).
    assert.throws(
      () => verifyPeerChain([auth.chain[1]!], auth.trusted),
      (e: unknown) => e instanceof PeerAuthError && e.reason === 'certificate_usage',
    );
    assert.throws(
      () => verifyPeerChain([Buffer.from('junk')], auth.trusted),
      (e: unknown) => e instanceof PeerAuthError && e.reason === 'bad_certificate',
    );
    assert.throws(
      () => verifyPeerChain([], auth.trusted),
      (e: unknown) => e instanceof PeerAuthError && e.reason === 'missing_certificate',
    );
    assert.ok(new X509Certificate(auth.chain[1]!).ca);
  });

  it('refuses more than 8 certificates in a chain file', () => {
    const root = makeCa('Root 2');
    const leaf = issueCert(root, { cn: 'n' });
    assert.throws(
      () => certificateAuthFromPem({ cert: leaf.chainPem.repeat(9), key: leaf.key, ca: root.cert }),
      (e: unknown) => e instanceof ConfigError && /at most 8 certificates/.test(e.message),
    );
  });
});
