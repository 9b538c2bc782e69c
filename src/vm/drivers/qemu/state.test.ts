import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePersistedHandleState, type PersistedHandleState } from '../../driver.js';
import { observedFromRunState, parseQemuHandleFile } from './state.js';

test('QEMU run states map to observed states', () => {
  const table: [string, string][] = [
    ['running', 'running'],
    ['prelaunch', 'created'],
    ['paused', 'paused'],
    ['suspended', 'paused'],
    ['inmigrate', 'incoming'],
    ['finish-migrate', 'migrating'],
    ['postmigrate', 'migrated'],
    ['shutdown', 'shutdown'],
    ['guest-panicked', 'crashed'],
    ['internal-error', 'crashed'],
    ['io-error', 'crashed'],
    ['colo', 'unknown'],
    ['something-new', 'unknown'],
  ];
  for (const [raw, observed] of table) assert.equal(observedFromRunState(raw), observed, raw);
});

const good: PersistedHandleState = {
  version: 1,
  driver: 'qemu',
  vmId: 'v',
  vmDir: '/d/vms/v',
  pid: 42,
  controlSocket: '/d/vms/v/qmp.sock',
  pidFile: '/d/vms/v/qemu.pid',
  serialLog: '/d/vms/v/serial.log',
  argsHash: 'ab',
  accel: 'tcg',
  startedAt: '2026-01-01T00:00:00.000Z',
  incoming: false,
};

test('handle state round-trips through JSON and rejects bad shapes', () => {
  assert.deepEqual(parsePersistedHandleState(JSON.parse(JSON.stringify(good))), good);
  assert.deepEqual(parseQemuHandleFile(JSON.stringify(good)), good);
  assert.equal(parseQemuHandleFile(JSON.stringify({ ...good, driver: 'sim' })), undefined);
  assert.equal(parseQemuHandleFile('{not json'), undefined);
  for (const bad of [
    null,
    3,
    { ...good, version: 2 },
    { ...good, pid: -1 },
    { ...good, pid: 1.5 },
    { ...good, vmDir: 7 },
    { ...good, incoming: 'no' },
  ])
    assert.equal(typeof parsePersistedHandleState(bad), 'string', JSON.stringify(bad));
});
