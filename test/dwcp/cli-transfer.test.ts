// `novacron transfer receive|send` as an operator runs them: real CLI processes over loopback,
// the JSON summary's shape, and a second send of a modified file costing little on the wire.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
  let receiver2: ChildProcess | undefined;
  after(() => {
    receiver?.kill();
    receiver2?.kill();
    rmSync(work, { recursive: true, force: true });
  });

  /** Starts `novacron transfer receive` into `into`; resolves with its HOST:PORT. */
  async function startReceiver(into: string): Promise<{ child: ChildProcess; to: string }> {
    const child = cli(['transfer', 'receive', '--listen', '127.0.0.1:0', '--dir', into]);
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const first = await lines.next();
    const m = /listening on 127\.0\.0\.1:(\d+)/.exec(String(first.value));
    assert.ok(m, `receiver said: ${String(first.value)}`);
    return { child, to: `127.0.0.1:${m[1]}` };
  }

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

  it('a sender killed mid-transfer: sending again sends only what the receiver does not hold yet', async () => {
    const into = join(work, 'in2');
    const r = await startReceiver(into);
    receiver2 = r.child;
    const file = join(work, 'big.bin');
    const size = 96 << 20;
    const data = randomBytes(size);
    writeFileSync(file, data);

    const sender = cli(['transfer', 'send', file, '--to', r.to, '--json', '--streams', '2']);
    const senderExit = new Promise<number | null>((res) => sender.on('exit', (c) => res(c)));
    // kill it once the receiver has at least 40 % of the file on disk (the part file is sparse)
    let written = 0;
    for (let i = 0; i < 6000 && written < 0.4 * size; i++) {
      const part = readdirSync(into).find((n) => n.endsWith('.dwcp-part'));
      written = part ? statSync(join(into, part)).blocks * 512 : 0;
      if (sender.exitCode !== null) break;
      await new Promise((res) => setTimeout(res, 5));
    }
    sender.kill('SIGKILL');
    assert.notEqual(await senderExit, 0, 'the first sender finished before it could be killed');
    assert.ok(written >= 0.4 * size, `only ${written} B written before the kill`);

    // started again at once: the old session (no stream left) is superseded and its chunks reused
    const again = await run(['transfer', 'send', file, '--to', r.to, '--json', '--streams', '2']);
    assert.equal(again.code, 0, again.stderr);
    const s = JSON.parse(again.stdout) as { wireBytes: number; chunks: Record<string, number> };
    assert.ok(s.chunks.known! > 0, `no chunk reused: ${again.stdout}`);
    assert.ok(
      s.wireBytes < size - 0.3 * size,
      `second send put ${s.wireBytes} B on the wire for ${size} B with ${written} B already written`,
    );
    assert.ok(readFileSync(join(into, 'big.bin')).equals(data));
    // the partial file is gone once the whole file is in place; no part file is left
    assert.deepEqual(readdirSync(join(into, '.dwcp', 'partial')), []);
    assert.ok(!readdirSync(into).some((n) => n.endsWith('.dwcp-part')));
  });
});
