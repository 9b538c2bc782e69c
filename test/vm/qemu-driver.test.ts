// Real QEMU: boot the test guest under TCG, pause/resume, graceful stop, destroy, recover after a
// simulated NovaCron restart, reconcile of leftovers, qcow2 overlays, and a local live migration.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { ConflictError, InvalidStateError } from '../../src/errors.js';
import type { PersistedHandleState, VmHandle, VmSpec } from '../../src/vm/driver.js';
import { runAccelProbe } from '../../src/vm/drivers/qemu/accel.js';
import { QemuDriver } from '../../src/vm/drivers/qemu/driver.js';
import { isAlive } from '../../src/vm/drivers/qemu/process.js';
import { waitForSerialLine } from '../../src/vm/drivers/qemu/serial.js';
import { GUEST_READY_LINE, ensureTestGuest, qemuUnavailable, type TestGuest } from './guest.js';

const run = promisify(execFile);
const skip = await qemuUnavailable();
if (skip) console.log(`# skipping real-QEMU tests: ${skip}`);

const BOOT_TIMEOUT_MS = 60_000;

describe('QEMU driver with the test guest (TCG)', { skip: skip ?? false }, () => {
  let guest: TestGuest;
  let root: string;
  let vmsRoot: string;
  const drivers: QemuDriver[] = [];
  const started: PersistedHandleState[] = [];

  const driver = (): QemuDriver => {
    const d = new QemuDriver({ accel: 'tcg' });
    drivers.push(d);
    return d;
  };
  const spec = (id: string, over: Partial<VmSpec> = {}): VmSpec => ({
    id,
    name: `test-${id}`,
    cpus: 1,
    memoryMib: 128,
    kernel: guest.kernel,
    initrd: guest.initrd,
    cmdline: guest.cmdline,
    disks: [],
    network: { mode: 'none' },
    labels: {},
    ...over,
  });
  const dirFor = (id: string): { vmDir: string } => ({ vmDir: join(vmsRoot, id) });
  async function boot(d: QemuDriver, id: string, over: Partial<VmSpec> = {}): Promise<VmHandle> {
    const h = await d.start(spec(id, over), dirFor(id));
    started.push(h.persisted());
    await waitForSerialLine(h.persisted().serialLog, new RegExp(GUEST_READY_LINE), {
      timeoutMs: BOOT_TIMEOUT_MS,
    });
    return h;
  }
  async function heartbeat(log: string, fromOffset = 0): Promise<number> {
    const line = await waitForSerialLine(log, /^NOVACRON-HEARTBEAT \d+$/, { timeoutMs: 30_000, fromOffset });
    return Number(line.split(' ')[1]);
  }
  async function assertNothingLeft(s: PersistedHandleState): Promise<void> {
    assert.equal(await isAlive(s.pid), false, `QEMU pid ${s.pid} still alive`);
    for (const p of [s.controlSocket, s.pidFile, join(s.vmDir, 'handle.json')])
      await assert.rejects(access(p), `${p} left behind`);
  }

  before(async () => {
    guest = await ensureTestGuest();
    root = await mkdtemp(join(tmpdir(), 'nc-vm-'));
    vmsRoot = join(root, 'vms');
    await mkdir(vmsRoot);
  });

  after(async () => {
    // Never leave a QEMU behind, whatever failed above.
    for (const s of started) if (await isAlive(s.pid)) process.kill(s.pid, 'SIGKILL');
    for (const d of drivers) await d.close();
    await rm(root, { recursive: true, force: true });
  });

  test('the accel probe guest runs under TCG (so a KVM "no progress" verdict means something)', async () => {
    const r = await runAccelProbe('qemu-system-x86_64', 'tcg', 20_000);
    assert.equal(r.progressed, true, r.detail);
    const h = await new QemuDriver({ accel: 'auto' }).health();
    assert.equal(h.status, 'healthy');
    assert.ok(h.attributes['accel'] === 'kvm' || h.attributes['accel'] === 'tcg');
    assert.ok((h.attributes['accelReason'] ?? '').length > 0);
  });

  test('boots to the ready line, pauses and resumes, stops gracefully leaving nothing behind', async () => {
    const d = driver();
    const vm = await boot(d, 'life');
    const s = vm.persisted();
    assert.equal((await d.inspect(vm)).state, 'running');
    await heartbeat(s.serialLog);

    await d.pause(vm);
    assert.equal((await d.inspect(vm)).state, 'paused');
    await d.resume(vm);
    assert.equal((await d.inspect(vm)).state, 'running');
    const size = (await stat(s.serialLog)).size;
    await heartbeat(s.serialLog, size); // the guest runs again after resume

    const r = await d.stop(vm, { graceMs: 30_000 });
    assert.equal(r.method, 'powerdown', 'the guest honours the ACPI power button');
    assert.equal(r.exit.guest, true);
    await assertNothingLeft(s);
    assert.equal((await d.inspect(vm)).state, 'exited');
    assert.match(await readFile(s.serialLog, 'utf8'), /NOVACRON-GUEST-POWEROFF/);
    assert.equal((await d.stop(vm, { graceMs: 1000 })).method, 'already-exited');
  });

  test('stop without grace quits; a paused guest that ignores the button is quit after the grace period', async () => {
    const d = driver();
    const vm = await boot(d, 'quit');
    await d.pause(vm);
    const r = await d.stop(vm, { graceMs: 1500 });
    assert.equal(r.method, 'quit');
    assert.equal(r.exit.reason, 'host-qmp-quit');
    await assertNothingLeft(vm.persisted());
  });

  test('destroy needs force while running and removes the VM directory', async () => {
    const d = driver();
    const vm = await boot(d, 'destroy');
    const s = vm.persisted();
    await assert.rejects(d.destroy(vm, { force: false }), InvalidStateError);
    await d.destroy(vm, { force: true });
    await assertNothingLeft(s);
    await assert.rejects(access(s.vmDir));
  });

  test('recover after the driver is discarded adopts the same QEMU, never a second copy', async () => {
    const first = driver();
    const vm = await boot(first, 'adopt');
    const persisted = JSON.parse(JSON.stringify(vm.persisted())) as PersistedHandleState; // as stored in the DB
    await first.close(); // NovaCron "restarts"; QEMU keeps running
    assert.equal(await isAlive(persisted.pid), true);

    const second = driver();
    const outcome = await second.recover(persisted);
    assert.equal(outcome.status, 'adopted');
    assert.ok(outcome.status === 'adopted');
    assert.equal(outcome.handle.persisted().pid, persisted.pid);
    assert.equal((await second.inspect(outcome.handle)).state, 'running');
    const again = await second.recover(persisted);
    assert.ok(again.status === 'adopted' && again.handle === outcome.handle, 'recover is idempotent');
    await assert.rejects(second.start(spec('adopt'), dirFor('adopt')), ConflictError);
    // A fresh driver that does not know the VM must refuse too (it finds the live QEMU in the directory).
    await assert.rejects(driver().start(spec('adopt'), dirFor('adopt')), ConflictError);
    const { stdout } = await run('pgrep', ['-f', persisted.controlSocket]);
    assert.equal(stdout.trim().split('\n').length, 1, 'exactly one QEMU for the VM');

    await second.stop(outcome.handle, { graceMs: 0 });
    await assertNothingLeft(persisted);
    assert.equal((await driver().recover(persisted)).status, 'gone');
  });

  test('reconcile adopts unknown QEMUs under the VM directories and cleans stale sockets', async () => {
    const first = driver();
    const known = await boot(first, 'known');
    const orphan = await boot(first, 'orphan');
    const doomed = await boot(first, 'doomed');
    const knownState = known.persisted();
    const doomedState = doomed.persisted();
    await first.close();
    // A QEMU killed while NovaCron was down leaves its socket and pid file behind.
    process.kill(doomedState.pid, 'SIGKILL');
    while (await isAlive(doomedState.pid)) await new Promise((r) => setTimeout(r, 20));
    await access(doomedState.controlSocket);

    const d = driver();
    const listed = await d.list(vmsRoot);
    assert.deepEqual(listed.map((x) => [x.vmId, x.alive]).sort(), [
      ['doomed', false],
      ['known', true],
      ['orphan', true],
    ]);
    const report = await d.reconcile(vmsRoot, [knownState]);
    assert.deepEqual(
      report.adopted.map((h) => h.vmId),
      ['known'],
    );
    assert.deepEqual(
      report.orphans.map((h) => h.vmId),
      ['orphan'],
    );
    assert.ok(report.cleaned.includes(doomedState.controlSocket));
    await assertNothingLeft(doomedState);
    for (const h of [...report.adopted, ...report.orphans]) await d.destroy(h, { force: true });
    assert.deepEqual(await d.list(vmsRoot), []);
    assert.equal(orphan.vmId, 'orphan');
  });

  test('a base image gets a qcow2 overlay; the base is never written', async () => {
    const base = join(root, 'base.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', base, '64M']);
    const hash = async (): Promise<string> =>
      createHash('sha256')
        .update(await readFile(base))
        .digest('hex');
    const before = await hash();
    const d = driver();
    const vm = await boot(d, 'overlay', { disks: [{ baseImage: base }] });
    const s = vm.persisted();
    const info = JSON.parse(
      (await run('qemu-img', ['info', '--output=json', '-U', join(s.vmDir, 'disk0.qcow2')])).stdout,
    ) as {
      format: string;
      'backing-filename': string;
    };
    assert.equal(info.format, 'qcow2');
    assert.equal(info['backing-filename'], base);
    // The guest lists its block devices on the line after the ready line.
    await waitForSerialLine(s.serialLog, /^novacron-guest: .* disks=vda/, { timeoutMs: 30_000 });
    await d.destroy(vm, { force: true });
    assert.equal(await hash(), before);
    assert.deepEqual((await readdir(root)).sort(), ['base.qcow2', 'vms']);
  });

  test('live migration between two local QEMUs through the handle (the path issue 8 builds on)', async () => {
    const d = driver();
    const src = await boot(d, 'mig-src', {
      cmdline: `${guest.cmdline} novacron.dirty_mib=16 novacron.dirty_rate=4`,
    });
    const dst = await d.start(
      spec('mig-dst', { cmdline: `${guest.cmdline} novacron.dirty_mib=16 novacron.dirty_rate=4` }),
      dirFor('mig-dst'),
      {
        incoming: 'defer',
      },
    );
    started.push(dst.persisted());
    assert.equal((await d.inspect(dst)).state, 'incoming');
    const srcQmp = d.handleOf(src).qmpClient();
    const dstQmp = d.handleOf(dst).qmpClient();
    for (const q of [srcQmp, dstQmp]) await q.migrateSetCapabilities({ events: true });
    const lastOnSource = await heartbeat(src.persisted().serialLog);
    const uri = `unix:${join(root, 'mig.sock')}`;
    await dstQmp.migrateIncoming(uri);
    const completed = dstQmp.waitForEvent('MIGRATION', {
      timeoutMs: 60_000,
      predicate: (e) => (e.data as { status?: string }).status === 'completed',
    });
    await srcQmp.migrate(uri);
    await completed;
    const info = await srcQmp.queryMigrate();
    assert.equal(info.status, 'completed');
    assert.ok((info.ram?.transferred ?? 0) > 0);
    // The counter continues on the destination.
    const onDest = await heartbeat(dst.persisted().serialLog);
    assert.ok(onDest > lastOnSource, `destination heartbeat ${onDest} continues after ${lastOnSource}`);
    assert.equal((await d.inspect(src)).state, 'migrated');
    assert.equal((await d.inspect(dst)).state, 'running');
    await d.destroy(src, { force: true });
    await d.destroy(dst, { force: true });
  });
});
