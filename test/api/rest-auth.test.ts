// REST API against a real node: every route but health, metrics, OpenAPI and docs needs a token
// (401 without or with a bad one, 403 for too small a scope), one error body everywhere, 400 for
// malformed JSON, 413 above api.body_limit_bytes, and no secret in any log line or error.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { apiComponent } from '../../src/components/api.js';
import type { RoutePlugin } from '../../src/api/rest/server.js';
import { TokenAuthority } from '../../src/security/tokens.js';
import { startTestNode, type TestNode } from './node-harness.js';

const BODY_LIMIT = 4096;
const DB_PASSWORD = 'pg-Secret-4f1c9e';
const JWT_SECRET = 'jwt-secret-that-is-long-enough-0123456789';

/** A POST route for the tests: echoes a validated JSON body (admin scope by default). */
const echoPlugin: RoutePlugin = (app) => {
  app.post(
    '/api/v1/test/echo',
    {
      schema: {
        body: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
      },
    },
    async (request) => ({ echoed: request.body }),
  );
};

let n: TestNode;
let readToken: string;
let authority: TokenAuthority;

before(async () => {
  n = await startTestNode({
    set: {
      'api.body_limit_bytes': BODY_LIMIT,
      'database.password': DB_PASSWORD,
      'security.jwt_secret': JWT_SECRET,
    },
    components: (list) =>
      list.map((c) =>
        c.name === 'api' ? apiComponent({ dependsOn: c.dependsOn, plugins: [echoPlugin] }) : c,
      ),
  });
  authority = new TokenAuthority(new TextEncoder().encode(JWT_SECRET));
  readToken = await authority.issue({ scope: 'read', ttlSeconds: 600 });
});

after(async () => {
  await n?.stop();
});

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

async function errorOf(res: Response): Promise<{ code: string; message: string; details: unknown }> {
  const body = (await res.json()) as { error: { code: string; message: string; details: unknown } };
  assert.deepEqual(Object.keys(body), ['error']);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'details', 'message']);
  return body.error;
}

test('health, metrics, OpenAPI and docs are served without a token', async () => {
  for (const path of ['/health/live', '/health/ready', '/metrics', '/openapi.json', '/docs/']) {
    const res = await fetch(`${n.url}${path}`);
    assert.equal(res.status, 200, path);
    await res.arrayBuffer();
  }
});

test('OpenAPI 3 lists the routes and the bearer scheme', async () => {
  const doc = (await (await fetch(`${n.url}/openapi.json`)).json()) as {
    openapi: string;
    paths: Record<string, unknown>;
    components: { securitySchemes: Record<string, { scheme: string }> };
  };
  assert.match(doc.openapi, /^3\./);
  for (const p of ['/api/v1/vms', '/api/v1/system/boot', '/health/ready', '/ws'])
    assert.ok(p in doc.paths, p);
  assert.equal(doc.components.securitySchemes.bearer?.scheme, 'bearer');
});

test('GET /api/v1/vms: 401 without a token, with a malformed, a forged or an expired one', async () => {
  const forged = await new TokenAuthority(new TextEncoder().encode('x'.repeat(40))).issue({ scope: 'admin' });
  const expired = await new TokenAuthority(
    new TextEncoder().encode(JWT_SECRET),
    () => Date.now() - 7200_000,
  ).issue({
    scope: 'admin',
    ttlSeconds: 60,
  });
  const cases: [string, Record<string, string>, RegExp][] = [
    ['none', {}, /missing token/],
    ['malformed', bearer('not-a-jwt'), /token invalid/],
    ['other scheme', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, /missing token/],
    ['forged', bearer(forged), /signature invalid/],
    ['expired', bearer(expired), /expired/],
  ];
  for (const [name, headers, message] of cases) {
    const res = await fetch(`${n.url}/api/v1/vms`, { headers });
    assert.equal(res.status, 401, name);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="novacron"');
    const err = await errorOf(res);
    assert.equal(err.code, 'unauthenticated', name);
    assert.match(err.message, message, name);
  }
});

