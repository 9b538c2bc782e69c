import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTraceDir, parseDrivingCsv, parsePensieveTrace, parseTraceFile } from './traces.js';
import { NovaCronError } from '../../errors.js';

test('Pensieve files: tab or space separated, one series per file, negatives clamped', () => {
  const s = parsePensieveTrace('0.0\t1.5\n5.0\t2.5\n\n10.0  -1\n', 'f');
  assert.deepEqual(s.samples, [1.5, 2.5, 0]);
  assert.throws(() => parsePensieveTrace('0.0 abc\n', 'bad'), NovaCronError);
  assert.throws(() => parsePensieveTrace('just-one-column\n', 'bad'), NovaCronError);
});

test('driving CSVs split wherever the step is not exactly 1 s (gaps and backward jumps)', () => {
  const csv = [
    'time,throughput,speed,latitude,longtitu,area_type',
    '2023-04-04 09:49:13 CDT,10,1,0,0,rural',
    '2023-04-04 09:49:14 CDT,20,1,0,0,rural',
    '2023-04-04 09:49:15 CDT,30,1,0,0,rural',
    '2023-04-04 09:50:00 CDT,40,1,0,0,rural', // gap
    '2023-04-04 09:50:01 CDT,50,1,0,0,rural',
    '2023-04-04 09:40:00 CDT,60,1,0,0,rural', // backwards
    '2023-04-04 09:40:01 CDT,,1,0,0,rural', // no value: breaks the segment too
    '2023-04-04 09:40:02 CDT,70,1,0,0,rural',
  ].join('\n');
  const segs = parseDrivingCsv(csv, 'x.csv');
  assert.deepEqual(
    segs.map((s) => s.samples),
    [[10, 20, 30], [40, 50], [60], [70]],
  );
  assert.deepEqual(
    segs.map((s) => s.id),
    ['x.csv#0', 'x.csv#1', 'x.csv#2', 'x.csv#3'],
  );
  assert.equal(parseTraceFile(csv, 'x.csv').length, 4, 'detected as CSV by its header');
});

test('a directory is one data set named after it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ml-traces-'));
  try {
    const sub = join(dir, 'my_set');
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, 'a'), '0 1\n1 2\n');
    writeFileSync(join(sub, 'b'), '0 3\n1 4\n2 5\n');
    const ds = loadTraceDir(sub);
    assert.equal(ds.name, 'my_set');
    assert.deepEqual(
      ds.series.map((s) => s.samples),
      [
        [1, 2],
        [3, 4, 5],
      ],
    );
    assert.throws(() => loadTraceDir(join(dir, 'missing')), NovaCronError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
