// `novacron transfer receive|send` with certificates from a cluster CA and no join token: a file
// arrives byte-identical; a sender whose certificate comes from another CA is refused, and both
// processes say why.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { transferCli } from './cli-harness.js';
import { issueCert, makeCa } from '../../src/security/test-pki.js';

// No join token anywhere: certificates alone authenticate.
const env = { ...process.env };
delete env.NOVACRON_CLUSTER__JOIN_TOKEN;
const { cli, run } = transferCli(env);

describe('novacron transfer with cluster CA certificates (CLI)', () => {
  const work = mkdtempSync(join(tmpdir(), 'dwcp-cli-ca-'));
  const dir = join(work, 'in');
  let receiver: ChildProcess | undefined;
  after(() => {
    receiver?.kill();
    rmSync(work, { recursive: true, force: true });
  });

  it('sends with --ca/--cert/--key and no token; refuses a certificate from another CA on both ends', async () => {
    const ca = makeCa('CLI cluster CA');
    const other = makeCa('CLI other CA');
    const files: Record<string, string> = {};
    const put = (name: string, pem: string) => {
      files[name] = join(work, name);
      writeFileSync(files[name], pem);
    };
    put('ca.pem', ca.cert);
    const rx = issueCert(ca, { cn: 'node-rx', dns: ['node-rx'] });
    const tx = issueCert(ca, { cn: 'node-tx', dns: ['node-tx'] });
    const stranger = issueCert(other, { cn: 'node-tx', dns: ['node-tx'] });
    put('rx.pem', rx.chainPem);
    put('rx.key', rx.key);
    put('tx.pem', tx.chainPem);
    put('tx.key', tx.key);
    put('stranger.pem', stranger.chainPem);
    put('stranger.key', stranger.key);

    receiver = cli([
      'transfer',
      'receive',
      '--listen',
      '127.0.0.1:0',
      '--dir',
      dir,
      '--ca',
      files['ca.pem']!,
      '--cert',
      files['rx.pem']!,
      '--key',
      files['rx.key']!,
      '--peer-name',
      'node-tx',
    ]);
    let rxErr = '';
    receiver.stderr!.on('data', (d: Buffer) => (rxErr += d.toString()));
    const lines = createInterface({ input: receiver.stdout! })[Symbol.asyncIterator]();
    const first = String((await lines.next()).value);
    const m = /listening on 127\.0\.0\.1:(\d+).*authentication: cluster CA certificate/.exec(first);
    assert.ok(m, `receiver said: ${first} ${rxErr}`);
    const to = `127.0.0.1:${m[1]}`;

    const data = Buffer.concat([randomBytes(1 << 20), Buffer.alloc(1 << 19)]);
    const file = join(work, 'data.bin');
    writeFileSync(file, data);
    const send = (cert: string, key: string, name: string) =>
      run([
        'transfer',
        'send',
        file,
        '--to',
        to,
        '--name',
        name,
        '--json',
        '--mode',
        'internet',
        '--ca',
        files['ca.pem']!,
        '--cert',
        cert,
        '--key',
        key,
        '--peer-name',
        'node-rx',
      ]);

    const ok = await send(files['tx.pem']!, files['tx.key']!, 'good.bin');
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { bytes: number }).bytes, data.length);
    assert.ok(readFileSync(join(dir, 'good.bin')).equals(data));

    const bad = await send(files['stranger.pem']!, files['stranger.key']!, 'bad.bin');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /DWCP receiver refused the handshake: .*not signed by the cluster CA/);
    for (let i = 0; i < 100 && !/not signed by the cluster CA/.test(rxErr); i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.match(rxErr, /warning: .*DWCP sender certificate CN=node-tx is not signed by the cluster CA/);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('bad.bin')),
      [],
    );
  });
});
