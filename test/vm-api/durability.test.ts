// kill -9 of a node (the real CLI in a child process, sim driver) in the middle of a burst of creates,
// then a restart on the same data dir: every create that was acknowledged (201) is still there and
// running, nothing is left half-created, and allocations equal the sum of the live VMs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, openNodeStore, startNodeProcess } from './node-process.js';

const SETS = {
  'vm.driver': 'sim',
  'node.capacity.cpus': 10000,
  'node.capacity.memory_mib': 10_000_000,
  'node.capacity.disk_gib': 10,
};

interface Vm {
  id: string;
  name: string;
  state: string;
}

test('SIGKILL during a burst of creates: acknowledged VMs survive, the restart reconciles, no drift', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'nc-vm-kill-'));
  let node = await startNodeProcess(dataDir, SETS);
  try {
    const acked = new Map<string, string>();
    let killed = false;
    let inFlightAtKill = 0;
    let inFlight = 0;
    let failed = 0;
    // A steady stream of creates from 32 clients, each going on until its connection dies: however
    // fast the node answers, creates are still in flight when it is killed, and none after.
    let nextIndex = 0;
    const worker = async (): Promise<void> => {
      while (nextIndex < 5000) {
        const i = nextIndex++;
        inFlight++;
        try {
          const r = await api(node, 'POST', '/api/v1/vms', { name: `burst-${i}`, cpus: 1, memoryMib: 64 });
          if (r.status !== 201) throw new Error(`create burst-${i}: ${r.status} ${JSON.stringify(r.json)}`);
          const vm = r.json as Vm;
          acked.set(vm.name, vm.id);
          // Kill once a good share has been acknowledged, while the rest are in flight.
          if (acked.size === 100 && !killed) {
            killed = true;
            inFlightAtKill = inFlight - 1;
            await node.kill();
          }
        } catch (err) {
          // The connection died with the node: not acknowledged. Anything else is a failure.
          if (!killed) throw err;
          failed++;
          return;
        } finally {
          inFlight--;
        }
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    assert.ok(killed, 'the node was killed mid-burst');
    assert.ok(acked.size >= 100, `acked ${acked.size}`);
    assert.ok(inFlightAtKill > 0 && failed > 0, `in flight at the kill ${inFlightAtKill}, failed ${failed}`);
    t.diagnostic(
      `acknowledged ${acked.size}, in flight at the kill ${inFlightAtKill}, not acknowledged ${failed}`,
    );

    node = await startNodeProcess(dataDir, SETS);
    const all: Vm[] = [];
    let next: string | null = null;
    do {
      const r = await api(
        node,
        'GET',
        `/api/v1/vms?limit=1000${next ? `&cursor=${encodeURIComponent(next)}` : ''}`,
      );
      assert.equal(r.status, 200);
      const page = r.json as { items: Vm[]; next: string | null };
      all.push(...page.items);
      next = page.next;
    } while (next);
    const byName = new Map(all.map((v) => [v.name, v]));
    for (const [name, id] of acked) {
      const vm = byName.get(name);
      assert.ok(vm, `acknowledged VM ${name} is still there`);
      assert.equal(vm.id, id);
    }
    for (const vm of all)
      assert.equal(vm.state, 'running', `${vm.name} is ${vm.state}, not left half-created`);
    assert.match(node.cli.output(), /vm reconcile done/);
    assert.equal(await node.stop(), 0);

    const store = await openNodeStore(dataDir);
    try {
      const rows = (await store.vms.list({ limit: 1000 })).items;
      assert.equal(rows.length, all.length);
      const usage = await store.allocations.usage('novacron-node-1');
      assert.equal(usage.allocations, rows.length);
      assert.equal(usage.cpus, rows.length);
      assert.equal(usage.memoryMib, rows.length * 64);
    } finally {
      await store.close();
    }
  } finally {
    node.cli.child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  }
});
