// Pure region planning: what the leader places, moves, assigns again or unassigns; the snapshot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { VmRecord } from '../store/types.js';
import { vmOperationTarget } from '../api/rest/cluster.js';
import { downLongEnough, planRegion, regionSnapshot, withAllocation } from './placement.js';

let n = 0;
function vm(p: Partial<VmRecord>): VmRecord {
  n++;
  return {
    id: `vm-${n}`,
    name: `vm-${n}`,
    spec: { cpus: 1, memoryMib: 64 },
    labels: {},
    node: null,
    desiredState: 'running',
    state: 'pending',
    restartPolicy: 'never',
    error: null,
    generation: 1,
    createdAt: '',
    updatedAt: '',
    ...p,
  } as VmRecord;
}

test('planRegion: pending creates are placed; scheduled rows without assignment are assigned', () => {
  const pending = vm({});
  const stoppedPending = vm({ desiredState: 'stopped' });
  const sched = vm({ node: 'a', state: 'scheduled' });
  const schedAssigned = vm({ node: 'a', state: 'scheduled' });
  const plan = planRegion({
    rows: [pending, stoppedPending, sched, schedAssigned],
    live: new Set(['a']),
    dueDown: new Set(),
    assignments: new Set([`a/${schedAssigned.id}`]),
  });
  assert.deepEqual(
    plan.place.map((v) => v.id),
    [pending.id],
  );
  assert.deepEqual(
    plan.assign.map((v) => v.id),
    [sched.id],
  );
  assert.deepEqual(plan.move, []);
  assert.deepEqual(plan.unassign, []);
});

test('planRegion: only HA VMs of nodes down long enough move; non-HA and stopped ones stay', () => {
  const ha = vm({ node: 'b', state: 'running', restartPolicy: 'always' });
  const haStopped = vm({ node: 'b', state: 'stopped', restartPolicy: 'always', desiredState: 'stopped' });
  const plain = vm({ node: 'b', state: 'running' });
  const haNotDue = vm({ node: 'c', state: 'running', restartPolicy: 'always' });
  const plan = planRegion({
    rows: [ha, haStopped, plain, haNotDue],
    live: new Set(['a']),
    dueDown: new Set(['b']),
    assignments: new Set(),
  });
  assert.deepEqual(
    plan.move.map((v) => v.id),
    [ha.id],
  );
});

test('planRegion: HA VMs fenced on a live node are assigned again; stale assignments removed', () => {
  const fenced = vm({
    node: 'a',
    state: 'failed',
    restartPolicy: 'always',
    error: 'fenced: node partitioned',
  });
  const crashed = vm({ node: 'a', state: 'failed', restartPolicy: 'always', error: 'start failed: x' });
  const moved = vm({ node: 'b', state: 'running' });
  const plan = planRegion({
    rows: [fenced, crashed, moved],
    live: new Set(['a', 'b']),
    dueDown: new Set(),
    assignments: new Set([`a/${moved.id}`, `b/${moved.id}`, 'a/gone']),
  });
  assert.deepEqual(
    plan.reassign.map((v) => v.id),
    [fenced.id],
  );
  assert.deepEqual(plan.unassign, [
    { node: 'a', vm: moved.id },
    { node: 'a', vm: 'gone' },
  ]);
});

test('planRegion: VMs a draining node handed back (stopped, desired running) are moved', () => {
  const handed = vm({ node: 'a', state: 'stopped' });
  const stillRunning = vm({ node: 'a', state: 'running' });
  const stoppedByUser = vm({ node: 'a', state: 'stopped', desiredState: 'stopped' });
  const plan = planRegion({
    rows: [handed, stillRunning, stoppedByUser],
    live: new Set(['a', 'b']),
    dueDown: new Set(),
    assignments: new Set(),
    draining: new Set(['a']),
  });
  assert.deepEqual(
    plan.move.map((v) => v.id),
    [handed.id],
  );
});

test('regionSnapshot: members with usage, draining marked; withAllocation adds to one node', () => {
  const s = regionSnapshot(
    [
      {
        id: 'a',
        addresses: [],
        capacity: { cpus: 4, memoryMiB: 1024, diskGiB: 10 },
        labels: {},
        driver: 'sim',
      },
      {
        id: 'b',
        addresses: [],
        capacity: { cpus: 2, memoryMiB: 512 },
        labels: { z: '1' },
        driver: 'sim',
        draining: true,
      },
    ],
    new Map([['a', { cpus: 1, memoryMib: 100, diskMib: 0, allocations: 1 }]]),
  );
  assert.deepEqual(
    s.nodes.map((x) => [x.id, x.status, x.allocated.cpus, x.capacity.cpus]),
    [
      ['a', 'ready', 1, 4],
      ['b', 'draining', 0, 2],
    ],
  );
  const s2 = withAllocation(s, 'a', { cpus: 2, memoryMib: 10 });
  assert.equal(s2.nodes[0]?.allocated.cpus, 3);
  assert.equal(s2.nodes[0]?.allocated.memoryMib, 110);
  assert.equal(s2.nodes[1]?.allocated.cpus, 0);
});

test('downLongEnough: lease TTL plus grace after the node was seen down', () => {
  assert.equal(downLongEnough(1000, 6999, 4000, 2000), false);
  assert.equal(downLongEnough(1000, 7000, 4000, 2000), true);
});

test('vmOperationTarget: process operations only', () => {
  assert.equal(vmOperationTarget('POST', '/api/v1/vms/abc/stop'), 'abc');
  assert.equal(vmOperationTarget('POST', '/api/v1/vms/abc/restart?x=1'), 'abc');
  assert.equal(vmOperationTarget('DELETE', '/api/v1/vms/a%20b'), 'a b');
  assert.equal(vmOperationTarget('PATCH', '/api/v1/vms/abc'), undefined);
  assert.equal(vmOperationTarget('POST', '/api/v1/vms'), undefined);
  assert.equal(vmOperationTarget('GET', '/api/v1/vms/abc'), undefined);
  assert.equal(vmOperationTarget('POST', '/api/v1/vms/abc/migrate'), undefined);
});
