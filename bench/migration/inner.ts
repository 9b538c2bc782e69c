// The measuring half of bench/migration, run inside the WAN link's namespace A (see run.ts): the
// source QEMU runs here, the destination QEMU in namespace B (through a wrapper), QMP to both over
// their unix sockets. Per variant it boots the test guest with a memory-dirtying workload, migrates
// it across the emulated link and reports total time, downtime (source STOP → destination RESUME,
// QEMU event timestamps) and the bytes namespace A sent on its link device.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { openStreamSender } from '../../src/dwcp/stream.js';
import {
  MigrationDestination,
  MigrationSource,
  migrationWindowBytes,
  runLiveMigration,
} from '../../src/migration/live.js';
import type { VmHandle, VmSpec } from '../../src/vm/driver.js';
import { QemuDriver } from '../../src/vm/drivers/qemu/driver.js';
import type { QmpClient } from '../../src/vm/drivers/qemu/qmp.js';
import { waitForSerialLine } from '../../src/vm/drivers/qemu/serial.js';
import { ensureTestGuest } from '../../test/vm/guest.js';

const argv = process.argv.slice(2);
if (argv.length < 5) throw new Error('usage: inner.ts NS_B ADDR_B MEMORY_MIB VARIANTS OUT');
const [nsB, addrB, memArg, variantsArg, outFile] = argv as [string, string, string, string, string];
const memoryMib = Number(memArg);
const TOKEN = 'bench-migration-token';
const MAX_DOWNTIME_MS = 300;
/** DWCP knobs of the NovaCron variant (env, for tuning runs). */
const WINDOW_ENV = process.env['BENCH_MIGRATION_WINDOW_MIB'];
/**
 * Round trip of the emulated link. The bench drives the destination's QMP directly; between two
 * nodes the source learns "loaded" from the destination's AwaitLoaded answer (half a round trip)
 * and sends Resume (another half) — so the NovaCron variant waits one RTT before resuming, to
 * count what the node-to-node control costs, and tells QEMU's downtime-limit about it.
 */
