// Drain by live migration in a region: two real `novacron start` nodes (QEMU driver under TCG, one
// join token, no static cluster.peers) on a private etcd and one shared PostgreSQL database. The
// node running a VM is drained; the VM must move by live migration to the other node, found through
// the etcd membership (its announced gRPC URL), with the guest's heartbeat going on there, one row,
// one allocation and one QEMU at the end, and a completed migration record.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { findQemuPidsUnder } from '../../src/vm/drivers/qemu/process.js';
import { waitForSerialLine } from '../../src/vm/drivers/qemu/serial.js';
import { GUEST_READY_LINE, ensureTestGuest, qemuUnavailable, type TestGuest } from '../vm/guest.js';
import { etcdAvailable } from './etcd-harness.js';
import { PG, Region } from './region-harness.js';

const qemuSkip = await qemuUnavailable();
const etcdSkip = etcdAvailable() ? undefined : 'etcd not found (Debian package etcd-server)';
if (etcdSkip && process.env['CI']) throw new Error(`CI requires etcd for test/cluster: ${etcdSkip}`);
const skip = qemuSkip ?? etcdSkip;
if (skip) console.log(`# skipping drain-by-live-migration test: ${skip}`);

const HEARTBEAT = /^NOVACRON-HEARTBEAT (\d+)/;

describe('node drain live-migrates its VMs to another member', { skip: skip ?? false }, () => {
  let region: Region;
  let guest: TestGuest;

  before(async () => {
    guest = await ensureTestGuest();
    region = await Region.start({
      etcdMembers: 1,
      nodes: ['d1', 'd2'],
      settings: {
        'vm.driver': 'qemu',
        'vm.accel': 'tcg',
        'vm.stop_grace_seconds': 1,
        'cluster.join_token': 'drain-live-migration-token',
        'node.capacity.cpus': 4,
        'node.capacity.memory_mib': 2048,
        'node.capacity.disk_gib': 1,
      },
    });
  });

  after(async () => {
    await region?.close();
  });

  test('the VM moves live (heartbeat continues on the target), drain reports live-migration', async () => {
    const created = await region.createVm('d1', 'drain-live', {
      memoryMib: 128,
      kernel: guest.kernel,
      initrd: guest.initrd,
      cmdline: `${guest.cmdline} novacron.dirty_mib=8 novacron.dirty_rate=2`,
      restartPolicy: 'always',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    const running = await region.until(
      'the VM placed and running',
      () => region.rows(),
      (rows) => rows.some((r) => r.id === id && r.state === 'running' && r.node !== null),
      120_000,
    );
    const source = running.find((r) => r.id === id)!.node!;
    const target = source === 'd1' ? 'd2' : 'd1';
    const srcLog = join(region.node(source).dataDir, 'vms', id, 'serial.log');
    await waitForSerialLine(srcLog, new RegExp(GUEST_READY_LINE), { timeoutMs: 90_000 });
    await waitForSerialLine(srcLog, HEARTBEAT, { timeoutMs: 30_000 });

    // The target's membership record carries its gRPC URL (what the source dials).
    const src = region.node(source);
    const res = await fetch(`${src.url}/api/v1/cluster/self/drain`, { method: 'POST', headers: src.auth() });
    const body = (await res.json()) as { drain?: { method: string; moving: number } };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.deepEqual(body.drain, { method: 'live-migration', moving: 1 });

    const moved = await region.until(
      `the VM on ${target}`,
      () => region.rows(),
      (rows) => rows.some((r) => r.id === id && r.node === target && r.state === 'running'),
      180_000,
    );
    assert.equal(moved.filter((r) => r.id === id).length, 1);
    // One completed live migration from source to target in the shared database; one allocation, on the target.
    const c = new pg.Client({ ...PG, database: region.database });
    await c.connect();
    try {
      const migs = (
        await c.query<{ state: string; source_node: string; target_node: string; kind: string }>(
          'select state, source_node, target_node, kind from migrations where vm_id = $1',
          [id],
        )
      ).rows;
      assert.deepEqual(migs, [
        { state: 'completed', source_node: source, target_node: target, kind: 'live' },
      ]);
    } finally {
      await c.end();
    }
    assert.deepEqual((await region.allocations()).get(id), [target]);
    // What the drivers run: nothing on the source, the VM on the target; the guest goes on there.
    await region.until(
      'no QEMU left under the source',
      async () => (await findQemuPidsUnder(join(src.dataDir, 'vms'))).size,
      (n) => n === 0,
      30_000,
    );
    assert.equal((await findQemuPidsUnder(join(region.node(target).dataDir, 'vms'))).size, 1);
    const view = await region.getJson<{ vms: string[] }>(target, '/api/v1/cluster/self/vms');
    assert.deepEqual(view.vms, [id]);
    await waitForSerialLine(join(region.node(target).dataDir, 'vms', id, 'serial.log'), HEARTBEAT, {
      timeoutMs: 30_000,
    });
    // The source still answers, stays draining until uncordoned.
    const un = await fetch(`${src.url}/api/v1/cluster/self/uncordon`, {
      method: 'POST',
      headers: src.auth(),
    });
    assert.equal(un.status, 200);
  });
});
