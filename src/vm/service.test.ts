// Property test of the VM service with the sim driver over SQLite: random sequences of operator
// operations either succeed or fail with InvalidStateError; the stored state is always a legal one,
// the generation strictly increases with every change, and allocations always match live VMs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import pino from 'pino';
import { EventBus } from '../boot/events.js';
import { HypervisorError, NovaCronError } from '../errors.js';
import { openStore } from '../store/index.js';
import { SimDriver } from './drivers/sim/driver.js';
import { VmService, timeOrderedId } from './service.js';
import { VM_STATES, canTransition, type VmState } from './state-machine.js';

const OPS = ['start', 'stop', 'restart', 'delete', 'create', 'crash'] as const;

test('random operation sequences never reach an illegal state; generation increases on every change', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.constantFrom(...OPS), { minLength: 1, maxLength: 25 }), async (ops) => {
      const store = await openStore({
        type: 'sqlite',
        path: ':memory:',
        dataDir: '/tmp',
        host: '',
        port: 0,
        database: '',
        user: '',
        password: '',
        poolSize: 1,
        ssl: false,
      });
      const events = new EventBus({ keepRecent: 10_000 });
      const driver = new SimDriver();
      const service = new VmService({
        store,
        driver,
        events,
        logger: pino({ level: 'silent' }),
        nodeId: 'n1',
        vmsRoot: '/tmp/nc-vm-prop-unused',
        capacity: { cpus: 4, memoryMib: 4096, diskMib: 0 },
        nodeLabels: {},
        scheduler: { strategy: 'balanced' },
        stopGraceMs: 0,
        checkPaths: false,
      });
      try {
        await service.create({ name: 'p', cpus: 1, memoryMib: 64 });
        for (const op of ops) {
          try {
            if (op === 'create') await service.create({ name: 'p', cpus: 1, memoryMib: 64 });
            else if (op === 'crash') {
              const vm = await store.vms.getByName('p');
              const h = vm && (await driver.list('/tmp/nc-vm-prop-unused')).find((d) => d.vmId === vm.id);
              if (vm && h?.persisted) {
                const r = await driver.recover(h.persisted);
                if (r.status === 'adopted') await driver.stop(r.handle, { graceMs: 0 });
                // Let the exit handler record it.
                await new Promise((resolve) => setImmediate(resolve));
              }
            } else if (op === 'delete') await service.delete('p');
            else await service[op]('p');
          } catch (err) {
            assert.ok(err instanceof NovaCronError, String(err));
            assert.ok(
              ['invalid_state', 'not_found', 'conflict'].includes(err.code),
              `${op}: ${err.code} ${err.message}`,
            );
          }
          const vm = await store.vms.getByName('p');
          const usage = await store.allocations.usage('n1');
          if (vm) {
            assert.ok((VM_STATES as readonly string[]).includes(vm.state));
            assert.equal(usage.allocations, vm.state === 'deleting' ? 0 : 1);
          } else assert.equal(usage.allocations, 0);
        }
        // Every published transition was legal, and generations of one VM strictly increase.
        const last = new Map<string, number>();
        for (const e of events.recent()) {
          if (e.type !== 'vm.state') continue;
          const { id, from, to, generation } = e.data as {
            id: string;
            from: string;
            to: string;
            generation: number;
          };
          if (to !== 'deleted') assert.ok(canTransition(from as VmState, to as VmState), `${from} → ${to}`);
          const prev = last.get(id) ?? 0;
          assert.ok(generation > prev, `generation ${generation} after ${prev}`);
          last.set(id, generation);
        }
      } finally {
        await service.close();
        await store.close();
      }
    }),
    { numRuns: 40 },
  );
});

async function pair(survivesRestart: boolean) {
  const store = await openStore({
    type: 'sqlite',
    path: ':memory:',
    dataDir: '/tmp',
    host: '',
    port: 0,
    database: '',
    user: '',
    password: '',
    poolSize: 1,
    ssl: false,
  });
  const make = (driver: SimDriver) =>
    new VmService({
      store,
      driver,
      events: new EventBus(),
      logger: pino({ level: 'silent' }),
      nodeId: 'n1',
      vmsRoot: '/tmp/nc-vm-reconcile-unused',
      capacity: { cpus: 16, memoryMib: 16384, diskMib: 0 },
      nodeLabels: {},
      scheduler: { strategy: 'balanced' },
      stopGraceMs: 0,
      checkPaths: false,
    });
  const first = make(new SimDriver());
  const restarted = () => make(new SimDriver({ survivesRestart }));
  return { store, first, restarted };
}