const RTT_MS = 40;
/** As a node does (components/migration.ts: at most 2 streams, BBR where the kernel has it). */
const STREAMS = Number(process.env['BENCH_MIGRATION_STREAMS'] ?? 2);
const CONTROL_OVERHEAD_MS = RTT_MS + 10;
const CODEC = {
  codec: (process.env['BENCH_MIGRATION_CODEC'] ?? 'zstd') as 'zstd' | 'lz4',
  level: Number(process.env['BENCH_MIGRATION_LEVEL'] ?? 1),
};
const TRACE = process.env['BENCH_MIGRATION_TRACE'] === '1';
const root = mkdtempSync(join(tmpdir(), 'nc-bench-mig-'));
const wrapper = join(root, 'qemu-in-b.sh');
writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${nsB} qemu-system-x86_64 "$@"\n`);
chmodSync(wrapper, 0o755);
const driverA = new QemuDriver({ accel: 'tcg' });
const driverB = new QemuDriver({ accel: 'tcg', qemuBinary: wrapper });
const guest = await ensureTestGuest();

const txBytes = (): number => Number(readFileSync('/sys/class/net/wan0/statistics/tx_bytes', 'utf8'));

export interface VariantResult {
  readonly variant: string;
  readonly memoryMib: number;
  readonly totalMs: number;
  readonly downtimeMs: number | null;
  readonly wireBytes: number;
  /** NovaCron only: QEMU's stream, DWCP's own count of wire bytes, QEMU-reported downtime, window. */
  readonly detail?: Readonly<Record<string, number | undefined>>;
  readonly error?: string;
}

function spec(id: string): VmSpec {
  return {
    id,
    name: id,
    cpus: 1,
    memoryMib,
    kernel: guest.kernel,
    initrd: guest.initrd,
    cmdline: `${guest.cmdline} novacron.dirty_mib=16 novacron.dirty_rate=4`,
    disks: [],
    network: { mode: 'none' },
    labels: {},
  };
}

async function pair(name: string): Promise<{ src: VmHandle; dst: VmHandle; sq: QmpClient; dq: QmpClient }> {
  const src = await driverA.start(spec(`${name}-src`), { vmDir: join(root, `${name}-src`) });
  await waitForSerialLine(src.persisted().serialLog, /NOVACRON-HEARTBEAT \d+/, { timeoutMs: 120_000 });
  const dst = await driverB.start(
    spec(`${name}-dst`),
    { vmDir: join(root, `${name}-dst`) },
    { incoming: 'defer', paused: true },
  );
  return { src, dst, sq: driverA.handleOf(src).qmpClient(), dq: driverB.handleOf(dst).qmpClient() };
}

async function novacron(): Promise<VariantResult> {
  const { src, dst, sq, dq } = await pair('nc');
  try {
    const socketPath = join(root, 'nc-dst', 'migrate-in.sock');
    const destination = await MigrationDestination.prepare({
      qmp: dq,
      socketPath,
      kill: () => driverB.destroy(dst, { force: true }),
    });
    const recv = spawn(
      'ip',
      [
        'netns',
        'exec',
        nsB,
        process.execPath,
        '--import',
        'tsx',
        'bench/migration/receiver.ts',
        addrB,
        socketPath,
        TOKEN,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const line = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: recv.stdout! });
      rl.on('line', (l) => l.startsWith('ready ') && resolve(l));
      recv.once('exit', (c) => reject(new Error(`receiver exited ${c}`)));
    });
    const port = Number(line.split(' ')[1]);
    const tx0 = txBytes();
    const source = await MigrationSource.start({
      qmp: sq,
      socketPath: join(root, 'nc-src', 'migrate-out.sock'),
      openStream: () =>
        openStreamSender({
          host: addrB,
          port,
          security: { token: TOKEN, encrypt: true },
          streams: STREAMS,
          // As a node sizes it from the measured round trip (docs/migration.md).
          windowBytes: WINDOW_ENV ? Number(WINDOW_ENV) * 2 ** 20 : migrationWindowBytes(RTT_MS),
          congestionControl: 'auto',
          codec: CODEC,
          label: 'bench',
        }),
      maxDowntimeMs: MAX_DOWNTIME_MS,
      convergeTimeoutMs: 600_000,
      controlOverheadMs: CONTROL_OVERHEAD_MS,
    });
    if (TRACE) {
      let lastTx = tx0;
      let lastT = Date.now();
      let cpu0 = process.cpuUsage();
      source.on('progress', (p) => {
        const now = Date.now();
        const tx = txBytes();
        const cpu = process.cpuUsage();
        const cpuPct =
          ((cpu.user - cpu0.user + cpu.system - cpu0.system) / 1000 / Math.max(1, now - lastT)) * 100;
        const st = source.streamStats();
        console.error(
          `trace ${p.elapsedMs} ms ${p.phase}/${p.status} qemu ${(p.transferredBytes / 2 ** 20).toFixed(1)} MiB ` +
            `rem ${(p.remainingBytes / 2 ** 20).toFixed(1)} MiB ${p.mbps.toFixed(0)} Mbit/s dirty ${p.dirtyPagesRate} ` +
            `sync ${p.dirtySyncCount} exp ${p.expectedDowntimeMs} ms | wire ${(p.wireBytes / 2 ** 20).toFixed(1)} MiB ` +
            `link ${(((tx - lastTx) * 8) / 1e3 / Math.max(1, now - lastT)).toFixed(1)} Mbit/s unacked ${(st.unackedBytes / 2 ** 10).toFixed(0)} KiB ` +
            `stream ${(st.streamBytes / 2 ** 20).toFixed(1)} MiB cpu ${cpuPct.toFixed(0)}%`,
        );
        lastTx = tx;
        lastT = now;
        cpu0 = cpu;
      });
    }
    const control = {
      loaded: destination.loaded,
      resume: () => delay(RTT_MS).then(() => destination.resume()),
      abort: () => destination.abort(),
    };
    const r = await runLiveMigration(source, control);
    console.error(`# novacron result ${JSON.stringify(r)}`);
    recv.kill();
    return {
      variant: 'novacron-dwcp',
      memoryMib,
      totalMs: r.totalMs,
      downtimeMs: r.downtimeMs ?? null,
      wireBytes: txBytes() - tx0,
      detail: {
        streamBytes: r.streamBytes,
        dwcpWireBytes: r.wireBytes,
        qemuDowntimeMs: r.qemuDowntimeMs,
        dirtySyncCount: r.dirtySyncCount,
        windowBytes: WINDOW_ENV ? Number(WINDOW_ENV) * 2 ** 20 : migrationWindowBytes(RTT_MS),
      },
    };
  } finally {
    await driverA.destroy(src, { force: true }).catch(() => undefined);
    await driverB.destroy(dst, { force: true }).catch(() => undefined);
  }
}

