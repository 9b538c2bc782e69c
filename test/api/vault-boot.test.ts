// Vault at boot, against a minimal HTTP server speaking the KV v2 read API (no real Vault can be
// installed here): the security component fills empty secret keys before the database and cache
// start, tokens are signed with the jwt_secret from Vault, and no secret value reaches the log.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { TokenAuthority } from '../../src/security/tokens.js';
import { startTestNode, type TestNode } from './node-harness.js';

const VAULT_TOKEN = 'hvs.boot-test-token';
const JWT_FROM_VAULT = 'vault-jwt-secret-0123456789-abcdefghijkl';
const PG_FROM_VAULT = 'pg-password-from-vault-77';
let vault: Server;
let n: TestNode;

before(async () => {
  vault = createServer((req, res) => {
    if (req.headers['x-vault-token'] !== VAULT_TOKEN) return void res.writeHead(403).end('{"errors":[]}');
    if (req.url !== '/v1/kv/data/nodes/n1') return void res.writeHead(404).end('{"errors":[]}');
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        data: { data: { jwt_secret: JWT_FROM_VAULT, 'database.password': PG_FROM_VAULT }, metadata: {} },
      }),
    );
  });
  await new Promise<void>((resolve) => vault.listen(0, '127.0.0.1', resolve));
  const port = (vault.address() as { port: number }).port;
  n = await startTestNode({
    set: {
      'security.vault_address': `http://127.0.0.1:${port}`,
      'security.vault_token': VAULT_TOKEN,
      'security.vault_mount': 'kv',
      'security.vault_path': 'nodes/n1',
    },
  });
});

after(async () => {
  await n?.stop();
  vault.close();
});

test('secrets from Vault fill the config before dependants start; tokens are signed with the Vault jwt_secret', async () => {
  assert.equal(n.node.config.database.password, PG_FROM_VAULT);
  assert.equal(n.node.config.security.jwt_secret, JWT_FROM_VAULT);
  const claims = await new TokenAuthority(new TextEncoder().encode(JWT_FROM_VAULT)).verify(n.adminToken);
  assert.equal(claims.scope, 'admin');
  assert.match(
    n.log(),
    /read 2 secret\(s\) from Vault: (security\.jwt_secret, database\.password|database\.password, security\.jwt_secret)/,
  );
  for (const secret of [JWT_FROM_VAULT, PG_FROM_VAULT, VAULT_TOKEN]) assert.ok(!n.log().includes(secret));
});

test('a Vault that refuses the token stops the boot with a clear error, without the token', async () => {
  const port = (vault.address() as { port: number }).port;
  await assert.rejects(
    startTestNode({
      set: {
        'security.vault_address': `http://127.0.0.1:${port}`,
        'security.vault_token': 'hvs.wrong-token',
        'security.vault_mount': 'kv',
        'security.vault_path': 'nodes/n1',
      },
    }),
    (err: Error) => {
      assert.match(err.message, /vault refused the token/);
      assert.ok(!err.message.includes('hvs.wrong-token'));
      return true;
    },
  );
});
