import { test } from 'node:test';
import assert from 'node:assert/strict';
import { progressLine, ratesOf, summaryText, type MigrationRecordView } from './vm-migrate.js';

const MIB = 1024 * 1024;
const base: MigrationRecordView = {
  id: 'm1',
  vmId: 'v1',
  source: 'n1',
  target: 'n2',
  state: 'running',
  phase: 'transfer',
  bytesSent: 30 * MIB,
  bytesTotal: 128 * MIB,
  bytesRemaining: 64 * MIB,
  downtimeMs: null,
  totalMs: null,
  progress: { streamBytes: 64 * MIB, ramBytes: 128 * MIB, dirtyPagesRate: 1024 },
  error: null,
};

test('rates come from two samples; the first sample has none', () => {
  assert.deepEqual(ratesOf(undefined, { at: 1000, stream: 10, wire: 5 }), { streamPerSec: 0, wirePerSec: 0 });
  assert.deepEqual(ratesOf({ at: 0, stream: 0, wire: 0 }, { at: 2000, stream: 32 * MIB, wire: 16 * MIB }), {
    streamPerSec: 16 * MIB,
    wirePerSec: 8 * MIB,
  });
});

test('the progress line shows bar, percent, phase, bytes, rate, dirty rate and ETA', () => {
  const line = progressLine(base, { streamPerSec: 16 * MIB, wirePerSec: 8 * MIB }, 10);
  assert.match(line, /^\[#####\.\.\.\.\.\] {2}50% transfer/);
  assert.match(line, /stream 64\.0 MiB wire 30\.0 MiB 8\.0 MiB\/s dirty 1024 pages\/s ETA 4s$/);
  assert.match(progressLine({ ...base, phase: 'switchover' }, { streamPerSec: 0, wirePerSec: 0 }), /ETA -$/);
});

test('the summary compares bytes on the wire with guest RAM; a failure shows its error', () => {
  const done = summaryText({ ...base, state: 'completed', phase: 'done', totalMs: 7000, downtimeMs: 250 });
  assert.match(done, /completed \(n1 → n2\)/);
  assert.match(done, /total time {3}7000 ms/);
  assert.match(done, /downtime {5}250 ms/);
  assert.match(
    done,
    /on the wire {2}30\.0 MiB \(QEMU stream 64\.0 MiB\) for 128\.0 MiB guest RAM: 0\.23× RAM/,
  );
  const failed = summaryText({ ...base, state: 'failed', totalMs: 10, error: 'boom' });
  assert.match(failed, /error {8}boom/);
  assert.doesNotMatch(failed, /downtime/);
});
