// Resource accounting under concurrency (sim driver, SQLite file store): 1,000 concurrent creates on
// one node that cannot hold them all, with duplicate names and concurrent deletes mixed in. Every
// request succeeds or fails cleanly; no VM is lost or duplicated; allocations equal the live VMs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { EventBus } from '../../src/boot/events.js';
import { NovaCronError } from '../../src/errors.js';
import { openStore, type Store } from '../../src/store/index.js';
import { SimDriver } from '../../src/vm/drivers/sim/driver.js';
import { VmService } from '../../src/vm/service.js';

const NODE = 'node-a';

async function setup(
  cpus: number,
): Promise<{ store: Store; service: VmService; dir: string; driver: SimDriver }> {
  const dir = mkdtempSync(join(tmpdir(), 'nc-vm-conc-'));
  const store = await openStore({
    type: 'sqlite',
    path: '',
    dataDir: dir,
    host: '',
    port: 0,
    database: '',
    user: '',
    password: '',
    poolSize: 1,
    ssl: false,
  });
  const driver = new SimDriver();
  const service = new VmService({
    store,
    driver,
    events: new EventBus(),
    logger: pino({ level: 'silent' }),
    nodeId: NODE,
    vmsRoot: join(dir, 'vms'),
    capacity: { cpus, memoryMib: cpus * 1024, diskMib: 0 },
    nodeLabels: {},
    scheduler: { strategy: 'balanced' },
    stopGraceMs: 0,
    checkPaths: false,
  });
  return { store, service, dir, driver };
}

/** Rows, allocations, the node's running totals and the driver's VMs all agree. */
async function assertNoDrift(store: Store, driver: SimDriver, dir: string): Promise<{ live: number }> {
  const vms = (await store.vms.list({ limit: 1000 })).items;
  const usage = await store.allocations.usage(NODE);
  assert.deepEqual(usage, await store.allocations.summedUsage(NODE), 'running totals equal the sums');
  const running = await driver.list(join(dir, 'vms'));
  assert.deepEqual(
    running.map((h) => h.vmId).sort(),
    vms.map((v) => v.id).sort(),
    'exactly the recorded VMs run in the driver (failed creates undone)',
  );
  const specs = vms.map((v) => v.spec as { cpus: number; memoryMib: number });
  assert.equal(usage.allocations, vms.length, 'one allocation per live VM');
  assert.equal(
    usage.cpus,
    specs.reduce((a, s) => a + s.cpus, 0),
  );
  assert.equal(
    usage.memoryMib,
    specs.reduce((a, s) => a + s.memoryMib, 0),
  );
  assert.equal(new Set(vms.map((v) => v.name)).size, vms.length, 'names unique');
  return { live: vms.length };
}

test('1,000 concurrent creates on a node that fits 600: 600 succeed, 400 fail with 409, no drift', async () => {
  const { store, service, dir, driver } = await setup(600);
  try {
    const results = await Promise.allSettled(
      Array.from({ length: 1000 }, (_, i) => service.create({ name: `vm-${i}`, cpus: 1, memoryMib: 1024 })),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(ok.length, 600);
    assert.equal(failed.length, 400);
    for (const f of failed) {
      assert.ok(f.reason instanceof NovaCronError);
      assert.equal(f.reason.code, 'resource_exhausted');
      assert.match(f.reason.message, /^resource exhausted: cpus \(requested 1, free 0\)$/);
    }
    for (const r of ok) assert.equal(r.value.vm.state, 'running');
    const ids = ok.map((r) => r.value.vm.id);
    assert.equal(new Set(ids).size, 600, 'no duplicated VM');
    assert.equal((await assertNoDrift(store, driver, dir)).live, 600);
    assert.equal(service.liveHandles, 600);
  } finally {
    await service.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('concurrent creates with duplicate names and idempotency keys, mixed with deletes: no drift', async () => {
  const { store, service, dir, driver } = await setup(1000);
  try {
    const first = await Promise.all(
      Array.from({ length: 200 }, (_, i) => service.create({ name: `base-${i}`, cpus: 1, memoryMib: 64 })),
    );
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 300; i++) {
      ops.push(service.create({ name: `dup-${i % 150}`, cpus: 2, memoryMib: 128 }));
      ops.push(service.create({ name: `idem-${i % 100}`, cpus: 1, memoryMib: 32 }, `key-${i % 100}`));
    }
    for (const f of first.slice(0, 100)) ops.push(service.delete(f.vm.id));
    const results = await Promise.allSettled(ops);
    const errors = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    // 150 duplicate-name losers; nothing else fails.
    assert.equal(
      errors.length,
      150,
      errors
        .map((e) => String(e.reason))
        .slice(0, 3)
        .join('\n'),
    );
    for (const e of errors) assert.match(String(e.reason.message), /vm already exists: dup-/);
    const idemIds = new Map<string, Set<string>>();
    results.forEach((r, i) => {
      if (r.status !== 'fulfilled' || i >= 600 || i % 2 === 0) return;
      const v = (r.value as { vm: { id: string; name: string } }).vm;
      (idemIds.get(v.name) ?? idemIds.set(v.name, new Set()).get(v.name)!).add(v.id);
    });
    assert.equal(idemIds.size, 100);
    for (const set of idemIds.values()) assert.equal(set.size, 1, 'same key → same VM');
    const { live } = await assertNoDrift(store, driver, dir);
    assert.equal(live, 100 + 150 + 100);
  } finally {
    await service.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
