// The Vault client against a minimal HTTP server that speaks the KV v2 read API (no real Vault
// server can be installed on the build machine; see docs/security.md).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { NovaCronError } from '../errors.js';
import { defaultConfig } from '../config/defaults.js';
import { applyVaultSecrets, readVaultSecret, resolveVaultSecrets } from './vault.js';

const TOKEN = 'hvs.test-token-123';
let server: Server;
let address = '';
const seen: { url: string; token: string | undefined }[] = [];

before(async () => {
  server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', token: req.headers['x-vault-token'] as string | undefined });
    if (req.headers['x-vault-token'] !== TOKEN) {
      res.writeHead(403, { 'content-type': 'application/json' }).end('{"errors":["permission denied"]}');
      return;
    }
    if (req.url === '/v1/secret/data/novacron') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          data: {
            data: { 'database.password': 'pg-from-vault', jwt_secret: 'j'.repeat(40), unrelated: 'x', n: 5 },
            metadata: { version: 3 },
          },
        }),
      );
      return;
    }
    if (req.url === '/v1/kv1/data/novacron') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":{"password":"kv1-shape"}}');
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[]}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  address = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

after(() => {
  server.close();
});

test('reads a KV v2 secret with the X-Vault-Token header from /v1/<mount>/data/<path>', async () => {
  const s = await readVaultSecret({
    address: `${address}/`,
    token: TOKEN,
    mount: 'secret',
    path: 'novacron',
  });
  assert.deepEqual(s, { 'database.password': 'pg-from-vault', jwt_secret: 'j'.repeat(40), unrelated: 'x' });
  assert.deepEqual(seen.at(-1), { url: '/v1/secret/data/novacron', token: TOKEN });
});

test('a refused token, a missing path, a KV v1 answer and an unreachable Vault are clear errors without the token', async () => {
  const cases: [Parameters<typeof readVaultSecret>[0], string, RegExp][] = [
    [
      { address, token: 'wrong', mount: 'secret', path: 'novacron' },
      'permission_denied',
      /refused the token/,
    ],
    [{ address, token: TOKEN, mount: 'secret', path: 'other' }, 'not_found', /no secret at/],
    [{ address, token: TOKEN, mount: 'kv1', path: 'novacron' }, 'protocol', /not a KV v2 secret/],
    [
      { address: 'http://127.0.0.1:1', token: TOKEN, mount: 'secret', path: 'novacron' },
      'unavailable',
      /vault unavailable: http:\/\/127\.0\.0\.1:1/,
    ],
  ];
  for (const [source, code, message] of cases) {
    await assert.rejects(readVaultSecret(source), (e: unknown) => {
      assert.ok(e instanceof NovaCronError);
      assert.equal(e.code, code);
      assert.match(e.message, message);
      assert.ok(!e.describe().includes(source.token), 'the token is not in the error');
      return true;
    });
  }
});

test('applyVaultSecrets fills only empty secret keys, by dotted or short name, and leaves the input alone', () => {
  const config = defaultConfig();
  config.cache.password = 'explicit';
  const { config: out, filled } = applyVaultSecrets(config, {
    'database.password': 'a',
    jwt_secret: 'b',
    cache_password: 'c',
    'system.node_id': 'not-a-secret',
  });
  assert.deepEqual(filled.sort(), ['database.password', 'security.jwt_secret']);
  assert.equal(out.database.password, 'a');
  assert.equal(out.security.jwt_secret, 'b');
  assert.equal(out.cache.password, 'explicit');
  assert.equal(out.system.node_id, config.system.node_id);
  assert.equal(config.database.password, '');
});

test('resolveVaultSecrets: off without an address; fills from the server with one', async () => {
  const config = defaultConfig();
  assert.equal((await resolveVaultSecrets(config)).config, config);
  config.security.vault_address = address;
  config.security.vault_token = TOKEN;
  const { config: out, filled } = await resolveVaultSecrets(config);
  assert.deepEqual(filled.sort(), ['database.password', 'security.jwt_secret']);
  assert.equal(out.database.password, 'pg-from-vault');
});
