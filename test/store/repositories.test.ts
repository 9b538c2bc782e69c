// The same repository tests against both dialects: SQLite (a temp file) and PostgreSQL (a fresh
// database on the machine's server, dropped afterwards).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConflictError, NotFoundError, ValidationError } from '../../src/errors.js';
import { openStore, type Store } from '../../src/store/index.js';
import { baseConfig, createTestDatabase, missing, tempSqlitePath, usePostgres } from './fixtures.js';

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const pgUp = await usePostgres();

/** A clock that advances 1 ms per reading, so creation order is deterministic. */
function tickingClock(start = Date.parse('2026-01-01T00:00:00.000Z')): () => Date {
  let t = start;
  return () => new Date(t++);
}

interface Harness {
  open(): Promise<Store>;
  cleanup(): Promise<void>;
}

async function sqliteHarness(): Promise<Harness> {
  const tmp = tempSqlitePath();
  return {
    open: () => openStore(baseConfig({ path: tmp.path }), { now: tickingClock() }),
    cleanup: async () => tmp.cleanup(),
  };
}

async function postgresHarness(): Promise<Harness> {
  const db = await createTestDatabase();
  return {
    open: () =>
      openStore(baseConfig({ type: 'postgresql', database: db.name, poolSize: 10 }), { now: tickingClock() }),
    cleanup: () => db.drop(),
  };
}

const dialects = [
  { name: 'sqlite', make: sqliteHarness, skip: false as const },
  {
    name: 'postgresql',
    make: postgresHarness,
    skip: pgUp ? (false as const) : missing('PostgreSQL (127.0.0.1:5432 or initdb/pg_ctl)'),
  },
];

