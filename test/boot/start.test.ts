// The real CLI, started in a child process: boots on the embedded defaults, answers health,
// timeline and metrics, stops cleanly on SIGTERM; a bad config or a taken port starts nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/ports.js';
import { runCli } from '../helpers/cli.js';

async function portFlags() {
  return [
    '--set',
    `api.rest_port=${await freePort()}`,
    '--set',
    `api.grpc_port=${await freePort()}`,
    '--set',
    `dwcp.listen_port=${await freePort()}`,
  ];
}

test('novacron start boots, serves /health/ready, the boot timeline and metrics, and stops on SIGTERM with 0', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'nc-start-'));
  const ports = await portFlags();
  const restPort = Number(ports[1]!.split('=')[1]);
  const cli = runCli(['start', '--data-dir', dataDir, ...ports]);
  try {
    const ready = JSON.parse(await cli.waitFor(/"msg":"ready in/)) as { url: string; state: string };
    assert.equal(ready.url, `http://127.0.0.1:${restPort}`);
    const res = await fetch(`${ready.url}/health/ready`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as {
      status: string;
      mode: string;
      components: { name: string; status: string }[];
    };
    assert.ok(['ready', 'degraded'].includes(body.status), body.status);
    assert.ok(['datacenter', 'internet', 'hybrid'].includes(body.mode));
    for (const name of ['data-dir', 'resources', 'api']) {
      assert.equal(body.components.find((c) => c.name === name)?.status, 'up', name);
    }
    const live = await fetch(`${ready.url}/health/live`);
    assert.equal(live.status, 200);

    const metrics = await (await fetch(`${ready.url}/metrics`)).text();
    assert.match(metrics, /^novacron_boot_duration_seconds\{[^}]*\} [0-9.e-]+$/m);
    assert.match(metrics, /novacron_boot_component_duration_seconds\{component="api"/);
    assert.ok(existsSync(join(dataDir, 'novacron.lock')));
    assert.ok(existsSync(join(dataDir, 'logs', 'novacron.log')));

    cli.child.kill('SIGTERM');
    assert.equal(await cli.exited, 0);
    assert.match(cli.output(), /SIGTERM received/);
    assert.ok(!existsSync(join(dataDir, 'novacron.lock')), 'the data dir lock is released');
  } finally {
    cli.child.kill('SIGKILL');
  }
});

test('the boot timeline lists every component with phase, level, start, duration and status', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'nc-start-'));
  const cli = runCli(['start', '--data-dir', dataDir, ...(await portFlags())]);
  try {
    const { url } = JSON.parse(await cli.waitFor(/"msg":"ready in/)) as { url: string };
    const res = await fetch(`${url}/api/v1/system/boot`, {
      headers: await authHeader(dataDir),
    });
    assert.equal(res.status, 200);
    const boot = (await res.json()) as {
      state: string;
      levels: string[][];
      components: {
        name: string;
        phase: string;
        level: number;
        startedAt: number;
        durationMs: number;
        status: string;
      }[];
    };
    assert.ok(boot.levels.length >= 2);
    const dd = boot.components.find((c) => c.name === 'data-dir')!;
    assert.equal(dd.phase, 'pre');
    assert.equal(dd.level, 0);
    for (const c of boot.components) {
      assert.equal(typeof c.startedAt, 'number', c.name);
      assert.equal(typeof c.durationMs, 'number', c.name);
    }
  } finally {
    cli.child.kill('SIGTERM');
    await cli.exited;
  }
});

test('a bad config starts nothing and lists every bad key with its path', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nc-badcfg-'));
  const file = join(dir, 'bad.yaml');
  const dataDir = join(dir, 'data');
  writeFileSync(
    file,
    `system:\n  data_dir: ${dataDir}\napi:\n  rest_port: 99999\ndatabase:\n  type: oracle\n`,
  );
  const cli = runCli(['start', '--config', file]);
  const code = await cli.exited;
  assert.equal(code, 1);
  assert.match(cli.output(), /api\.rest_port/);
  assert.match(cli.output(), /database\.type/);
  assert.ok(!existsSync(dataDir), 'nothing was created');
});

test('a taken port fails the boot with the port and the key that sets it', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'nc-port-'));
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  const port = (blocker.address() as { port: number }).port;
  try {
    const cli = runCli([
      'start',
      '--data-dir',
      dataDir,
      '--set',
      `api.rest_port=${port}`,
      '--set',
      `api.grpc_port=${await freePort()}`,
      '--set',
      `dwcp.listen_port=${await freePort()}`,
    ]);
    const code = await cli.exited;
    assert.notEqual(code, 0);
    assert.match(cli.output(), new RegExp(`port ${port} \\(api\\.rest_port\\) is already in use`));
    assert.ok(!existsSync(join(dataDir, 'novacron.lock')), 'the lock taken before the failure is released');
  } finally {
    blocker.close();
  }
});

/** Bearer header with the node's admin token when security has written one; none otherwise. */
async function authHeader(dataDir: string): Promise<Record<string, string>> {
  const tokenFile = join(dataDir, 'admin.token');
  if (!existsSync(tokenFile)) return {};
  const { readFile } = await import('node:fs/promises');
  return { authorization: `Bearer ${(await readFile(tokenFile, 'utf8')).trim()}` };
}
