// `novacron transfer receive|send` as an operator runs them: real CLI processes over loopback,
// the JSON summary's shape, and a second send of a modified file costing little on the wire.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { transferCli } from './cli-harness.js';

const env = { ...process.env, NOVACRON_CLUSTER__JOIN_TOKEN: 'cli-test-token' };
const { cli, run } = transferCli(env);

describe('novacron transfer (CLI)', () => {
  const work = mkdtempSync(join(tmpdir(), 'dwcp-cli-'));
  const dir = join(work, 'in');
  let receiver: ChildProcess | undefined;
  after(() => {
    receiver?.kill();
    rmSync(work, { recursive: true, force: true });
  });

  it('sends a file, prints the JSON summary, and resends a modified file cheaply', async () => {
    receiver = cli(['transfer', 'receive', '--listen', '127.0.0.1:0', '--dir', dir]);
    const lines = createInterface({ input: receiver.stdout! })[Symbol.asyncIterator]();
    const first = await lines.next();
    const m = /listening on 127\.0\.0\.1:(\d+)/.exec(String(first.value));
    assert.ok(m, `receiver said: ${String(first.value)}`);
    const to = `127.0.0.1:${m[1]}`;
    const file = join(work, 'data.bin');
    const data = Buffer.concat([
      randomBytes(2 << 20),
      Buffer.alloc(1 << 20),
      Buffer.from('text '.repeat(100000)),
    ]);
    writeFileSync(file, data);

    const a = await run(['transfer', 'send', file, '--to', to, '--json', '--mode', 'internet']);
    assert.equal(a.code, 0, a.stderr);
    const s1 = JSON.parse(a.stdout) as {
      bytes: number;
      wireBytes: number;
      seconds: number;
      streams: number;
      chunks: Record<string, number>;
    };
    assert.deepEqual(Object.keys(s1).sort(), ['bytes', 'chunks', 'seconds', 'streams', 'wireBytes']);
    assert.deepEqual(Object.keys(s1.chunks).sort(), ['delta', 'known', 'literal', 'zero']);
    assert.equal(s1.bytes, data.length);
    assert.ok(readFileSync(join(dir, 'data.bin')).equals(data));

    data.write('a small change', 1000);
    writeFileSync(file, data);
    const b = await run([
      'transfer',
      'send',
      file,
      '--to',
      to,
      '--json',
      '--streams',
      '2',
      '--mode',
      'internet',
    ]);
    assert.equal(b.code, 0, b.stderr);
    const s2 = JSON.parse(b.stdout) as { wireBytes: number; chunks: Record<string, number> };
    assert.ok(s2.chunks.known! > 0);
    assert.ok(s2.wireBytes < s1.wireBytes / 10, `second send: ${s2.wireBytes} B, first: ${s1.wireBytes} B`);
    assert.ok(readFileSync(join(dir, 'data.bin')).equals(data));

    const bad = await run(['transfer', 'send', file, '--to', 'nonsense', '--json']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /HOST:PORT/);
  });
});
