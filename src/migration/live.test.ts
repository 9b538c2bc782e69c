// Pure tuning rules of the live-migration data path (src/migration/live.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { migrationWindowBytes, qemuDowntimeLimit } from './live.js';

const MIB = 1024 * 1024;

test('the DWCP window follows the round trip, between 1 and 32 MiB', () => {
  assert.equal(migrationWindowBytes(0), MIB);
  assert.equal(migrationWindowBytes(2), MIB);
  assert.equal(migrationWindowBytes(40), 2 * MIB);
  assert.equal(migrationWindowBytes(150), 7.5 * MIB);
  assert.equal(migrationWindowBytes(5000), 32 * MIB);
  assert.equal(migrationWindowBytes(-5), MIB);
});

test('a predicted link rate lifts the window to two bandwidth-delay products, never lowers it', () => {
  // 1 Gbit/s (125 MB/s) at 40 ms: 2 × 5 MB = 10 MB, above the rule's 2 MiB
  assert.equal(migrationWindowBytes(40, 125e6), 10e6);
  // 100 Mbit/s at 40 ms: 1 MB < the rule's 2 MiB, so the rule stands
  assert.equal(migrationWindowBytes(40, 12.5e6), 2 * MIB);
  // capped at 32 MiB; no or a nonsense prediction: the rule
  assert.equal(migrationWindowBytes(150, 10e9), 32 * MIB);
  assert.equal(migrationWindowBytes(40, 0), 2 * MIB);
  assert.equal(migrationWindowBytes(40, Number.NaN), 2 * MIB);
});

test("QEMU's downtime-limit leaves room for the DWCP backlog and the control round trips", () => {
  assert.equal(qemuDowntimeLimit(300, 0, 0), 300);
  assert.equal(qemuDowntimeLimit(300, 160, 65), 75);
  // Never below a tenth of the wanted pause (or 10 ms): QEMU must still be able to switch over.
  assert.equal(qemuDowntimeLimit(300, 400, 65), 30);
  assert.equal(qemuDowntimeLimit(40, 100, 100), 10);
  assert.equal(qemuDowntimeLimit(1000, 100.4, 50), 850);
  // QEMU believes the link is 7x faster than it is (zero pages): the limit shrinks with it.
  assert.equal(qemuDowntimeLimit(1000, 100, 200, 1 / 7), 100);
  assert.equal(qemuDowntimeLimit(300, 100, 50, 2), 150);
  assert.equal(qemuDowntimeLimit(300, 0, 0, 0), 30);
});
