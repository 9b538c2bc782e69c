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

test("QEMU's downtime-limit leaves room for the DWCP backlog and the control round trips", () => {
  assert.equal(qemuDowntimeLimit(300, 0, 0), 300);
  assert.equal(qemuDowntimeLimit(300, 160, 65), 75);
  // Never below a quarter of the wanted pause (QEMU would never switch over).
  assert.equal(qemuDowntimeLimit(300, 400, 65), 75);
  assert.equal(qemuDowntimeLimit(40, 100, 100), 20);
  assert.equal(qemuDowntimeLimit(1000, 100.4, 50), 850);
});
