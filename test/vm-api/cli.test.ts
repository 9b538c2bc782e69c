// `novacron vm …` against a real node (sim driver): create, list (table and JSON), get, stop, start,
// restart, console, delete; the token is found in the node's data dir, errors are one clear line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { startNodeProcess } from './node-process.js';

test('novacron vm create|list|get|stop|start|restart|console|delete against a running node', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'nc-vm-cli-'));
  const node = await startNodeProcess(dataDir, { 'vm.driver': 'sim', 'node.capacity.cpus': 4 });
  const vm = async (...args: string[]): Promise<{ code: number | string; out: string }> => {
    const p = runCli(['vm', ...args, '--url', node.url, '--data-dir', dataDir]);
    const code = await p.exited;
    return { code, out: p.output() };
  };
  try {
    const c = await vm(
      'create',
      'cli-1',
      '--cpus',
      '2',
      '--memory',
      '256',
      '--label',
      'app=web',
      '--output',
      'json',
    );
    assert.equal(c.code, 0, c.out);
    const created = JSON.parse(c.out) as { id: string; state: string; labels: Record<string, string> };
    assert.equal(created.state, 'running');
    assert.deepEqual(created.labels, { app: 'web' });
    const l = await vm('list');
    assert.equal(l.code, 0, l.out);
    assert.match(l.out, /^NAME\s+ID\s+NODE\s+STATE/m);
    assert.match(l.out, new RegExp(`cli-1\\s+${created.id}\\s+novacron-node-1\\s+running`));
    const g = await vm('get', created.id, '--output', 'json');
    assert.equal((JSON.parse(g.out) as { name: string }).name, 'cli-1');
    assert.match((await vm('stop', 'cli-1')).out, /stopped/);
    assert.match((await vm('start', 'cli-1')).out, /running/);
    assert.match((await vm('restart', 'cli-1')).out, /running/);
    assert.match((await vm('console', 'cli-1')).out, /simulated/);
    const big = await vm('create', 'too-big', '--cpus', '3', '--memory', '64');
    // Retryable (the node may have room later): said on stderr, exit code 2 (the environment), not 1.
    assert.equal(big.code, 2, big.out);
    assert.match(big.out, /error: 409: resource exhausted: cpus \(requested 3, free 2\)/);
    assert.match(big.out, /hint: retryable: the node is full now/);
    assert.equal((await vm('delete', 'cli-1')).code, 0);
    const missing = await vm('get', 'cli-1');
    assert.equal(missing.code, 1);
    assert.match(missing.out, /error: 404: vm not found: cli-1/);
  } finally {
    await node.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
