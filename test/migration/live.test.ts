// Live migration of the real test guest (TCG) through DWCP over loopback: the heartbeat continues on
// the destination and one QEMU remains; cancel and a cut DWCP connection roll back to the source.
// Also migrates the same guest with QEMU's own plain tcp migration as the baseline and prints both.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { openStreamSender, streamReceiver } from '../../src/dwcp/stream.js';
import { AmstServer } from '../../src/dwcp/transport/server.js';
import { ErrorCode, MigrationError } from '../../src/errors.js';
import {
  MigrationDestination,
  MigrationSource,
  runLiveMigration,
  type MigrationProgress,
} from '../../src/migration/live.js';
import type { VmHandle, VmSpec } from '../../src/vm/driver.js';
import { QemuDriver } from '../../src/vm/drivers/qemu/driver.js';
import { isAlive } from '../../src/vm/drivers/qemu/process.js';
import { waitForSerialLine } from '../../src/vm/drivers/qemu/serial.js';
import { GUEST_READY_LINE, ensureTestGuest, qemuUnavailable, type TestGuest } from '../vm/guest.js';

const run = promisify(execFile);
const skip = await qemuUnavailable();
if (skip) console.log(`# skipping live migration tests: ${skip}`);

const security = { token: 'migration-test-token', encrypt: true };
const HEARTBEAT = /^NOVACRON-HEARTBEAT \d+$/;
const MIB = 1024 * 1024;

