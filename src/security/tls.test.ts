import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isLoopbackHost, loadTlsMaterial, tlsRequired } from './tls.js';

test('isLoopbackHost', () => {
  for (const h of [
    '127.0.0.1',
    '127.0.0.2',
    'localhost',
    '::1',
    '[::1]',
    '::ffff:127.0.0.1',
    'a.localhost',
  ]) {
    assert.equal(isLoopbackHost(h), true, h);
  }
  for (const h of [
    '0.0.0.0',
    '::',
    '10.0.0.1',
    '192.168.1.2',
    'example.com',
    '128.0.0.1',
    '::ffff:10.0.0.1',
  ]) {
    assert.equal(isLoopbackHost(h), false, h);
  }
});

test('tlsRequired: on always, auto beyond loopback, off only on loopback', () => {
  const table: [Parameters<typeof tlsRequired>[0], string, boolean | 'error'][] = [
    ['on', '127.0.0.1', true],
    ['on', '0.0.0.0', true],
    ['auto', '127.0.0.1', false],
    ['auto', '::1', false],
    ['auto', '0.0.0.0', true],
    ['auto', '10.1.2.3', true],
    ['off', '127.0.0.1', false],
    ['off', '0.0.0.0', 'error'],
  ];
  for (const [setting, host, want] of table) {
    if (want === 'error')
      assert.throws(() => tlsRequired(setting, host), /requires TLS/, `${setting} ${host}`);
    else assert.equal(tlsRequired(setting, host), want, `${setting} ${host}`);
  }
});

test('generated material: a CA-signed server cert for localhost and the bind address, reused on the next start', async () => {
  const d = mkdtempSync(join(tmpdir(), 'nc-tls-'));
  const tls = { enabled: 'on' as const, cert_file: '', key_file: '', ca_file: '' };
  const m1 = await loadTlsMaterial(tls, d, '10.9.8.7');
  assert.equal(m1.generated, true);
  const cert = new X509Certificate(m1.cert);
  const ca = new X509Certificate(m1.ca!);
  assert.ok(cert.verify(ca.publicKey), 'signed by the CA');
  assert.ok(cert.checkHost('localhost'));
  assert.ok(cert.checkIP('127.0.0.1'));
  assert.ok(cert.checkIP('10.9.8.7'));
  assert.equal(ca.ca, true);
  const m2 = await loadTlsMaterial(tls, d, '10.9.8.7');
  assert.equal(m2.generated, false);
  assert.equal(m2.cert, m1.cert);
  // A new bind address the certificate does not cover: a new server cert from the same CA.
  const m3 = await loadTlsMaterial(tls, d, '10.9.8.8');
  assert.equal(m3.generated, true);
  assert.equal(m3.ca, m1.ca);
  assert.ok(new X509Certificate(m3.cert).checkIP('10.9.8.8'));
});

test('configured cert and key must come together and be readable', async () => {
  const d = mkdtempSync(join(tmpdir(), 'nc-tls-'));
  await assert.rejects(
    loadTlsMaterial({ enabled: 'on', cert_file: '/x.crt', key_file: '', ca_file: '' }, d, '127.0.0.1'),
    /must be set together/,
  );
  await assert.rejects(
    loadTlsMaterial(
      { enabled: 'on', cert_file: '/nonexistent.crt', key_file: '/nonexistent.key', ca_file: '' },
      d,
      '127.0.0.1',
    ),
    /cannot read security\.tls\.cert_file \/nonexistent\.crt: ENOENT/,
  );
});
