// The ML engine is optional: without the ML service the node boots, reports ml-engine degraded
// and stays ready (200); with `novacron ml serve` running, ml-engine is up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/ports.js';
import { runCli } from '../helpers/cli.js';

interface Ready {
  status: string;
  components: { name: string; status: string; detail: string }[];
}

async function bootNode(mlPort: number) {
  const dataDir = mkdtempSync(join(tmpdir(), 'nc-ml-'));
  const cli = runCli([
    'start',
    '--data-dir',
    dataDir,
    '--set',
    `api.rest_port=${await freePort()}`,
    '--set',
    `api.grpc_port=${await freePort()}`,
    '--set',
    `dwcp.listen_port=${await freePort()}`,
    '--set',
    `ml.service_address=127.0.0.1:${mlPort}`,
    '--set',
    'ml.health_check_interval_seconds=1',
  ]);
  const { url } = JSON.parse(await cli.waitFor(/"msg":"ready in/, 60_000)) as { url: string };
  return { cli, url };
}

async function readiness(url: string): Promise<{ code: number; body: Ready }> {
  const res = await fetch(`${url}/health/ready`);
  return { code: res.status, body: (await res.json()) as Ready };
}

test('without the ML service the node is ready and ml-engine is degraded', async () => {
  const { cli, url } = await bootNode(await freePort());
  try {
    const { code, body } = await readiness(url);
    assert.equal(code, 200);
    assert.equal(body.status, 'degraded');
    const ml = body.components.find((c) => c.name === 'ml-engine')!;
    assert.equal(ml.status, 'degraded');
  } finally {
    cli.child.kill('SIGTERM');
    assert.equal(await cli.exited, 0);
  }
});

test('with the ML service running, ml-engine is up', async () => {
  const mlPort = await freePort();
  const ml = runCli(['ml', 'serve', '--port', String(mlPort), '--metrics-port', '0']);
  try {
    await ml.waitFor(/ml service listening/, 60_000);
    const { cli, url } = await bootNode(mlPort);
    try {
      // The first health check may still be in flight when the node reports ready: wait for it.
      let last: Ready | undefined;
      for (let i = 0; i < 50; i++) {
        last = (await readiness(url)).body;
        if (last.components.find((c) => c.name === 'ml-engine')?.status === 'up') break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(last?.components.find((c) => c.name === 'ml-engine')?.status, 'up', JSON.stringify(last));
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exited;
    }
  } finally {
    ml.child.kill('SIGTERM');
    await ml.exited;
  }
});