describe('live migration over DWCP (real QEMU, TCG)', { skip: skip ?? false }, () => {
  let guest: TestGuest;
  let root: string;
  const driver = new QemuDriver({ accel: 'tcg' });
  const pids: number[] = [];
  const servers: AmstServer[] = [];

  const spec = (id: string): VmSpec => ({
    id,
    name: `mig-${id}`,
    cpus: 1,
    memoryMib: 128,
    kernel: guest.kernel,
    initrd: guest.initrd,
    // The guest keeps rewriting 16 MiB at 4 passes per second while it prints its heartbeat.
    cmdline: `${guest.cmdline} novacron.dirty_mib=16 novacron.dirty_rate=4`,
    disks: [],
    network: { mode: 'none' },
    labels: {},
  });
  const vmDir = (id: string): string => join(root, 'vms', id);

  async function heartbeat(log: string, fromOffset = 0): Promise<number> {
    const line = await waitForSerialLine(log, HEARTBEAT, { timeoutMs: 30_000, fromOffset });
    return Number(line.split(' ')[1]);
  }
  async function lastHeartbeat(log: string): Promise<number> {
    const all = (await readFile(log, 'utf8')).split('\n').filter((l) => HEARTBEAT.test(l.trim()));
    return Number(all.at(-1)?.trim().split(' ')[1] ?? -1);
  }
  async function bootSource(id: string): Promise<VmHandle> {
    const h = await driver.start(spec(id), { vmDir: vmDir(id) });
    pids.push(h.persisted().pid);
    await waitForSerialLine(h.persisted().serialLog, new RegExp(GUEST_READY_LINE), { timeoutMs: 60_000 });
    await heartbeat(h.persisted().serialLog);
    return h;
  }
  async function startDestination(id: string): Promise<VmHandle> {
    const h = await driver.start(spec(id), { vmDir: vmDir(id) }, { incoming: 'defer', paused: true });
    pids.push(h.persisted().pid);
    return h;
  }

  /** One DWCP migration setup: destination QEMU waiting, DWCP receiver, source streaming. */
  async function setUp(
    name: string,
    sourceOpts: { maxBandwidthBytesPerSec?: number; convergeTimeoutMs?: number; autoConverge?: boolean } = {},
  ): Promise<{
    src: VmHandle;
    dst: VmHandle;
    source: MigrationSource;
    destination: MigrationDestination;
    server: AmstServer;
    progress: MigrationProgress[];
  }> {
    const src = await bootSource(`${name}-src`);
    const dst = await startDestination(`${name}-dst`);
    const destination = await MigrationDestination.prepare({
      qmp: driver.handleOf(dst).qmpClient(),
      socketPath: join(vmDir(`${name}-dst`), 'migrate-in.sock'),
      kill: () => driver.destroy(dst, { force: true }),
    });
    const server = await AmstServer.listen({
      host: '127.0.0.1',
      port: 0,
      security,
      onSession: streamReceiver((stream, label) => {
        assert.equal(label, `migration-${name}`);
        destination.attach(stream);
      }),
    });
    servers.push(server);
    const source = await MigrationSource.start({
      qmp: driver.handleOf(src).qmpClient(),
      socketPath: join(vmDir(`${name}-src`), 'migrate-out.sock'),
      openStream: () =>
        openStreamSender({
          host: '127.0.0.1',
          port: server.address.port,
          security,
          streams: 2,
          reconnectAttempts: 2,
          // A small window keeps QEMU's bandwidth estimate honest: what it wrote is nearly what arrived,
          // so it does not switch over with a backlog in flight (which would add to the downtime).
          windowBytes: 2 * MIB,
          codec: { codec: 'zstd', level: 1 },
          label: `migration-${name}`,
        }),
      maxDowntimeMs: 300,
      convergeTimeoutMs: 120_000,
      ...sourceOpts,
    });
    const progress: MigrationProgress[] = [];
    source.on('progress', (p) => progress.push(p));
    return { src, dst, source, destination, server, progress };
  }

  async function assertOnlySourceRuns(src: VmHandle, dst: VmHandle): Promise<void> {
    assert.equal(await isAlive(dst.persisted().pid), false, 'destination QEMU is gone');
    assert.equal(await isAlive(src.persisted().pid), true, 'source QEMU still runs');
    assert.equal((await driver.handleOf(src).qmpClient().queryStatus()).running, true, 'source vCPUs run');
    const log = src.persisted().serialLog;
    const last = await lastHeartbeat(log);
    const next = await heartbeat(log, (await readFile(log)).length);
    assert.ok(next > last, `source heartbeat continues: ${next} after ${last}`);
  }

  before(async () => {
    guest = await ensureTestGuest();
    root = await mkdtemp(join(tmpdir(), 'nc-mig-'));
    await mkdir(join(root, 'vms'));
  });

  after(async () => {
    for (const pid of pids) if (await isAlive(pid)) process.kill(pid, 'SIGKILL');
    // A failed test may leave its DWCP receiver listening (closing twice is harmless).
    for (const s of servers) await s.close(0).catch(() => undefined);
    await driver.close();
    await rm(root, { recursive: true, force: true });
  });

  test('migrates a guest that dirties memory; the heartbeat continues on the destination; baseline: plain tcp', async (t) => {
    const { src, dst, source, destination, server, progress } = await setUp('live');
    const result = await runLiveMigration(source, destination);
    await server.close();
    await driver.handleOf(src).exited;
    assert.equal(await isAlive(src.persisted().pid), false, 'source QEMU quit');
    assert.equal(await isAlive(dst.persisted().pid), true, 'destination QEMU runs');
    const { stdout } = await run('pgrep', ['-f', join(root, 'vms', 'live-')]);
    assert.equal(stdout.trim().split('\n').length, 1, 'exactly one QEMU for the VM');
    assert.equal((await driver.handleOf(dst).qmpClient().queryStatus()).running, true);
    const lastOnSource = await lastHeartbeat(src.persisted().serialLog);
    const firstOnDest = await heartbeat(dst.persisted().serialLog);
    assert.ok(lastOnSource > 0);
    assert.ok(
      firstOnDest > lastOnSource && firstOnDest <= lastOnSource + 2,
      `destination heartbeat ${firstOnDest} continues the source's ${lastOnSource}`,
    );
    assert.ok(progress.some((p) => p.phase === 'transfer' && p.transferredBytes > 0));
    assert.ok(progress.some((p) => p.status === 'completed' && p.phase === 'switchover'));
    assert.ok(result.streamBytes > 0 && result.wireBytes > 0 && result.ramBytes >= 128 * MIB);
    assert.ok(result.downtimeMs !== undefined && result.downtimeMs >= 0);
    assert.ok((result.qemuDowntimeMs ?? 0) > 0, 'QEMU reported its downtime on completion');
    await driver.destroy(dst, { force: true });

    // Baseline: the same guest and workload, QEMU's own migration over plain tcp on loopback.
    const bsrc = await bootSource('base-src');
    const bdst = await startDestination('base-dst');
    const sq = driver.handleOf(bsrc).qmpClient();
    const dq = driver.handleOf(bdst).qmpClient();
    await sq.migrateSetCapabilities({ events: true, 'auto-converge': true });
    await sq.migrateSetParameters({ 'downtime-limit': 300 });
    await dq.migrateSetCapabilities({ events: true });
    const port = await freePort();
    const loaded = dq.waitForEvent('MIGRATION', {
      timeoutMs: 120_000,
      predicate: (e) => (e.data as { status?: string }).status === 'completed',
    });
    const stopped = sq.waitForEvent('STOP', { timeoutMs: 120_000 });
    const t0 = Date.now();
    await dq.migrateIncoming(`tcp:127.0.0.1:${port}`);
    await sq.migrate(`tcp:127.0.0.1:${port}`);
    await loaded;
    const resumed = dq.waitForEvent('RESUME', { timeoutMs: 10_000 });
    await dq.cont();
    const baseDowntimeMs = Math.round(((await resumed).timestampUs - (await stopped).timestampUs) / 1000);
    const baseTotalMs = Date.now() - t0;
    const info = await sq.queryMigrate();
    await sq.quit();
    await driver.destroy(bdst, { force: true });

    const rows = [
      ['', 'total ms', 'downtime ms (STOP→RESUME)', 'QEMU downtime ms', 'stream/wire MiB', 'guest RAM MiB'],
      [
        'NovaCron over DWCP',
        result.totalMs,
        result.downtimeMs,
        result.qemuDowntimeMs,
        `${(result.streamBytes / MIB).toFixed(1)} / ${(result.wireBytes / MIB).toFixed(1)}`,
        (result.ramBytes / MIB).toFixed(0),
      ],
      [
        'QEMU plain tcp',
        baseTotalMs,
        baseDowntimeMs,
        info.downtime,
        `${((info.ram?.transferred ?? 0) / MIB).toFixed(1)} (QEMU ram.transferred)`,
        ((info.ram?.total ?? 0) / MIB).toFixed(0),
      ],
    ];
    for (const r of rows) t.diagnostic(r.join(' | '));
  });

  test('cancel mid-transfer: the destination QEMU is killed, the source keeps running', async () => {
    // Throttled so pre-copy lasts long enough to be cancelled in the middle.
    const { src, dst, source, destination, server, progress } = await setUp('cancel', {
      maxBandwidthBytesPerSec: 2 * MIB,
    });
    const controller = new AbortController();
    source.on('progress', (p) => {
      if (p.status === 'active' && p.transferredBytes > 2 * MIB) controller.abort();
    });
    await assert.rejects(
      runLiveMigration(source, destination, { signal: controller.signal }),
      (e: unknown) => e instanceof MigrationError && e.code === ErrorCode.Cancelled,
    );
    assert.ok(progress.some((p) => p.transferredBytes > 2 * MIB && p.remainingBytes > 0));
    await server.close(0);
    await assertOnlySourceRuns(src, dst);
    await driver.destroy(src, { force: true });
  });

  test('the DWCP connection cut mid-transfer rolls back: the source keeps running', async () => {
    const { src, dst, source, destination, server } = await setUp('cut', {
      maxBandwidthBytesPerSec: 2 * MIB,
    });
    let cut: Promise<void> | undefined;
    source.on('progress', (p) => {
      // The receiver node's DWCP endpoint goes away: every stream is closed and reconnects are refused.
      if (p.status === 'active' && p.transferredBytes > 2 * MIB) cut ??= server.close(0);
    });
    await assert.rejects(runLiveMigration(source, destination), MigrationError);
    assert.ok(cut, 'the connection was cut during the transfer');
    await cut;
    await assertOnlySourceRuns(src, dst);
    await driver.destroy(src, { force: true });
  });

  test('a guest that dirties memory faster than the link fails clearly as not converging; the source runs', async () => {
    // 1 MiB/s against 16 MiB rewritten 4x per second, without auto-converge: pre-copy cannot finish.
    const { src, dst, source, destination } = await setUp('stuck', {
      maxBandwidthBytesPerSec: 1 * MIB,
      convergeTimeoutMs: 4000,
      autoConverge: false,
    });
    await assert.rejects(
      runLiveMigration(source, destination),
      (e: unknown) =>
        e instanceof MigrationError &&
        e.code === ErrorCode.DeadlineExceeded &&
        /did not converge/.test(e.message),
    );
    await assertOnlySourceRuns(src, dst);
    await driver.destroy(src, { force: true });
  });

  test('the destination QEMU crashing mid-transfer rolls back: the source keeps running', async () => {
    const { src, dst, source, destination } = await setUp('crash', { maxBandwidthBytesPerSec: 2 * MIB });
    let killed = false;
    source.on('progress', (p) => {
      if (p.status === 'active' && p.transferredBytes > 2 * MIB && !killed) {
        killed = true;
        process.kill(dst.persisted().pid, 'SIGKILL');
      }
    });
    await assert.rejects(runLiveMigration(source, destination), MigrationError);
    assert.ok(killed, 'the destination was killed during the transfer');
    await assertOnlySourceRuns(src, dst);
    await driver.destroy(src, { force: true });
  });

  test('failure after the source completed (destination will not resume): the source returns to running', async () => {
    const { src, dst, source, destination, server } = await setUp('late');
    // The destination node fails at the last moment: it loaded the state but cannot resume it.
    const failing = {
      loaded: destination.loaded,
      resume: (): Promise<number> => Promise.reject(new Error('destination node lost at switchover')),
      abort: () => destination.abort(),
    };
    await assert.rejects(runLiveMigration(source, failing), /destination did not resume/);
    await server.close(0);
    assert.equal((await driver.handleOf(src).qmpClient().queryMigrate()).status, 'completed');
    await assertOnlySourceRuns(src, dst);
    await driver.destroy(src, { force: true });
  });
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
