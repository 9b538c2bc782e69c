import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureAdminToken, loadSigningKey } from './key-store.js';
import { TokenAuthority } from './tokens.js';

const dir = () => mkdtempSync(join(tmpdir(), 'nc-keys-'));

test('first start writes jwt.key and admin.token with mode 0600; the second start keeps both', async () => {
  const d = dir();
  const k1 = await loadSigningKey(d, '');
  assert.equal(k1.created, true);
  assert.equal(statSync(join(d, 'jwt.key')).mode & 0o777, 0o600);
  const a1 = new TokenAuthority(k1.key);
  const t1 = await ensureAdminToken(d, a1);
  assert.equal(t1.created, true);
  assert.equal(statSync(t1.path).mode & 0o777, 0o600);
  const token = readFileSync(t1.path, 'utf8').trim();
  assert.equal((await a1.verify(token)).scope, 'admin');

  const k2 = await loadSigningKey(d, '');
  assert.equal(k2.created, false);
  assert.deepEqual(Buffer.from(k2.key), Buffer.from(k1.key));
  const t2 = await ensureAdminToken(d, new TokenAuthority(k2.key));
  assert.equal(t2.created, false);
  assert.equal(readFileSync(t2.path, 'utf8').trim(), token);
});

test('a group-readable admin token is tightened to 0600', async () => {
  const d = dir();
  const a = new TokenAuthority((await loadSigningKey(d, '')).key);
  const { path } = await ensureAdminToken(d, a);
  chmodSync(path, 0o644);
  await ensureAdminToken(d, a);
  assert.equal(statSync(path).mode & 0o777, 0o600);
});

test('when the signing key changes (security.jwt_secret set), the admin token is re-issued', async () => {
  const d = dir();
  const first = new TokenAuthority((await loadSigningKey(d, '')).key);
  await ensureAdminToken(d, first);
  const secret = 's'.repeat(40);
  const k = await loadSigningKey(d, secret);
  assert.equal(k.source, 'config');
  const second = new TokenAuthority(k.key);
  const r = await ensureAdminToken(d, second);
  assert.equal(r.created, true);
  assert.equal((await second.verify(readFileSync(r.path, 'utf8').trim())).scope, 'admin');
});

test('a damaged jwt.key is an integrity error naming the file', async () => {
  const d = dir();
  writeFileSync(join(d, 'jwt.key'), 'short\n', { mode: 0o600 });
  await assert.rejects(loadSigningKey(d, ''), /jwt\.key is damaged/);
});