test('reconcile after a crash: half-created VMs are completed, half-deleted ones removed, live ones adopted', async () => {
  const { store, first, restarted } = await pair(true);
  const a = (await first.create({ name: 'half-created', cpus: 1, memoryMib: 64 })).vm;
  const b = (await first.create({ name: 'half-deleted', cpus: 2, memoryMib: 64 })).vm;
  const c = (await first.create({ name: 'live', cpus: 1, memoryMib: 64 })).vm;
  // What a kill -9 between the commits leaves behind: a row in `starting` without a handle, and a
  // row in `deleting` (its allocation already released in that transaction).
  const ra = await store.vms.require(a.id);
  await store.vms.update(a.id, ra.generation, { state: 'starting', spec: { ...ra.spec, handle: null } });
  const rb = await store.vms.require(b.id);
  await store.vms.update(b.id, rb.generation, { state: 'deleting' });
  await store.allocations.release(b.id);
  await first.close();
  const second = restarted();
  const summary = await second.reconcile();
  assert.deepEqual(
    { adopted: summary.adopted, completed: summary.completed, rolledBack: summary.rolledBack },
    { adopted: 1, completed: 1, rolledBack: 1 },
  );
  assert.equal((await store.vms.require(a.id)).state, 'running');
  assert.equal(await store.vms.get(b.id), undefined);
  assert.equal((await store.vms.require(c.id)).state, 'running');
  const usage = await store.allocations.usage('n1');
  assert.deepEqual([usage.allocations, usage.cpus], [2, 2]);
  assert.equal(second.liveHandles, 2);
  await second.close();
  await store.close();
});

test('reconcile: a running VM whose process is gone is failed, and restarted under restartPolicy always', async () => {
  const { store, first, restarted } = await pair(false);
  const never = (await first.create({ name: 'never', cpus: 1, memoryMib: 64 })).vm;
  const always = (await first.create({ name: 'always', cpus: 1, memoryMib: 64, restartPolicy: 'always' })).vm;
  await first.close();
  const second = restarted();
  const summary = await second.reconcile();
  assert.equal(summary.failed, 2);
  assert.equal(summary.restarted, 1);
  const n = await store.vms.require(never.id);
  assert.equal(n.state, 'failed');
  assert.match(n.error ?? '', /process gone after restart/);
  assert.equal((await store.vms.require(always.id)).state, 'running');
  await second.close();
  await store.close();
});

test('a VM that crashes is marked failed, and restarted under restartPolicy always', async () => {
  const { store, first } = await pair(true);
  const events = new EventBus();
  const driver = new SimDriver();
  const service = new VmService({
    store,
    driver,
    events,
    logger: pino({ level: 'silent' }),
    nodeId: 'n1',
    vmsRoot: '/tmp/nc-vm-crash-unused',
    capacity: { cpus: 4, memoryMib: 4096, diskMib: 0 },
    nodeLabels: {},
    scheduler: { strategy: 'balanced' },
    stopGraceMs: 0,
    checkPaths: false,
  });
  await first.close();
  const vm = (await service.create({ name: 'crashy', cpus: 1, memoryMib: 64, restartPolicy: 'always' })).vm;
  const other = (await service.create({ name: 'plain', cpus: 1, memoryMib: 64 })).vm;
  const seen: string[] = [];
  const restarted = new Promise<void>((resolve) =>
    events.subscribe((e) => {
      if (e.type !== 'vm.state') return;
      seen.push(`${String(e.data['name'])}:${String(e.data['to'])}`);
      if (e.data['name'] === 'crashy' && e.data['to'] === 'running') resolve();
    }),
  );
  const failedPlain = new Promise<void>((resolve) =>
    events.subscribe((e) => {
      if (e.type === 'vm.state' && e.data['name'] === 'plain' && e.data['to'] === 'failed') resolve();
    }),
  );
  for (const id of [vm.id, other.id]) {
    const found = (await driver.list('/tmp/nc-vm-crash-unused')).find((d) => d.vmId === id);
    assert.ok(found?.persisted);
    const r = await driver.recover(found.persisted);
    assert.equal(r.status, 'adopted');
    if (r.status === 'adopted') await driver.stop(r.handle, { graceMs: 0 }); // not through the service: a crash
  }
  await Promise.all([restarted, failedPlain]);
  assert.deepEqual(
    seen.filter((s) => s.startsWith('crashy')),
    ['crashy:failed', 'crashy:starting', 'crashy:running'],
  );
  assert.equal((await store.vms.require(other.id)).state, 'failed');
  assert.match((await store.vms.require(other.id)).error ?? '', /process exited/);
  await service.close();
  await store.close();
});

