// Drain targets (pure): who may take a live-migrated VM, best first, and why the others may not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeUsage } from '../store/types.js';
import type { NodeInfo } from './membership.js';
import { drainTargets } from './drain.js';

const member = (id: string, p: Partial<NodeInfo> = {}): NodeInfo => ({
  id,
  addresses: [`127.0.0.1:${id.length}`],
  capacity: { cpus: 8, memoryMiB: 8192, diskGiB: 10 },
  labels: {},
  driver: 'qemu',
  grpcUrl: `http://127.0.0.1:5${id.length}`,
  ...p,
});
const withoutGrpc = ({ grpcUrl: _url, ...rest }: NodeInfo): NodeInfo => rest;
const used = (cpus: number, memoryMib: number): NodeUsage => ({
  cpus,
  memoryMib,
  diskMib: 0,
  allocations: 1,
});

test('drainTargets: the scheduler order over eligible members, each reason for the rest', () => {
  const self = member('a', { draining: true });
  const members = [
    self,
    member('b'),
    member('c'),
    member('d', { draining: true }),
    member('e', { driver: 'sim' }),
    withoutGrpc(member('f')),
  ];
  // binpack: the fuller of b and c first
  const usage = new Map([
    ['b', used(2, 1024)],
    ['c', used(6, 6144)],
  ]);
  const r = drainTargets({
    self,
    members,
    usage,
    vm: { name: 'web' },
    resources: { cpus: 1, memoryMib: 512 },
    scheduler: { strategy: 'binpack' },
  });
  assert.deepEqual(r.targets, ['c', 'b']);
  assert.deepEqual(
    [...r.excluded].sort((x, y) => x.node.localeCompare(y.node)),
    [
      { node: 'd', reason: 'draining' },
      { node: 'e', reason: 'runs the sim driver, not qemu' },
      { node: 'f', reason: 'announces no gRPC address' },
    ],
  );
  // spread puts the emptier first
  const spread = drainTargets({
    self,
    members,
    usage,
    vm: { name: 'web' },
    resources: { cpus: 1, memoryMib: 512 },
    scheduler: { strategy: 'spread' },
  });
  assert.deepEqual(spread.targets, ['b', 'c']);
});

test('drainTargets: a VM that fits nowhere has no target, and the filter reasons say why', () => {
  const self = member('a');
  const r = drainTargets({
    self,
    members: [self, member('b'), member('c')],
    usage: new Map([
      ['b', used(8, 1024)],
      ['c', used(1, 8000)],
    ]),
    vm: { name: 'big' },
    resources: { cpus: 2, memoryMib: 1024 },
    scheduler: { strategy: 'binpack' },
  });
  assert.deepEqual(r.targets, []);
  assert.deepEqual(r.excluded.map((e) => e.node).sort(), ['b', 'c']);
  assert.ok(r.excluded.every((e) => e.reason.length > 0));
  // max caps the list
  const one = drainTargets({
    self,
    members: [self, member('b'), member('c')],
    usage: new Map(),
    vm: { name: 'small' },
    resources: { cpus: 1, memoryMib: 64 },
    scheduler: { strategy: 'binpack' },
    max: 1,
  });
  assert.equal(one.targets.length, 1);
});
