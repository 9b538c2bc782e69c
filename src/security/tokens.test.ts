import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { NovaCronError } from '../errors.js';
import { TokenAuthority, VERIFIED_CACHE_MAX, bearerToken, parseTtl, scopeAllows } from './tokens.js';

const key = randomBytes(32);

test('a token carries its scope, subject and expiry; verify returns them', async () => {
  let now = 1_700_000_000_000;
  const a = new TokenAuthority(key, () => now);
  const t = await a.issue({ scope: 'read', ttlSeconds: 3600, subject: 'alice' });
  const c = await a.verify(t);
  assert.deepEqual(
    { scope: c.scope, subject: c.subject, exp: c.expiresAt, iat: c.issuedAt },
    { scope: 'read', subject: 'alice', exp: 1_700_003_600, iat: 1_700_000_000 },
  );
  now += 3601_000;
  await assert.rejects(a.verify(t), /token expired/);
});

test('tokens without a TTL never expire; tokens from another key or tampered ones are rejected', async () => {
  const a = new TokenAuthority(key);
  const b = new TokenAuthority(randomBytes(32));
  const t = await a.issue({ scope: 'admin' });
  assert.equal((await a.verify(t)).expiresAt, null);
  await assert.rejects(
    b.verify(t),
    (e: unknown) => e instanceof NovaCronError && e.code === 'unauthenticated',
  );
  const [h, p, s] = t.split('.');
  const forgedPayload = Buffer.from(
    JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), scope: 'admin', sub: 'x' }),
  ).toString('base64url');
  await assert.rejects(a.verify(`${h}.${forgedPayload}.${s}`), /signature invalid|token invalid/);
  await assert.rejects(a.verify('garbage'), /token invalid/);
});

test('errors never contain the token', async () => {
  const a = new TokenAuthority(key);
  const t = await a.issue({ scope: 'read' });
  const bad = `${t}x`;
  await assert.rejects(a.verify(bad), (e: unknown) => {
    assert.ok(e instanceof NovaCronError);
    assert.ok(!e.describe().includes(bad.slice(-20)));
    return true;
  });
});

test('authorize: missing -> unauthenticated, read on admin -> permission_denied, admin does everything', async () => {
  const a = new TokenAuthority(key);
  const read = await a.issue({ scope: 'read' });
  const admin = await a.issue({ scope: 'admin' });
  await assert.rejects(
    a.authorize(null, 'read'),
    (e: unknown) => e instanceof NovaCronError && e.code === 'unauthenticated',
  );
  await assert.rejects(
    a.authorize(read, 'admin'),
    (e: unknown) => e instanceof NovaCronError && e.code === 'permission_denied',
  );
  assert.equal((await a.authorize(read, 'read')).scope, 'read');
  assert.equal((await a.authorize(admin, 'read')).scope, 'admin');
  assert.equal((await a.authorize(admin, 'admin')).scope, 'admin');
});

test('scopeAllows table', () => {
  assert.equal(scopeAllows('admin', 'admin'), true);
  assert.equal(scopeAllows('admin', 'read'), true);
  assert.equal(scopeAllows('read', 'read'), true);
  assert.equal(scopeAllows('read', 'admin'), false);
});

test('a signing key shorter than 32 bytes is refused', () => {
  assert.throws(() => new TokenAuthority(new Uint8Array(16)), /at least 32 bytes/);
});

test('parseTtl', () => {
  assert.equal(parseTtl('24h'), 86400);
  assert.equal(parseTtl('30m'), 1800);
  assert.equal(parseTtl('7d'), 604800);
  assert.equal(parseTtl('90'), 90);
  for (const bad of ['', 'h', '1y', '-1h', '0h', '1.5h']) assert.throws(() => parseTtl(bad), /TTL/, bad);
  fc.assert(fc.property(fc.integer({ min: 1, max: 100000 }), (n) => parseTtl(`${n}m`) === n * 60));
});

test('bearerToken', () => {
  assert.equal(bearerToken('Bearer abc.def'), 'abc.def');
  assert.equal(bearerToken('bearer   abc '), 'abc');
  assert.equal(bearerToken('Basic abc'), null);
  assert.equal(bearerToken(undefined), null);
  assert.equal(bearerToken(['Bearer x', 'Bearer y']), 'x');
  assert.equal(bearerToken('Bearer a b'), null);
});

test('a verified token is remembered by its exact text, never past its expiry', async () => {
  let now = 1_700_000_000_000;
  const a = new TokenAuthority(key, () => now);
  const t = await a.issue({ scope: 'read', ttlSeconds: 100 });
  assert.equal((await a.verify(t)).scope, 'read');
  assert.equal((await a.verify(t)).scope, 'read');
  // Tampered text is a different key: verified in full and refused.
  await assert.rejects(a.verify(`${t}x`), /signature invalid|token invalid/);
  // One ms before the expiry second it is still valid; at the expiry it is refused although it
  // was verified moments ago.
  now = 1_700_000_099_999;
  assert.equal((await a.verify(t)).scope, 'read');
  now = 1_700_000_100_000;
  await assert.rejects(a.verify(t), /token expired/);
  // A token without expiry is verified again in full after the cache window.
  const forever = await a.issue({ scope: 'admin' });
  await a.verify(forever);
  now += 10 * 60_000;
  assert.equal((await a.verify(forever)).scope, 'admin');
  // Bounded: many distinct tokens do not grow it without limit.
  for (let i = 0; i < VERIFIED_CACHE_MAX + 50; i++)
    await a.verify(await a.issue({ scope: 'read', subject: `s${i}` }));
  assert.equal(a.rememberedTokens, VERIFIED_CACHE_MAX);
  assert.equal((await a.verify(forever)).scope, 'admin');
});