test('sim create records all three steps in one commit; a refused start, a replay and a failed commit leave no stray VM', async () => {
  const store = await openStore({
    type: 'sqlite',
    path: ':memory:',
    dataDir: '/tmp',
    host: '',
    port: 0,
    database: '',
    user: '',
    password: '',
    poolSize: 1,
    ssl: false,
  });
  const root = '/tmp/nc-vm-inline-unused';
  const driver = new SimDriver({
    failStart: (s) => (s.name === 'refused' ? new HypervisorError('injected start failure') : undefined),
  });
  const service = new VmService({
    store,
    driver,
    events: new EventBus(),
    logger: pino({ level: 'silent' }),
    nodeId: 'n1',
    vmsRoot: root,
    capacity: { cpus: 2, memoryMib: 4096, diskMib: 0 },
    nodeLabels: {},
    scheduler: { strategy: 'balanced' },
    stopGraceMs: 0,
    checkPaths: false,
  });
  const running = async () => (await driver.list(root)).map((d) => d.vmId).sort();
  try {
    const a = (await service.create({ name: 'a', cpus: 1, memoryMib: 64 }, 'key-a')).vm;
    assert.deepEqual([a.state, a.generation, a.driver], ['running', 3, 'sim']);
    const audit = await store.events.list({ resourceId: a.id });
    assert.deepEqual(
      audit.map((e) => [e.data['from'], e.data['to'], e.data['generation']]),
      [
        ['pending', 'scheduled', 1],
        ['scheduled', 'starting', 2],
        ['starting', 'running', 3],
      ],
    );
    // Replay of the key: the same VM, and the start made for it is undone.
    const again = await service.create({ name: 'a', cpus: 1, memoryMib: 64 }, 'key-a');
    assert.deepEqual([again.replayed, again.vm.id], [true, a.id]);
    // A taken name and a node that is full: errors, and nothing left running.
    await assert.rejects(service.create({ name: 'a', cpus: 1, memoryMib: 64 }), /vm already exists: a/);
    await assert.rejects(service.create({ name: 'big', cpus: 2, memoryMib: 64 }), /resource exhausted: cpus/);
    assert.deepEqual(await running(), [a.id]);
    // The driver refuses the start: recorded failed step by step, as for any driver.
    const r = (await service.create({ name: 'refused', cpus: 1, memoryMib: 64 })).vm;
    assert.equal(r.state, 'failed');
    assert.match(r.error ?? '', /start failed: injected start failure/);
    assert.deepEqual(await running(), [a.id]);
    assert.deepEqual(await store.allocations.usage('n1'), await store.allocations.summedUsage('n1'));
    assert.equal((await store.allocations.usage('n1')).cpus, 2);
  } finally {
    await service.close();
    await store.close();
  }
});

test('VM ids are UUID v7: valid, unique, and in creation order across milliseconds', () => {
  const ids = Array.from({ length: 2000 }, (_, i) => timeOrderedId(1_700_000_000_000 + Math.floor(i / 10)));
  for (const id of ids)
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(new Set(ids).size, ids.length);
  for (let i = 10; i < ids.length; i += 10) assert.ok(ids[i - 10]! < ids[i]!, `${ids[i - 10]} < ${ids[i]}`);
  assert.equal(timeOrderedId(0x0123456789ab).slice(0, 13), '01234567-89ab');
});

test('operations on a row whose node is another node are refused, naming that node (no region)', async () => {
  const store = await openStore({
    type: 'sqlite',
    path: ':memory:',
    dataDir: '/tmp',
    host: '',
    port: 0,
    database: '',
    user: '',
    password: '',
    poolSize: 1,
    ssl: false,
  });
  const service = new VmService({
    store,
    driver: new SimDriver(),
    events: new EventBus({ keepRecent: 100 }),
    logger: pino({ level: 'silent' }),
    nodeId: 'n1',
    vmsRoot: '/tmp/nc-vm-elsewhere-unused',
    capacity: { cpus: 4, memoryMib: 4096, diskMib: 0 },
    nodeLabels: {},
    scheduler: { strategy: 'balanced' },
    stopGraceMs: 0,
    checkPaths: false,
  });
  try {
    await service.create({ name: 'moved', cpus: 1, memoryMib: 64 });
    // What a node keeps after migrating the VM to n2: the row points at n2.
    const vm = (await store.vms.getByName('moved'))!;
    await store.vms.update(vm.id, vm.generation, { node: 'n2' });
    for (const op of [
      () => service.stop('moved'),
      () => service.start('moved'),
      () => service.restart('moved'),
      () => service.delete('moved'),
    ]) {
      await assert.rejects(op, (err: unknown) => {
        assert.ok(err instanceof NovaCronError);
        assert.equal(err.code, 'invalid_state');
        assert.match(err.message, /vm moved runs on node n2, not on this node \(n1\)/);
        return true;
      });
    }
    // Nothing changed: the row is still there, running, on n2.
    const after = (await store.vms.getByName('moved'))!;
    assert.equal(after.node, 'n2');
    assert.equal(after.state, 'running');
  } finally {
    await service.close();
    await store.close();
  }
});
