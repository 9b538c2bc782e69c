// The rules tying cluster.etcd.endpoints to the TLS and auth keys, PEM file errors, and the cause classifier.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NovaCronError } from '../errors.js';
import { etcdFailureCause, loadEtcdSecurity, planEtcdSecurity, type EtcdConfig } from './etcd-security.js';

const base: EtcdConfig = {
  endpoints: ['http://127.0.0.1:2379'],
  lease_ttl_seconds: 4,
  prefix: '/novacron',
  tls: { ca_file: '', cert_file: '', key_file: '' },
  username: '',
  password: '',
};
const withTls = (tls: Partial<EtcdConfig['tls']>, endpoints = ['https://127.0.0.1:2379']): EtcdConfig => ({
  ...base,
  endpoints,
  tls: { ...base.tls, ...tls },
});

function throwsKey(fn: () => unknown, key: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof NovaCronError, String(e));
    assert.equal(e.key, key);
    assert.match(e.message, re);
    return true;
  });
}

test('plain endpoints: no TLS, no auth; bare host:port counts as plain', () => {
  assert.deepEqual(planEtcdSecurity(base), { tls: null, auth: null });
  assert.deepEqual(planEtcdSecurity({ ...base, endpoints: ['127.0.0.1:2379'] }), { tls: null, auth: null });
});

test('https: CA required; client certificate optional but cert and key together', () => {
  throwsKey(() => planEtcdSecurity(withTls({})), 'cluster.etcd.tls.ca_file', /https:\/\/.*ca_file is empty/);
  assert.deepEqual(planEtcdSecurity(withTls({ ca_file: '/ca.pem' })).tls, { caFile: '/ca.pem' });
  assert.deepEqual(planEtcdSecurity(withTls({ ca_file: '/ca', cert_file: '/c', key_file: '/k' })).tls, {
    caFile: '/ca',
    certFile: '/c',
    keyFile: '/k',
  });
  throwsKey(
    () => planEtcdSecurity(withTls({ ca_file: '/ca', cert_file: '/c' })),
    'cluster.etcd.tls.key_file',
    /set together/,
  );
});

test('http endpoints with TLS files, mixed schemes and other schemes are errors naming the key', () => {
  throwsKey(
    () => planEtcdSecurity(withTls({ cert_file: '/c', key_file: '/k' }, ['http://127.0.0.1:2379'])),
    'cluster.etcd.tls.cert_file',
    /not https/,
  );
  throwsKey(
    () => planEtcdSecurity(withTls({ ca_file: '/ca' }, ['https://a:2379', 'http://b:2379'])),
    'cluster.etcd.endpoints',
    /mixes http/,
  );
  throwsKey(
    () => planEtcdSecurity({ ...base, endpoints: ['unix://x'] }),
    'cluster.etcd.endpoints',
    /scheme unix/,
  );
});

test('username and password go together; the password is not in the error', () => {
  throwsKey(() => planEtcdSecurity({ ...base, username: 'root' }), 'cluster.etcd.password', /together/);
  assert.throws(
    () => planEtcdSecurity({ ...base, password: 'hunter2' }),
    (e: unknown) =>
      e instanceof NovaCronError && e.key === 'cluster.etcd.username' && !e.message.includes('hunter2'),
  );
  assert.deepEqual(planEtcdSecurity({ ...base, username: 'root', password: 'pw' }).auth, {
    username: 'root',
    password: 'pw',
  });
});

test('unreadable or non-PEM files: the error names the key and the path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nc-etcd-sec-'));
  try {
    const missing = join(dir, 'nope.pem');
    await assert.rejects(loadEtcdSecurity(withTls({ ca_file: missing })), (e: unknown) => {
      assert.ok(e instanceof NovaCronError);
      assert.equal(e.key, 'cluster.etcd.tls.ca_file');
      assert.equal(e.message, `cannot read cluster.etcd.tls.ca_file ${missing}: ENOENT`);
      return true;
    });
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'not a certificate');
    await assert.rejects(
      loadEtcdSecurity(withTls({ ca_file: junk })),
      /cluster\.etcd\.tls\.ca_file .*junk\.pem is not PEM/,
    );
    const pem = join(dir, 'ca.pem');
    writeFileSync(pem, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    const loaded = await loadEtcdSecurity({ ...withTls({ ca_file: pem }), username: 'u', password: 'p' });
    assert.ok(loaded.tls?.ca.toString('utf8').includes('BEGIN CERTIFICATE'));
    assert.equal(loaded.tls?.cert, undefined);
    assert.deepEqual(loaded.auth, { username: 'u', password: 'p' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('etcdFailureCause: TLS, credential and connection failures as seen from grpc-js and etcd', () => {
  const cause = (m: string) => etcdFailureCause(new Error(m));
  assert.match(
    cause(
      '14 UNAVAILABLE: No connection established. Last error: Error: certificate signature failure. Resolution note: ',
    ),
    /^certificate signed by unknown authority: cluster\.etcd\.tls\.ca_file .*\(certificate signature failure\)$/,
  );
  assert.match(
    cause(
      '14 UNAVAILABLE: No connection established. Last error: Error: self-signed certificate in certificate chain',
    ),
    /^certificate signed by unknown authority/,
  );
  assert.match(
    cause(
      '14 UNAVAILABLE: No connection established. Last error: 800C2B29AD7F0000:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 42\n (2026-11-25T02:47:14.478Z). Resolution note: ',
    ),
    /^TLS handshake failed: etcd rejected the client certificate \(sslv3 alert bad certificate\); set cluster\.etcd\.tls\.cert_file/,
  );
  assert.match(
    cause(
      '14 UNAVAILABLE: No connection established. Last error: Error: Client network socket disconnected before secure TLS connection was established. Resolution note: ',
    ),
    /does not speak TLS/,
  );
  assert.match(
    cause(
      "14 UNAVAILABLE: No connection established. Last error: Error: Hostname/IP does not match certificate's altnames: IP: 10.0.0.9 is not in the cert's list: 127.0.0.1, ::1",
    ),
    /^TLS handshake failed: the server certificate does not name this host \(Hostname\/IP does not match/,
  );
  assert.equal(
    cause('3 INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password'),
    'authentication failed: wrong cluster.etcd.username or cluster.etcd.password',
  );
  assert.match(cause('3 INVALID_ARGUMENT: etcdserver: user name is empty'), /requires authentication/);
  assert.match(
    cause('9 FAILED_PRECONDITION: etcdserver: authentication is not enabled'),
    /not enabled in etcd/,
  );
  assert.equal(
    cause(
      '14 UNAVAILABLE: No connection established. Last error: Failed to connect (2026-11-25T02:47:14.638Z). Resolution note: ',
    ),
    'Failed to connect',
  );
});
