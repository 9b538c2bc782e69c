// `novacron ml train|eval bandwidth` as an operator runs them: a child process, files on disk, the JSON contract.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseModelFile } from '../src/ml/models/model-file.js';
import { readFileSync } from 'node:fs';

const run = promisify(execFile);
const main = new URL('../src/cli/main.ts', import.meta.url).pathname;
const cli = (...args: string[]) =>
  run(process.execPath, ['--import', 'tsx', main, ...args], { maxBuffer: 16 << 20 });

test('train writes a versioned model file; eval --json prints exactly the documented shape', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ml-cli-'));
  try {
    const set = join(dir, 'my_links');
    mkdirSync(set);
    let s = 7;
    const rnd = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (const name of ['a', 'b', 'c']) {
      let x = 5;
      const lines: string[] = [];
      for (let i = 0; i < 120; i++) {
        x = Math.max(0.2, x + (rnd() - 0.5) * 1.5 + 0.1 * (5 - x));
        lines.push(`${i}\t${x.toFixed(3)}`);
      }
      writeFileSync(join(set, name), lines.join('\n') + '\n');
    }
    const out = join(dir, 'bw.json');
    await cli('ml', 'train', 'bandwidth', '--traces', set, '--out', out);
    const file = parseModelFile(readFileSync(out, 'utf8'), out);
    assert.equal(file.kind, 'bandwidth');
    assert.ok(
      file.kind === 'bandwidth' && 'my_links' in file.params.profiles && 'generic' in file.params.profiles,
    );

    const { stdout, stderr } = await cli(
      'ml',
      'eval',
      'bandwidth',
      '--traces',
      set,
      '--model',
      out,
      '--json',
    );
    assert.match(stderr, /in-sample/);
    const doc = JSON.parse(stdout) as { datasets: Record<string, unknown>[] };
    assert.deepEqual(Object.keys(doc), ['datasets']);
    assert.equal(doc.datasets.length, 1);
    const d = doc.datasets[0]!;
    assert.deepEqual(Object.keys(d), ['name', 'series', 'model', 'baselines']);
    assert.equal(d['name'], 'my_links');
    assert.equal(d['series'], 3);
    const metricKeys = ['mae', 'rmse', 'mape', 'overRate'];
    assert.deepEqual(Object.keys(d['model'] as object), metricKeys);
    const b = d['baselines'] as Record<string, object>;
    assert.deepEqual(Object.keys(b), ['last', 'harmonic', 'ewma']);
    for (const m of Object.values(b)) assert.deepEqual(Object.keys(m), metricKeys);

    const cv = JSON.parse(
      (await cli('ml', 'eval', 'bandwidth', '--traces', set, '--cv', '3', '--json')).stdout,
    ) as {
      datasets: { series: number }[];
    };
    assert.equal(cv.datasets[0]!.series, 3);

    await assert.rejects(
      cli('ml', 'eval', 'bandwidth', '--traces', join(dir, 'missing'), '--json'),
      (e: { code?: number; stderr?: string }) => {
        assert.equal(e.code, 1);
        assert.match(e.stderr ?? '', /cannot read trace directory/);
        return true;
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
