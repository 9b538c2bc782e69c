import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConflictError, HypervisorError, InvalidStateError, ValidationError } from '../../../errors.js';
import { parsePersistedHandleState, type VmDriverEvent, type VmSpec } from '../../driver.js';
import { SimDriver } from './driver.js';

const spec = (id: string): VmSpec => ({
  id,
  name: `vm-${id}`,
  cpus: 1,
  memoryMib: 128,
  disks: [],
  network: { mode: 'none' },
  labels: {},
});
const dirs = (id: string): { vmDir: string } => ({ vmDir: `/data/vms/${id}` });

test('sim says it is a simulator everywhere', async () => {
  const d = new SimDriver();
  assert.equal(d.name, 'sim');
  assert.equal(d.capabilities().simulated, true);
  const h = await d.health();
  assert.equal(h.status, 'healthy');
  assert.equal(h.simulated, true);
  assert.match(h.detail, /^sim: simulated/);
  const vm = await d.start(spec('a'), dirs('a'));
  assert.equal((await d.inspect(vm)).simulated, true);
});

test('lifecycle: start, pause, resume, graceful stop, destroy', async () => {
  const d = new SimDriver();
  const vm = await d.start(spec('a'), dirs('a'));
  const seen: VmDriverEvent[] = [];
  vm.onEvent((e) => seen.push(e));
  assert.equal((await d.inspect(vm)).state, 'running');
  await d.pause(vm);
  assert.equal((await d.inspect(vm)).state, 'paused');
  await d.resume(vm);
  const r = await d.stop(vm, { graceMs: 1000 });
  assert.equal(r.method, 'powerdown');
  assert.equal(r.exit.guest, true);
  assert.deepEqual(await vm.exited, r.exit);
  assert.equal((await d.inspect(vm)).alive, false);
  assert.deepEqual((await d.stop(vm, { graceMs: 1000 })).method, 'already-exited');
  await d.destroy(vm, { force: false });
  assert.deepEqual(
    seen.map((e) => (e.type === 'state' ? e.state : e.type)),
    ['paused', 'running', 'exited', 'exit'],
  );
  assert.deepEqual(await d.list('/data/vms'), []);
});

test('a paused VM cannot honour the power button; stop quits it', async () => {
  const d = new SimDriver();
  const vm = await d.start(spec('a'), dirs('a'));
  await d.pause(vm);
  assert.equal((await d.stop(vm, { graceMs: 1000 })).method, 'quit');
});

test('no duplicate starts; destroy of a running VM needs force', async () => {
  const d = new SimDriver();
  const vm = await d.start(spec('a'), dirs('a'));
  await assert.rejects(d.start(spec('a'), dirs('a')), ConflictError);
  await assert.rejects(d.destroy(vm, { force: false }), InvalidStateError);
  await d.destroy(vm, { force: true });
  const again = await d.start(spec('a'), dirs('a'));
  assert.equal((await d.inspect(again)).state, 'running');
});

test('invalid specs are rejected', async () => {
  const d = new SimDriver();
  await assert.rejects(d.start({ ...spec('a'), cpus: 0 }, dirs('a')), ValidationError);
  await assert.rejects(d.start({ ...spec('a'), memoryMib: 1 }, dirs('a')), ValidationError);
});

test('start delay: created then running; incoming waits', async () => {
  const d = new SimDriver({ startDelayMs: 5 });
  const vm = await d.start(spec('a'), dirs('a'));
  assert.equal((await d.inspect(vm)).state, 'running');
  const paused = await d.start(spec('b'), dirs('b'), { paused: true });
  assert.equal((await d.inspect(paused)).state, 'created');
  await d.resume(paused);
  assert.equal((await d.inspect(paused)).state, 'running');
  const incoming = await d.start(spec('c'), dirs('c'), { incoming: 'defer' });
  assert.equal((await d.inspect(incoming)).state, 'incoming');
  await assert.rejects(d.pause(incoming), InvalidStateError);
});

test('persisted state is plain JSON and recovers on a fresh driver (a simulated restart)', async () => {
  const before = new SimDriver();
  const vm = await before.start(spec('a'), dirs('a'));
  const json = JSON.parse(JSON.stringify(vm.persisted())) as unknown;
  const state = parsePersistedHandleState(json);
  assert.ok(typeof state !== 'string', String(state));
  await before.close();

  const after = new SimDriver();
  const first = await after.recover(state);
  assert.equal(first.status, 'adopted');
  const second = await after.recover(state);
  assert.ok(
    first.status === 'adopted' && second.status === 'adopted' && first.handle === second.handle,
    'no duplicate',
  );
  await assert.rejects(after.start(spec('a'), dirs('a')), ConflictError);

  const lossy = new SimDriver({ survivesRestart: false });
  assert.equal((await lossy.recover(state)).status, 'gone');
  await assert.rejects(after.recover({ ...state, driver: 'qemu' }), InvalidStateError);
});

test('reconcile adopts known VMs and reports unknown ones as orphans', async () => {
  const d = new SimDriver();
  const a = await d.start(spec('a'), dirs('a'));
  await d.start(spec('b'), dirs('b'));
  await d.start(spec('c'), { vmDir: '/elsewhere/c' });
  const report = await d.reconcile('/data/vms', [a.persisted()]);
  assert.deepEqual(
    report.adopted.map((h) => h.vmId),
    ['a'],
  );
  assert.deepEqual(
    report.orphans.map((h) => h.vmId),
    ['b'],
  );
  assert.deepEqual(report.gone, []);
});

test('1,000 concurrent starts: all succeed, none duplicated', async () => {
  const d = new SimDriver();
  const ids = Array.from({ length: 1000 }, (_, i) => `vm-${i}`);
  const handles = await Promise.all(ids.map((id) => d.start(spec(id), dirs(id))));
  assert.equal(new Set(handles.map((h) => h.vmId)).size, 1000);
  assert.equal((await d.list('/data/vms')).length, 1000);
  const dup = await Promise.allSettled(ids.slice(0, 10).map((id) => d.start(spec(id), dirs(id))));
  assert.ok(dup.every((r) => r.status === 'rejected' && r.reason instanceof ConflictError));
  await Promise.all(handles.map((h) => d.destroy(h, { force: true })));
  assert.equal((await d.list('/data/vms')).length, 0);
});

test('failStart injects start failures without leaving a VM behind', async () => {
  const d = new SimDriver({
    failStart: (s) => (s.id.endsWith('7') ? new HypervisorError('injected') : undefined),
  });
  const results = await Promise.allSettled(['1', '7', '17', '2'].map((id) => d.start(spec(id), dirs(id))));
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'rejected', 'fulfilled'],
  );
  assert.deepEqual((await d.list('/data/vms')).map((x) => x.vmId).sort(), ['1', '2']);
});