test('GET /api/v1/vms with the admin token and with a read token: the empty list', async () => {
  for (const token of [n.adminToken, readToken]) {
    const res = await fetch(`${n.url}/api/v1/vms`, { headers: bearer(token) });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { items: [], next: null });
  }
});

test('a read token may GET but not POST: 403 with the scope named', async () => {
  const res = await fetch(`${n.url}/api/v1/test/echo`, {
    method: 'POST',
    headers: { ...bearer(readToken), 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'x' }),
  });
  assert.equal(res.status, 403);
  const err = await errorOf(res);
  assert.equal(err.code, 'permission_denied');
  assert.match(err.message, /scope admin.*scope read/);
  const ok = await fetch(`${n.url}/api/v1/test/echo`, {
    method: 'POST',
    headers: { ...bearer(n.adminToken), 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'x' }),
  });
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { echoed: { name: 'x' } });
});

test('malformed JSON and schema violations get 400, never 500', async () => {
  const post = (body: string) =>
    fetch(`${n.url}/api/v1/test/echo`, {
      method: 'POST',
      headers: { ...bearer(n.adminToken), 'content-type': 'application/json' },
      body,
    });
  for (const body of ['{bad', '{"name":', '[1,2', '\u0000', '{"name":"a"}}']) {
    const res = await post(body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal((await errorOf(res)).code, 'validation');
  }
  const res = await post('{"name":{"first":"a"}}');
  assert.equal(res.status, 400);
  assert.equal((await errorOf(res)).code, 'validation');
  const noName = await post('{}');
  assert.equal(noName.status, 400);
  assert.ok(Array.isArray((await errorOf(noName)).details));
});

test('a body above api.body_limit_bytes gets 413 (and 401 first when there is no token)', async () => {
  const big = JSON.stringify({ name: 'x'.repeat(BODY_LIMIT * 2) });
  const res = await fetch(`${n.url}/api/v1/test/echo`, {
    method: 'POST',
    headers: { ...bearer(n.adminToken), 'content-type': 'application/json' },
    body: big,
  });
  assert.equal(res.status, 413);
  assert.equal((await errorOf(res)).code, 'payload_too_large');
  const anon = await fetch(`${n.url}/api/v1/test/echo`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: big,
  });
  assert.equal(anon.status, 401);
  await anon.arrayBuffer();
});

test('unknown routes need a token too (401), then 404 in the one error body', async () => {
  assert.equal((await fetch(`${n.url}/api/v1/nope`)).status, 401);
  const res = await fetch(`${n.url}/api/v1/nope`, { headers: bearer(n.adminToken) });
  assert.equal(res.status, 404);
  assert.equal((await errorOf(res)).code, 'not_found');
});

test('the admin token file and the signing key are mode 0600; the log names the path, not the token', () => {
  const path = join(n.dataDir, 'admin.token');
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.match(n.log(), new RegExp(`admin token written to ${path.replaceAll('/', '\\/')}`));
});

test('secrets never appear in the log: tokens, the signing key, passwords', async () => {
  // Requests with tokens (good and bad) and a failing one, so that request handling has had a chance to log.
  await (await fetch(`${n.url}/api/v1/vms`, { headers: bearer(n.adminToken) })).arrayBuffer();
  await (await fetch(`${n.url}/api/v1/vms`, { headers: bearer(`${readToken}x`) })).arrayBuffer();
  const log = n.log() + readFileSync(join(n.dataDir, 'logs', 'novacron.log'), 'utf8');
  assert.ok(log.length > 0);
  for (const secret of [n.adminToken, readToken, JWT_SECRET, DB_PASSWORD]) {
    assert.ok(!log.includes(secret), `log contains a secret (${secret.slice(0, 6)}…)`);
    // A JWT's signature part alone must not leak either.
    const tail = secret.split('.').pop()!;
    assert.ok(!log.includes(tail), 'log contains a token signature');
  }
});
