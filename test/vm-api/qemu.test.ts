// Real QEMU through the VM API of a real node (the CLI in a child process): the test guest from
// create to running (its ready line on the console), a bad kernel path is 400, a SIGKILL of the node
// leaves QEMU running and the restarted node adopts it (not duplicated), stop and delete leave no
// QEMU process, socket or directory behind. In CI a missing QEMU fails loudly (see ../vm/guest.ts).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findQemuPidsUnder, isAlive } from '../../src/vm/drivers/qemu/process.js';
import { waitForSerialLine } from '../../src/vm/drivers/qemu/serial.js';
import { GUEST_READY_LINE, ensureTestGuest, qemuUnavailable, type TestGuest } from '../vm/guest.js';
import { api, startNodeProcess, type NodeProcess } from './node-process.js';

const skip = await qemuUnavailable();
if (skip) console.log(`# skipping real-QEMU VM API tests: ${skip}`);

interface Vm {
  id: string;
  name: string;
  state: string;
  pid: number | null;
  driver: string | null;
}

describe('VM API with real QEMU (TCG)', { skip: skip ?? false }, () => {
  let guest: TestGuest;
  let dataDir: string;
  let node: NodeProcess | undefined;
  const sets = {
    'vm.driver': 'qemu',
    'vm.accel': 'tcg',
    'vm.stop_grace_seconds': 2,
    'node.capacity.cpus': 4,
    'node.capacity.memory_mib': 1024,
    'node.capacity.disk_gib': 1,
  };

  before(async () => {
    guest = await ensureTestGuest();
    dataDir = mkdtempSync(join(tmpdir(), 'nc-vm-qemu-'));
    node = await startNodeProcess(dataDir, sets);
  });

  after(async () => {
    node?.cli.child.kill('SIGKILL');
    // Nothing may outlive the test: kill any QEMU left under this data dir.
    for (const pid of (await findQemuPidsUnder(join(dataDir, 'vms'))).keys()) process.kill(pid, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('create → running with the test guest; a missing kernel is 400', async () => {
    const bad = await api(node!, 'POST', '/api/v1/vms', {
      name: 'bad',
      cpus: 1,
      memoryMib: 128,
      kernel: '/nonexistent/vmlinuz',
    });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.json), /kernel/);
    const r = await api(node!, 'POST', '/api/v1/vms', {
      name: 'guest-1',
      cpus: 1,
      memoryMib: 128,
      kernel: guest.kernel,
      initrd: guest.initrd,
      cmdline: guest.cmdline,
    });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    const vm = r.json as Vm;
    assert.equal(vm.state, 'running');
    assert.equal(vm.driver, 'qemu');
    assert.ok(vm.pid && (await isAlive(vm.pid)));
    await waitForSerialLine(join(dataDir, 'vms', vm.id, 'serial.log'), new RegExp(GUEST_READY_LINE), {
      timeoutMs: 90_000,
    });
    const c = await api(node!, 'GET', `/api/v1/vms/guest-1/console`);
    assert.match((c.json as { log: string }).log, new RegExp(GUEST_READY_LINE));
  });

  test('SIGKILL of the node: QEMU keeps running, the restarted node adopts it, not duplicated', async () => {
    const before = (await api(node!, 'GET', '/api/v1/vms/guest-1')).json as Vm;
    await node!.kill();
    assert.ok(await isAlive(before.pid!), 'QEMU outlives the node');
    node = await startNodeProcess(dataDir, sets);
    const after = (await api(node, 'GET', '/api/v1/vms/guest-1')).json as Vm;
    assert.equal(after.state, 'running');
    assert.equal(after.pid, before.pid, 'the same process, adopted');
    const list = (await api(node, 'GET', '/api/v1/vms')).json as { items: Vm[] };
    assert.equal(list.items.length, 1);
    const pids = await findQemuPidsUnder(join(dataDir, 'vms'));
    assert.deepEqual([...pids.keys()], [before.pid]);
  });

  test('stop leaves no process or socket; delete leaves no directory; resources freed', async () => {
    const vm = (await api(node!, 'GET', '/api/v1/vms/guest-1')).json as Vm;
    const s = await api(node!, 'POST', '/api/v1/vms/guest-1/stop', {});
    assert.equal(s.status, 200, JSON.stringify(s.json));
    assert.equal((s.json as Vm).state, 'stopped');
    assert.equal(await isAlive(vm.pid!), false);
    assert.equal(existsSync(join(dataDir, 'vms', vm.id, 'qmp.sock')), false);
    assert.equal((await findQemuPidsUnder(join(dataDir, 'vms'))).size, 0);
    const d = await api(node!, 'DELETE', '/api/v1/vms/guest-1');
    assert.equal(d.status, 204);
    assert.equal(existsSync(join(dataDir, 'vms', vm.id)), false);
    // The memory is free again: a VM of the whole capacity fits.
    const big = await api(node!, 'POST', '/api/v1/vms', {
      name: 'whole',
      cpus: 4,
      memoryMib: 1024,
      kernel: guest.kernel,
      initrd: guest.initrd,
      cmdline: guest.cmdline,
    });
    assert.equal(big.status, 201, JSON.stringify(big.json));
    assert.equal((await api(node!, 'DELETE', '/api/v1/vms/whole')).status, 204);
    assert.equal((await findQemuPidsUnder(join(dataDir, 'vms'))).size, 0);
  });
});
