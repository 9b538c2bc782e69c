// `novacron token create` in a child process against a running node's data dir: the token has the
// asked scope and TTL and works (read may GET, nothing else). Also: the registration component
// recorded the node in the store.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { TokenAuthority } from '../../src/security/tokens.js';
import { startTestNode, type TestNode } from './node-harness.js';

let n: TestNode;
before(async () => {
  n = await startTestNode();
});
after(async () => {
  await n?.stop();
});

async function createToken(args: string[]): Promise<{ code: number | string; out: string }> {
  const cli = runCli(['token', 'create', ...args]);
  const code = await cli.exited;
  return { code, out: cli.output() };
}

test('token create --scope read --ttl 2h --json: a read token valid for 2 hours that the node accepts for GET only', async () => {
  const { code, out } = await createToken([
    '--scope',
    'read',
    '--ttl',
    '2h',
    '--data-dir',
    n.dataDir,
    '--json',
  ]);
  assert.equal(code, 0, out);
  const made = JSON.parse(out.slice(out.indexOf('{'))) as { token: string; scope: string; expiresAt: string };
  assert.equal(made.scope, 'read');
  const key = Buffer.from(readFileSync(join(n.dataDir, 'jwt.key'), 'utf8').trim(), 'base64url');
  const claims = await new TokenAuthority(key).verify(made.token);
  assert.equal(claims.scope, 'read');
  assert.equal((claims.expiresAt ?? 0) - claims.issuedAt, 7200);
  assert.equal(new Date(made.expiresAt).getTime(), (claims.expiresAt ?? 0) * 1000);

  const get = await fetch(`${n.url}/api/v1/vms`, { headers: { authorization: `Bearer ${made.token}` } });
  assert.equal(get.status, 200);
  await get.arrayBuffer();
  const del = await fetch(`${n.url}/api/v1/vms`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${made.token}` },
  });
  assert.equal(del.status, 403);
  await del.arrayBuffer();
});

test('token create --scope admin prints only the token; an unknown scope or a dir without a key fails', async () => {
  const ok = await createToken(['--scope', 'admin', '--data-dir', n.dataDir]);
  assert.equal(ok.code, 0);
  const token = ok.out.trim().split('\n').at(-1)!;
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const res = await fetch(`${n.url}/api/v1/system/boot`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  await res.arrayBuffer();

  const bad = await createToken(['--scope', 'root', '--data-dir', n.dataDir]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.out, /unknown scope "root"/);
  const none = await createToken(['--data-dir', join(n.dataDir, 'nowhere')]);
  assert.notEqual(none.code, 0);
  assert.match(none.out, /no signing key in .*nowhere/);
});

test('registration recorded this node in the store (single mode)', async () => {
  const store = n.node.services.store;
  assert.ok(store, 'store service');
  const row = await store.nodes.get(n.node.nodeId);
  assert.ok(row, 'node row');
  assert.equal(row.status, 'ready');
  assert.equal(row.address, n.url);
  assert.ok(row.capacity.cpus > 0);
  assert.ok(n.node.events.recent().some((e) => e.type === 'node.registered'));
});
