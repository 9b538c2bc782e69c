// `novacron scheduler simulate --json` end to end: the real CLI on a small Azure-format trace.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';

const root = new URL('..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'nc-sched-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

it('prints the documented JSON shape with the baselines', () => {
  writeFileSync(join(dir, 'flav_map.txt'), '1,0.75 a\n2,3.5 g\n8,56 o\n');
  writeFileSync(join(dir, 'v1.interval_map.txt'), '0 0\n300 1\n600 2\n');
  writeFileSync(join(dir, 'v1.dev.txt'), '300 a,g,o,|,g,|,\n600 o,o,|,\n900 a,|,\n');
  writeFileSync(join(dir, 'v1.dev.c1200.txt'), '300 U1,U2,C0,|,U0,|,\n600 U1,U2,|,\n900 C0,|,\n');
  const res = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'scheduler',
      'simulate',
      '--trace',
      join(dir, 'v1.dev.txt'),
      '--host-cpus',
      '16',
      '--host-memory-gib',
      '128',
      '--strategy',
      'balanced',
      '--json',
    ],
    { cwd: root, encoding: 'utf8' },
  );
  assert.equal(res.status, 0, res.stderr);
  const out = JSON.parse(res.stdout) as {
    default: string;
    strategies: {
      name: string;
      placed: number;
      rejected: number;
      meanHostsOverLowerBound: number;
      peakHosts: number;
    }[];
  };
  assert.equal(out.default, 'balanced');
  assert.deepEqual(
    out.strategies.map((s) => s.name),
    ['balanced', 'first-fit', 'best-fit', 'least-allocated', 'most-allocated'],
  );
  for (const s of out.strategies) {
    assert.equal(s.placed + s.rejected, 7);
    assert.ok(s.meanHostsOverLowerBound >= 1);
    assert.ok(Number.isInteger(s.peakHosts) && s.peakHosts >= 1);
  }
});

it('exits non-zero with a clear message for an unknown strategy', () => {
  const res = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'scheduler',
      'simulate',
      '--trace',
      join(dir, 'v1.dev.txt'),
      '--strategy',
      'nope',
    ],
    { cwd: root, encoding: 'utf8' },
  );
  assert.notEqual(res.status, 0);
  assert.match(res.stderr, /unknown strategy: nope/);
});
