// The real `novacron config …` commands in a child process: exit codes, stdout and stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const root = fileURLToPath(new URL('../..', import.meta.url));

async function novacron(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // Only the variables the test sets reach the child, plus what node needs to run.
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('NOVACRON_') && !k.startsWith('DB_')),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: root,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

test('config validate: exit 0 and "valid" for a good file; exit 1 and every error with its path for a bad one', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'novacron-cli-'));
  try {
    const good = await novacron(['config', 'validate', 'config/novacron.yaml']);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /novacron\.yaml is valid/);

    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'api:\n  rest_port: 70000\nsystem:\n  mode: fast\ndatabse:\n  type: sqlite\n');
    const r = await novacron(['config', 'validate', bad]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /3 problems/);
    assert.match(r.stderr, /api\.rest_port: 70000 is above the maximum 65535/);
    assert.match(
      r.stderr,
      /system\.mode: "fast" is not one of the allowed values \(allowed: one of: auto, datacenter/,
    );
    assert.match(r.stderr, /databse: unknown key "databse"; did you mean database\?/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('config print: redacted YAML, the detected mode, and with --explain where each value came from', async () => {
  const r = await novacron(
    ['config', 'print', '--explain', '--no-detect', '--set', 'system.log_level=debug'],
    {
      NOVACRON_API__REST_PORT: '18080',
      NOVACRON_DATABASE__PASSWORD: 'hunter2',
    },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /rest_port: 18080 # env: NOVACRON_API__REST_PORT/);
  assert.match(r.stdout, /log_level: debug # flag: --set system\.log_level/);
  assert.match(r.stdout, /grpc_port: 9090 # default/);
  assert.match(r.stdout, /password: "\*\*\*"/);
  assert.doesNotMatch(r.stdout, /hunter2/);
  assert.equal((parse(r.stdout) as { api: { rest_port: number } }).api.rest_port, 18080);

  const j = await novacron(['config', 'print', '--output', 'json']);
  assert.equal(j.code, 0, j.stderr);
  const body = JSON.parse(j.stdout) as {
    mode: { mode: string; reason: string; explicit: boolean };
    file: null;
  };
  assert.equal(body.file, null);
  assert.equal(body.mode.mode, 'datacenter');
  assert.match(body.mode.reason, /single node/);
});

test('config migrate: writes one unified file that validates, lists unmapped keys on stderr', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'novacron-cli-'));
  try {
    const out = join(dir, 'novacron.yaml');
    const legacy = ['datacenter', 'internet', 'hybrid'].map(
      (m) => `config/examples/legacy/dwcp-v3-${m}.yaml`,
    );
    const r = await novacron(['config', 'migrate', ...legacy, '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /30 legacy keys not migrated/);
    assert.match(r.stderr, /dwcp-v3-internet\.yaml: monitoring\.jaeger\.endpoint/);
    assert.match(await readFile(out, 'utf8'), /# 30 legacy keys not migrated/);
    const v = await novacron(['config', 'validate', out], { DB_PASSWORD: 'x' });
    assert.equal(v.code, 0, v.stderr);
    const missing = await novacron(['config', 'validate', out]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /DB_PASSWORD is not set .* database\.password/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