async function qemuNative(
  variant: 'qemu-plain' | 'qemu-multifd' | 'qemu-multifd-zstd',
): Promise<VariantResult> {
  const { src, dst, sq, dq } = await pair(variant);
  try {
    const multifd = variant !== 'qemu-plain';
    const caps = { events: true, ...(multifd ? { multifd: true } : {}) };
    const params = multifd
      ? {
          'multifd-channels': 4,
          ...(variant === 'qemu-multifd-zstd' ? { 'multifd-compression': 'zstd' } : {}),
        }
      : {};
    await dq.migrateSetCapabilities(caps);
    if (multifd) await dq.migrateSetParameters(params);
    const port = 4400 + Math.floor(Math.random() * 500);
    await dq.migrateIncoming(`tcp:${addrB}:${port}`);
    const loaded = dq.waitForEvent('MIGRATION', {
      timeoutMs: 900_000,
      predicate: (e) => (e.data as { status?: string }).status === 'completed',
    });
    let stoppedAtUs: number | undefined;
    const off = sq.onEvent((e) => {
      if (e.name === 'STOP' && stoppedAtUs === undefined) stoppedAtUs = e.timestampUs;
    });
    await sq.migrateSetCapabilities({ ...caps, 'auto-converge': true });
    await sq.migrateSetParameters({ 'downtime-limit': MAX_DOWNTIME_MS, ...params });
    const tx0 = txBytes();
    const t0 = Date.now();
    await sq.migrate(`tcp:${addrB}:${port}`);
    for (;;) {
      const s = (await sq.queryMigrate()).status;
      if (s === 'completed') break;
      if (s === 'failed' || s === 'cancelled') throw new Error(`QEMU migration ${s}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await loaded;
    const resumed = dq.waitForEvent('RESUME', { timeoutMs: 10_000 });
    await dq.cont();
    const resumedAtUs = (await resumed).timestampUs;
    off();
    return {
      variant,
      memoryMib,
      totalMs: Date.now() - t0,
      downtimeMs: stoppedAtUs === undefined ? null : Math.round((resumedAtUs - stoppedAtUs) / 1000),
      wireBytes: txBytes() - tx0,
    };
  } finally {
    await driverA.destroy(src, { force: true }).catch(() => undefined);
    await driverB.destroy(dst, { force: true }).catch(() => undefined);
  }
}

const results: VariantResult[] = [];
try {
  for (const v of variantsArg.split(',')) {
    const run = v === 'novacron-dwcp' ? novacron : () => qemuNative(v as 'qemu-plain');
    try {
      const r = await run();
      console.error(
        `# ${memoryMib} MiB ${v}: total ${r.totalMs} ms, downtime ${r.downtimeMs} ms, wire ${(r.wireBytes / 2 ** 20).toFixed(1)} MiB`,
      );
      results.push(r);
    } catch (err) {
      console.error(`# ${memoryMib} MiB ${v}: failed: ${String(err)}`);
      results.push({ variant: v, memoryMib, totalMs: 0, downtimeMs: null, wireBytes: 0, error: String(err) });
    }
  }
} finally {
  writeFileSync(outFile, JSON.stringify(results, null, 2));
  await driverA.close();
  await driverB.close();
  rmSync(root, { recursive: true, force: true });
}
process.exit(0);