for (const d of dialects) {
  describe(`store repositories (${d.name})`, { skip: d.skip }, () => {
    let h: Harness;
    let store: Store;
    before(async () => {
      h = await d.make();
      store = await h.open();
    });
    after(async () => {
      await store.close();
      await h.cleanup();
    });

    const newVm = (id: string, name: string, extra: Record<string, unknown> = {}) => ({
      id,
      name,
      spec: { cpus: 1, memoryMib: 256, disks: [{ size: 1 }] },
      desiredState: 'running',
      state: 'pending',
      ...extra,
    });

    it('inserts, reads and rejects a duplicate name', async () => {
      const vm = await store.vms.insert(
        newVm('vm-a', 'alpha', { labels: { app: 'web' }, restartPolicy: 'always' }),
      );
      assert.equal(vm.generation, 1);
      assert.match(vm.createdAt, ISO);
      assert.equal(vm.createdAt, vm.updatedAt);
      const got = await store.vms.get('vm-a');
      assert.deepEqual(got, vm);
      assert.deepEqual((await store.vms.getByName('alpha'))?.id, 'vm-a');
      assert.deepEqual(got?.spec, { cpus: 1, memoryMib: 256, disks: [{ size: 1 }] });
      assert.equal(got?.restartPolicy, 'always');
      assert.equal(await store.vms.get('nope'), undefined);
      await assert.rejects(store.vms.insert(newVm('vm-a2', 'alpha')), (e: unknown) => {
        assert.ok(e instanceof ConflictError);
        assert.equal(e.message, 'vm already exists: alpha');
        return true;
      });
      await assert.rejects(store.vms.require('nope'), NotFoundError);
    });

    it('updates with optimistic concurrency on the generation', async () => {
      await store.vms.insert(newVm('vm-b', 'bravo'));
      const v2 = await store.vms.update('vm-b', 1, { state: 'scheduled', node: 'n1' });
      assert.equal(v2.generation, 2);
      assert.equal(v2.state, 'scheduled');
      assert.equal(v2.node, 'n1');
      assert.ok(v2.updatedAt > v2.createdAt);
      await assert.rejects(store.vms.update('vm-b', 1, { state: 'running' }), (e: unknown) => {
        assert.ok(e instanceof ConflictError);
        assert.deepEqual(e.details, { expected: 1, actual: 2 });
        return true;
      });
      await assert.rejects(store.vms.update('ghost', 1, { state: 'running' }), NotFoundError);
      await assert.rejects(store.vms.update('vm-b', 2, { name: 'alpha' }), ConflictError);
      // Of N concurrent writers at the same generation exactly one wins.
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) => store.vms.update('vm-b', 2, { error: `writer ${i}` })),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      assert.equal((await store.vms.require('vm-b')).generation, 3);
    });

    it('lists with filters and cursor pagination', async () => {
      for (let i = 0; i < 25; i++) {
        await store.vms.insert(
          newVm(`list-${String(i).padStart(2, '0')}`, `list-${i}`, {
            state: i % 2 === 0 ? 'running' : 'stopped',
            node: i % 3 === 0 ? 'n1' : 'n2',
            labels: { tier: i < 10 ? 'front' : 'back', 'odd.key': 'x' },
          }),
        );
      }
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await store.vms.list({
          filters: { namePrefix: 'list-' },
          limit: 7,
          ...(cursor === undefined ? {} : { cursor }),
        });
        seen.push(...page.items.map((v) => v.id));
        cursor = page.nextCursor;
        pages++;
      } while (cursor !== undefined);
      assert.equal(pages, 4);
      assert.equal(seen.length, 25);
      assert.equal(new Set(seen).size, 25);
      assert.deepEqual(seen, [...seen].sort());
      const running = await store.vms.list({
        filters: { namePrefix: 'list-', state: 'running' },
        limit: 100,
      });
      assert.equal(running.items.length, 13);
      assert.equal(running.nextCursor, undefined);
      const both = await store.vms.count({ namePrefix: 'list-', state: ['running', 'stopped'] });
      assert.equal(both, 25);
      assert.equal(await store.vms.count({ namePrefix: 'list-', node: 'n1' }), 9);
      assert.equal(await store.vms.count({ namePrefix: 'list-', labels: { tier: 'front' } }), 10);
      assert.equal(
        await store.vms.count({ namePrefix: 'list-', labels: { tier: 'front', 'odd.key': 'x' } }),
        10,
      );
      assert.equal(await store.vms.count({ namePrefix: 'list-', labels: { tier: 'nope' } }), 0);
      assert.equal(await store.vms.count({ namePrefix: 'list-', state: [] }), 0);
      await assert.rejects(store.vms.list({ cursor: 'garbage!' }), ValidationError);
      await assert.rejects(store.vms.list({ limit: 0 }), ValidationError);
    });

    it('commits a state change and its audit event together, or neither', async () => {
      await store.vms.insert(newVm('vm-t', 'tango'));
      await store.transaction(async (tx) => {
        const vm = await tx.vms.update('vm-t', 1, { state: 'starting' });
        await tx.events.append({
          type: 'vm.state',
          resourceType: 'vm',
          resourceId: vm.id,
          data: { from: 'pending', to: 'starting', generation: vm.generation },
        });
      });
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.vms.update('vm-t', 2, { state: 'running' });
          await tx.events.append({
            type: 'vm.state',
            resourceType: 'vm',
            resourceId: 'vm-t',
            data: { to: 'running' },
          });
          throw new Error('driver failed');
        }),
        /driver failed/,
      );
      const vm = await store.vms.require('vm-t');
      assert.equal(vm.state, 'starting');
      assert.equal(vm.generation, 2);
      const events = await store.events.list({ resourceType: 'vm', resourceId: 'vm-t' });
      assert.equal(events.length, 1);
      assert.deepEqual(events[0]?.data, { from: 'pending', to: 'starting', generation: 2 });
      assert.match(events[0]?.at ?? '', ISO);
    });

    it('keeps an ordered, resumable audit log', async () => {
      const first = await store.events.append({
        type: 'node.status',
        resourceType: 'node',
        resourceId: 'n9',
        nodeId: 'n9',
      });
      for (let i = 0; i < 5; i++) {
        await store.events.append({
          type: 'node.status',
          resourceType: 'node',
          resourceId: 'n9',
          data: { i },
        });
      }
      const all = await store.events.list({ resourceId: 'n9' });
      assert.equal(all.length, 6);
      assert.deepEqual(
        all.map((e) => e.id),
        [...all.map((e) => e.id)].sort((a, b) => a - b),
      );
      assert.equal(all[0]?.nodeId, 'n9');
      const resumed = await store.events.list({ resourceId: 'n9', afterId: first.id }, { limit: 2 });
      assert.deepEqual(
        resumed.map((e) => e.data.i),
        [0, 1],
      );
      const newest = await store.events.list({ resourceId: 'n9' }, { limit: 2, newest: true });
      assert.deepEqual(
        newest.map((e) => e.data.i),
        [3, 4],
      );
      assert.equal(typeof first.id, 'number');
    });

    it('accounts allocations without overcommit, even concurrently', async () => {
      const capacity = { cpus: 8, memoryMib: 4096, diskMib: 10_000 };
      const ids = Array.from({ length: 30 }, (_, i) => `alloc-${i}`);
      for (const id of ids) await store.vms.insert(newVm(id, id));
      const results = await Promise.all(
        ids.map((id) =>
          store.allocations.reserve({ vmId: id, nodeId: 'cap-node', cpus: 1, memoryMib: 256 }, capacity),
        ),
      );
      assert.equal(results.filter((r) => r.ok).length, 8);
      const refused = results.find((r) => !r.ok);
      assert.deepEqual(refused, { ok: false, what: 'cpus', requested: 1, free: 0 });
      assert.deepEqual(await store.allocations.usage('cap-node'), {
        cpus: 8,
        memoryMib: 2048,
        diskMib: 0,
        allocations: 8,
      });
      const memShort = await store.allocations.reserve(
        { vmId: 'alloc-29', nodeId: 'other', cpus: 1, memoryMib: 5000 },
        capacity,
      );
      assert.deepEqual(memShort, { ok: false, what: 'memory_mib', requested: 5000, free: 4096 });
      // Deleting a VM frees what it held (foreign key cascade); releasing works directly too.
      const holder = results.findIndex((r) => r.ok);
      assert.equal(await store.vms.delete(ids[holder] ?? ''), true);
      assert.equal((await store.allocations.usage('cap-node')).cpus, 7);
      const okOne = results.flatMap((r) => (r.ok ? [r.allocation] : [])).at(-1);
      assert.equal(await store.allocations.release(okOne?.vmId ?? ''), 1);
      assert.equal((await store.allocations.usage('cap-node')).cpus, 6);
      assert.equal((await store.allocations.list({ nodeId: 'cap-node' })).length, 6);
      // An allocation for a VM that does not exist is refused by the foreign key.
      await assert.rejects(
        store.allocations.reserve(
          { vmId: 'no-such-vm', nodeId: 'cap-node', cpus: 1, memoryMib: 1 },
          capacity,
        ),
        ConflictError,
      );
    });

    it('keeps the per-node totals equal to the sums of allocations on every write path', async () => {
      const capacity = { cpus: 1000, memoryMib: 1_000_000, diskMib: 1_000_000 };
      const nodes = ['tot-a', 'tot-b', 'tot-c'];
      const ids = Array.from({ length: 24 }, (_, i) => `tot-${i}`);
      for (const id of ids) await store.vms.insert(newVm(id, id));
      const check = async (when: string) => {
        for (const n of nodes)
          assert.deepEqual(
            await store.allocations.usage(n),
            await store.allocations.summedUsage(n),
            `${when}: node ${n}`,
          );
      };
      await Promise.all(
        ids.map((id, i) =>
          store.allocations.reserve(
            { vmId: id, nodeId: nodes[i % 3]!, cpus: 1 + (i % 4), memoryMib: 64 * (i + 1), diskMib: i },
            capacity,
          ),
        ),
      );
      await check('after reserves');
      assert.equal((await store.allocations.usage('tot-a')).allocations, 8);
      // A rolled-back reservation leaves no trace in the totals.
      await assert.rejects(
        store.transaction(async (tx) => {
          await tx.vms.insert(newVm('tot-rb', 'tot-rb'));
          await tx.allocations.reserve({ vmId: 'tot-rb', nodeId: 'tot-a', cpus: 7, memoryMib: 7 }, capacity);
          throw new Error('roll back');
        }),
        /roll back/,
      );
      await check('after a rollback');
      // Moved to another node (an update of the row), released, deleted with the VM (cascade).
      await store.db
        .updateTable('allocations')
        .set({ node_id: 'tot-c' })
        .where('vm_id', '=', 'tot-0')
        .execute();
      await store.allocations.release('tot-1');
      await store.vms.delete('tot-2');
      await store.transaction(async (tx) => {
        await tx.allocations.release('tot-3');
        await tx.vms.delete('tot-4');
      });
      await check('after move, release and cascade');
      for (const id of ids) await store.vms.delete(id);
      await check('after deleting everything');
      assert.deepEqual(await store.allocations.usage('tot-b'), {
        cpus: 0,
        memoryMib: 0,
        diskMib: 0,
        allocations: 0,
      });
    });

    it('creates a VM once per idempotency key, even for concurrent retries', async () => {
      const create = (key: string, body: string, name: string) =>
        store.transaction(async (tx) => {
          const claim = await tx.idempotency.claim('vm.create', key, body);
          if (claim.status !== 'claimed') return claim;
          const vm = await tx.vms.insert(newVm(`idem-${name}`, name));
          await tx.idempotency.complete('vm.create', key, vm.id, { id: vm.id, name: vm.name });
          return { status: 'created' as const, id: vm.id };
        });
      const results = await Promise.all(
        Array.from({ length: 6 }, () => create('key-1', 'hash-a', 'idem-one')),
      );
      assert.equal(results.filter((r) => r.status === 'created').length, 1);
      for (const r of results.filter((x) => x.status === 'replay')) {
        assert.deepEqual(r, {
          status: 'replay',
          resourceId: 'idem-idem-one',
          response: { id: 'idem-idem-one', name: 'idem-one' },
        });
      }
      assert.equal(results.filter((r) => r.status === 'replay').length, 5);
      assert.deepEqual(await create('key-1', 'hash-b', 'idem-two'), { status: 'mismatch' });
      assert.equal(await store.vms.count({ namePrefix: 'idem-' }), 1);
      assert.equal(await store.idempotency.purgeExpired(), 0);
    });

    it('tracks VM migrations, one active per VM', async () => {
      await store.vms.insert(newVm('vm-m', 'mike', { state: 'running', node: 'n1' }));
      const m = await store.migrations.insert({
        id: 'mig-1',
        vmId: 'vm-m',
        kind: 'live',
        sourceNode: 'n1',
        targetNode: 'n2',
        maxDowntimeMs: 500,
      });
      assert.equal(m.state, 'pending');
      assert.equal(m.phase, 'prepare');
      await assert.rejects(
        store.migrations.insert({
          id: 'mig-2',
          vmId: 'vm-m',
          kind: 'live',
          sourceNode: 'n1',
          targetNode: 'n3',
        }),
        /already has an active migration/,
      );
      const big = 5 * 1024 ** 3; // beyond 32 bits
      const running = await store.migrations.update('mig-1', {
        state: 'running',
        phase: 'transfer',
        bytesSent: big,
        bytesRemaining: 1024,
        progress: { dirtyRateBps: 1e6 },
      });
      assert.equal(running.bytesSent, big);
      assert.deepEqual(running.progress, { dirtyRateBps: 1e6 });
      assert.equal((await store.migrations.activeForVm('vm-m'))?.id, 'mig-1');
      await assert.rejects(
        store.migrations.update('mig-1', { state: 'cancelled' }, 'pending'),
        ConflictError,
      );
      const done = await store.migrations.update(
        'mig-1',
        {
          state: 'completed',
          phase: 'done',
          downtimeMs: 42,
          totalMs: 3100,
          finishedAt: new Date().toISOString(),
        },
        'running',
      );
      assert.equal(done.downtimeMs, 42);
      assert.match(done.finishedAt ?? '', ISO);
      assert.equal(await store.migrations.activeForVm('vm-m'), undefined);
      await store.migrations.insert({
        id: 'mig-3',
        vmId: 'vm-m',
        kind: 'cold',
        sourceNode: 'n2',
        targetNode: 'n1',
      });
      assert.deepEqual(
        (await store.migrations.list({ vmId: 'vm-m' })).map((x) => x.id),
        ['mig-3', 'mig-1'],
      );
      assert.equal((await store.migrations.list({ node: 'n3' })).length, 0);
      await assert.rejects(store.migrations.update('nope', { state: 'failed' }), NotFoundError);
    });

    it('stores nodes and bandwidth samples', async () => {
      const n = await store.nodes.upsert({
        id: 'n1',
        address: '127.0.0.1:8080',
        status: 'ready',
        driver: 'sim',
        capacity: { cpus: 4, memoryMib: 8192, diskMib: 100_000 },
        labels: { zone: 'a' },
      });
      assert.equal(n.name, 'n1');
      const again = await store.nodes.upsert({ ...n, status: 'draining', name: 'node-one' });
      assert.equal(again.createdAt, n.createdAt);
      assert.equal(again.status, 'draining');
      assert.deepEqual(again.capacity, { cpus: 4, memoryMib: 8192, diskMib: 100_000 });
      assert.equal((await store.nodes.setStatus('n1', 'down')).status, 'down');
      await assert.rejects(store.nodes.setStatus('nx', 'down'), NotFoundError);
      assert.equal(await store.nodes.touch('n1'), true);
      assert.equal((await store.nodes.list({ status: 'down' })).length, 1);

      const t0 = Date.parse('2026-02-01T00:00:00.000Z');
      const samples = Array.from({ length: 250 }, (_, i) => ({
        at: new Date(t0 + i * 1000).toISOString(),
        sourceNode: 'n1',
        targetNode: i % 2 === 0 ? 'n2' : 'n3',
        bytesPerSecond: 12_500_000 + i,
        rttMs: 40.5,
      }));
      assert.equal(await store.bandwidth.append(samples), 250);
      const link = await store.bandwidth.list({ sourceNode: 'n1', targetNode: 'n2' }, { limit: 1000 });
      assert.equal(link.length, 125);
      assert.equal(link[0]?.rttMs, 40.5);
      assert.equal(link[0]?.lossRatio, null);
      assert.equal(link[0]?.at, samples[0]?.at);
      const recent = await store.bandwidth.list({ targetNode: 'n3' }, { limit: 3, newest: true });
      assert.deepEqual(
        recent.map((s) => s.bytesPerSecond),
        [12_500_245, 12_500_247, 12_500_249],
      );
      assert.equal(await store.bandwidth.prune(new Date(t0 + 100_000).toISOString()), 100);
      assert.equal(
        (await store.bandwidth.list({ since: new Date(t0).toISOString() }, { limit: 1000 })).length,
        150,
      );
    });

    it('reports a live health check', async () => {
      const h = await store.health();
      assert.equal(h.status, 'up');
      assert.match(h.detail, new RegExp(`^${d.name} .*schema v\\d+`));
    });
  });
}

describe('postgresql pool under load', { skip: dialects[1]?.skip ?? false }, () => {
  it('queues requests beyond the pool size instead of failing them as connect timeouts', async () => {
    const db = await createTestDatabase();
    // A 300 ms connect bound and 2 connections for 400 concurrent transactions: the wait for a
    // pooled connection is far longer than the connect bound, and must not count against it.
    const store = await openStore(baseConfig({ type: 'postgresql', database: db.name, poolSize: 2 }), {
      connectTimeoutMs: 300,
    });
    try {
      const work = Promise.all(
        Array.from({ length: 400 }, (_, i) =>
          store.transaction(async (tx) => {
            const vm = await tx.vms.insert({
              id: `q-${i}`,
              name: `q-${i}`,
              spec: {},
              desiredState: 'running',
              state: 'pending',
            });
            await tx.events.append({ type: 'vm.created', resourceType: 'vm', resourceId: vm.id });
          }),
        ),
      );
      // The health probe has its own connection: a saturated pool is busy, not down.
      const h = await store.health();
      assert.equal(h.status, 'up', h.detail);
      await work;
      assert.equal(await store.vms.count({ namePrefix: 'q-' }), 400);
    } finally {
      await store.close();
      await db.drop();
    }
  });
});
