// Live migration between two nodes that share one PostgreSQL database (as a region's nodes do):
// the VM keeps exactly one row, whose `node` and allocation move to the target in the target's
// commit; no duplicate row, no allocation left on the source. Real QEMU (TCG), two `novacron start`
// processes, a fresh database this test creates and drops.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { findQemuPidsUnder } from '../../src/vm/drivers/qemu/process.js';
import { waitForSerialLine } from '../../src/vm/drivers/qemu/serial.js';
import { freePort } from '../helpers/ports.js';
import { GUEST_READY_LINE, ensureTestGuest, qemuUnavailable, type TestGuest } from '../vm/guest.js';
import { api, startNodeProcess, type NodeProcess } from '../vm-api/node-process.js';

const skip = await qemuUnavailable();
if (skip) console.log(`# skipping shared-database migration test: ${skip}`);

const PG = { host: '127.0.0.1', port: 5432, user: 'postgres' } as const;
const TOKEN = 'shared-db-migration-token';
const HEARTBEAT = /^NOVACRON-HEARTBEAT (\d+)/;

describe('live migration between two nodes sharing one PostgreSQL database', { skip: skip ?? false }, () => {
  const database = `nc_mig_shared_${process.pid}_${Date.now()}`;
  let guest: TestGuest;
  const dirs: Record<'n1' | 'n2', string> = { n1: '', n2: '' };
  const nodes: Partial<Record<'n1' | 'n2', NodeProcess>> = {};

  async function admin<T>(db: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const c = new pg.Client({ ...PG, database: db });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  }

  before(async () => {
    guest = await ensureTestGuest();
    await admin('postgres', (c) => c.query(`create database ${database}`));
    const ports = {
      n1: { grpc: await freePort(), rest: await freePort(), dwcp: await freePort() },
      n2: { grpc: await freePort(), rest: await freePort(), dwcp: await freePort() },
    };
    // One after the other: the first applies the schema.
    for (const name of ['n1', 'n2'] as const) {
      const peer = name === 'n1' ? 'n2' : 'n1';
      dirs[name] = mkdtempSync(join(tmpdir(), `nc-mig-shared-${name}-`));
      nodes[name] = await startNodeProcess(dirs[name], {
        'system.node_id': name,
        'api.rest_port': ports[name].rest,
        'api.grpc_port': ports[name].grpc,
        'dwcp.listen_port': ports[name].dwcp,
        'database.type': 'postgresql',
        'database.host': PG.host,
        'database.port': PG.port,
        'database.user': PG.user,
        'database.database': database,
        'cluster.join_token': TOKEN,
        'cluster.peers': JSON.stringify([{ name: peer, url: `http://127.0.0.1:${ports[peer].grpc}` }]),
        'vm.driver': 'qemu',
        'vm.accel': 'tcg',
        'vm.stop_grace_seconds': 1,
        'node.capacity.cpus': 4,
        'node.capacity.memory_mib': 2048,
        'node.capacity.disk_gib': 1,
        'ml.enabled': 'false',
      });
    }
  });

  after(async () => {
    for (const name of ['n1', 'n2'] as const) {
      nodes[name]?.cli.child.kill('SIGKILL');
      await nodes[name]?.cli.exited.catch(() => undefined);
      if (dirs[name]) {
        for (const pid of (await findQemuPidsUnder(join(dirs[name], 'vms'))).keys())
          process.kill(pid, 'SIGKILL');
        rmSync(dirs[name], { recursive: true, force: true });
      }
    }
    await admin('postgres', (c) => c.query(`drop database if exists ${database} with (force)`)).catch(
      () => undefined,
    );
  });

  test('one row moves (node and allocation in one commit), one QEMU, the heartbeat continues', async () => {
    const n1 = nodes.n1!;
    const r = await api(n1, 'POST', '/api/v1/vms', {
      name: 'shared-live',
      cpus: 1,
      memoryMib: 128,
      kernel: guest.kernel,
      initrd: guest.initrd,
      cmdline: `${guest.cmdline} novacron.dirty_mib=16 novacron.dirty_rate=4`,
    });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    const vm = r.json as { id: string; name: string; node: string };
    assert.equal(vm.node, 'n1');
    const log1 = join(dirs.n1, 'vms', vm.id, 'serial.log');
    await waitForSerialLine(log1, new RegExp(GUEST_READY_LINE), { timeoutMs: 90_000 });
    await waitForSerialLine(log1, HEARTBEAT, { timeoutMs: 30_000 });

    // The same row before and after (never deleted and inserted again, which a failure could lose).
    const createdAt = async (): Promise<string> =>
      admin(database, async (c) =>
        String((await c.query('select created_at from vms where id = $1', [vm.id])).rows[0]?.created_at),
      );
    const createdBefore = await createdAt();
    const started = await api(n1, 'POST', `/api/v1/vms/${vm.name}/migrate`, { target: 'n2' });
    assert.equal(started.status, 202, JSON.stringify(started.json));
    const id = (started.json as { id: string }).id;
    let m: { state: string; error: string | null; downtimeMs: number | null; totalMs: number | null };
    const deadline = Date.now() + 180_000;
    for (;;) {
      m = (await api(n1, 'GET', `/api/v1/migrations/${id}`)).json as typeof m;
      if (['completed', 'failed', 'cancelled'].includes(m.state)) break;
      assert.ok(Date.now() < deadline, `migration stuck: ${JSON.stringify(m)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(m.state, 'completed', JSON.stringify(m));
    // Completed as this (source) node reports it: after its QEMU quit and the figures were recorded.
    assert.ok(m.totalMs !== null && m.downtimeMs !== null, JSON.stringify(m));
    assert.equal(await createdAt(), createdBefore, 'the VM row is the one created on n1');

    // The database: one row of the VM, on n2 and running; one allocation, on n2; one migration row.
    await admin(database, async (c) => {
      const rows = (await c.query('select node_id as node, state from vms where id = $1', [vm.id])).rows as {
        node: string;
        state: string;
      }[];
      assert.deepEqual(rows, [{ node: 'n2', state: 'running' }]);
      const allocs = (await c.query('select node_id from allocations where vm_id = $1', [vm.id])).rows;
      assert.deepEqual(allocs, [{ node_id: 'n2' }]);
      const migs = (await c.query('select state from migrations where id = $1', [id])).rows;
      assert.deepEqual(migs, [{ state: 'completed' }]);
    });
    // Both APIs say so; one QEMU, under n2, and the guest's heartbeat goes on there.
    for (const n of [nodes.n1!, nodes.n2!]) {
      const v = (await api(n, 'GET', `/api/v1/vms/${vm.name}`)).json as { node: string; state: string };
      assert.equal(v.node, 'n2');
      assert.equal(v.state, 'running');
    }
    assert.equal((await findQemuPidsUnder(join(dirs.n1, 'vms'))).size, 0, 'no QEMU under n1');
    assert.equal((await findQemuPidsUnder(join(dirs.n2, 'vms'))).size, 1, 'one QEMU under n2');
    await waitForSerialLine(join(dirs.n2, 'vms', vm.id, 'serial.log'), HEARTBEAT, { timeoutMs: 30_000 });
    console.log(`# shared database: total ${m.totalMs} ms, downtime ${m.downtimeMs} ms`);
    // Stopping it through n1 (not its node) is refused, naming n2; through n2 it stops.
    const refused = await api(n1, 'POST', `/api/v1/vms/${vm.name}/stop`);
    assert.equal(refused.status, 409, JSON.stringify(refused.json));
    assert.match(JSON.stringify(refused.json), /runs on node n2/);
    assert.equal((await api(nodes.n2!, 'POST', `/api/v1/vms/${vm.name}/stop`)).status, 200);
  });
  test('cold: the stopped VM keeps its one row, moved to n2 with its disk and allocation', async () => {
    const n1 = nodes.n1!;
    const disk = join(dirs.n1, 'shared-cold.raw');
    writeFileSync(disk, Buffer.concat([randomBytes(2 * 2 ** 20), Buffer.alloc(2 * 2 ** 20)]));
    const r = await api(n1, 'POST', '/api/v1/vms', {
      name: 'shared-cold',
      cpus: 1,
      memoryMib: 64,
      kernel: guest.kernel,
      initrd: guest.initrd,
      cmdline: guest.cmdline,
      disks: [{ path: disk, format: 'raw' }],
    });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    const vm = r.json as { id: string };
    assert.equal((await api(n1, 'POST', '/api/v1/vms/shared-cold/stop', { force: true })).status, 200);
    const started = await api(n1, 'POST', '/api/v1/vms/shared-cold/migrate', { target: 'n2' });
    assert.equal(started.status, 202, JSON.stringify(started.json));
    const id = (started.json as { id: string }).id;
    const deadline = Date.now() + 120_000;
    let m: { state: string; totalMs: number | null };
    for (;;) {
      m = (await api(n1, 'GET', `/api/v1/migrations/${id}`)).json as typeof m;
      if (['completed', 'failed', 'cancelled'].includes(m.state)) break;
      assert.ok(Date.now() < deadline, `migration stuck: ${JSON.stringify(m)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(m.state, 'completed', JSON.stringify(m));
    await admin(database, async (c) => {
      const rows = (await c.query('select node_id as node, state from vms where id = $1', [vm.id])).rows;
      assert.deepEqual(rows, [{ node: 'n2', state: 'stopped' }]);
      const allocs = (await c.query('select node_id from allocations where vm_id = $1', [vm.id])).rows;
      assert.deepEqual(allocs, [{ node_id: 'n2' }]);
    });
    const onB = (await api(nodes.n2!, 'GET', '/api/v1/vms/shared-cold')).json as {
      disks: { path: string }[];
    };
    assert.ok(onB.disks[0]!.path.startsWith(dirs.n2), onB.disks[0]!.path);
    assert.equal((await api(nodes.n2!, 'DELETE', '/api/v1/vms/shared-cold')).status, 204);
  });
});
