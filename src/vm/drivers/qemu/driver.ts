// The QEMU driver: spawns qemu-system-x86_64 daemonized with QMP on a unix socket, stops, destroys and re-adopts it.
import { execFile, spawn } from 'node:child_process';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import {
  ConflictError,
  ErrorCode,
  HypervisorError,
  InvalidStateError,
  NovaCronError,
  UnavailableError,
  errorMessage,
} from '../../../errors.js';
import type {
  DestroyOptions,
  DiscoveredVm,
  DriverCapabilities,
  DriverHealth,
  PersistedHandleState,
  ReconcileReport,
  RecoverOutcome,
  StartOptions,
  StopOptions,
  StopResult,
  VmDirs,
  VmDriver,
  VmExit,
  VmHandle,
  VmInspection,
  VmSpec,
} from '../../driver.js';
import { resolveAccel, type AccelVerdict } from './accel.js';
import { buildQemuArgs, qemuArgsHash, qemuVmLayout, type QemuAccel, type QemuVmLayout } from './args.js';
import { prepareDisks } from './disks.js';
import { QemuVmHandle } from './handle.js';
import { findQemuPidsUnder, isAlive, isQemuOwning, processArgv, waitForExit } from './process.js';
import { QmpClient } from './qmp.js';
import { QEMU_DRIVER_NAME, observedFromRunState, parseQemuHandleFile } from './state.js';

const run = promisify(execFile);
/** Interval between ACPI power button presses during a graceful stop. */
const POWERDOWN_REPEAT_MS = 1000;

export interface QemuDriverOptions {
  /** Default `qemu-system-x86_64` (found on PATH). */
  readonly qemuBinary?: string;
  /** Default `qemu-img`. */
  readonly qemuImgBinary?: string;
  /** `auto` probes KVM once per process (see accel.ts). Default `auto`. */
  readonly accel?: 'auto' | QemuAccel;
  /** Machine type, identical on both ends of a migration. Default `pc`. */
  readonly machine?: string;
  /** Longest the daemonizing QEMU may take to set up (default 30 s). */
  readonly startTimeoutMs?: number;
  /** Longest the KVM probe may take (default 5 s). */
  readonly probeTimeoutMs?: number;
  /** Where warnings go (adopted orphans, stale files); default nowhere. */
  readonly log?: (message: string, fields?: Readonly<Record<string, unknown>>) => void;
}

/**
 * The real driver. Every QEMU it starts is daemonized (so it outlives NovaCron), has its QMP socket,
 * serial log and pid file in the VM directory, and can be re-adopted by a later QemuDriver.
 *
 * @example
 *   const driver = new QemuDriver({ accel: 'auto' });
 *   const vm = await driver.start(spec, { vmDir: '/var/lib/novacron/vms/' + spec.id });
 *   await driver.stop(vm, { graceMs: 10_000 });
 */
export class QemuDriver implements VmDriver {
  readonly name = QEMU_DRIVER_NAME;
  private readonly qemuBinary: string;
  private readonly qemuImg: string;
  private readonly accel: 'auto' | QemuAccel;
  private readonly machine: string;
  private readonly startTimeoutMs: number;
  private readonly probeTimeoutMs: number;
  private readonly log: (message: string, fields?: Readonly<Record<string, unknown>>) => void;
  private readonly handles = new Map<string, QemuVmHandle>();

  constructor(options: QemuDriverOptions = {}) {
    this.qemuBinary = options.qemuBinary ?? 'qemu-system-x86_64';
    this.qemuImg = options.qemuImgBinary ?? 'qemu-img';
    this.accel = options.accel ?? 'auto';
    this.machine = options.machine ?? 'pc';
    this.startTimeoutMs = options.startTimeoutMs ?? 30_000;
    this.probeTimeoutMs = options.probeTimeoutMs ?? 5000;
    this.log = options.log ?? ((): void => undefined);
  }

  capabilities(): DriverCapabilities {
    return {
      simulated: false,
      pauseResume: true,
      gracefulStop: true,
      liveMigration: true,
      snapshots: false,
      diskOverlays: true,
      serialConsole: true,
      recover: true,
    };
  }

  /** The acceleration new VMs get, with the reason (probes KVM on first use when `auto`). */
  accelVerdict(): Promise<AccelVerdict> {
    return resolveAccel(this.accel, this.qemuBinary, this.probeTimeoutMs);
  }

  async health(): Promise<DriverHealth> {
    const detected = await detectQemu(this.qemuBinary);
    if (detected.status !== 'found')
      return {
        status: detected.status === 'missing' ? 'undetected' : 'unhealthy',
        detail: detected.detail,
        simulated: false,
        attributes: { binary: this.qemuBinary },
      };
    const version = detected.version;
    const attributes: Record<string, string> = { binary: this.qemuBinary, version };
    try {
      await run(this.qemuImg, ['--version'], { timeout: 10_000 });
    } catch {
      return {
        status: 'unhealthy',
        detail: `${version}; ${this.qemuImg} not found (Debian package qemu-utils), disk overlays impossible`,
        simulated: false,
        attributes,
      };
    }
    const verdict = await this.accelVerdict();
    attributes['accel'] = verdict.accel;
    attributes['accelReason'] = verdict.reason;
    return {
      status: 'healthy',
      detail: `${version}, accel ${verdict.accel} (${verdict.reason})`,
      simulated: false,
      attributes,
    };
  }

  async start(spec: VmSpec, dirs: VmDirs, options: StartOptions = {}): Promise<VmHandle> {
    const layout = qemuVmLayout(resolve(dirs.vmDir));
    const previous = this.handles.get(spec.id);
    if (previous && !previous.exit) {
      // A handle whose process just died may still be cleaning up; never let that race a new start.
      if (!(await isAlive(previous.pid))) await previous.exited;
      else
        throw new ConflictError(`VM ${spec.id} is already running (pid ${previous.pid})`, { key: spec.id });
    }
    await mkdir(layout.vmDir, { recursive: true, mode: 0o750 });
    const owner = await this.liveOwner(layout);
    if (owner !== undefined)
      throw new ConflictError(`VM ${spec.id} already has a running QEMU (pid ${owner}) in ${layout.vmDir}`, {
        key: spec.id,
        hint: 'recover (adopt) it instead of starting a second copy',
      });
    await Promise.all(
      [layout.qmpSocket, layout.pidFile, layout.handleFile].map((p) => rm(p, { force: true })),
    );

    const disks = await prepareDisks(this.qemuImg, layout.vmDir, spec.disks);
    const verdict = await this.accelVerdict();
    const args = buildQemuArgs({
      spec,
      layout,
      accel: verdict.accel,
      disks,
      machine: this.machine,
      incoming: options.incoming === 'defer',
      paused: options.paused ?? false,
    });
    await rename(layout.serialLog, `${layout.serialLog}.1`).catch(() => undefined);
    await this.spawnDaemonized(args, spec.id);

    const pid = Number((await readFile(layout.pidFile, 'utf8')).trim());
    let qmp: QmpClient;
    try {
      qmp = await QmpClient.connect(layout.qmpSocket, { timeoutMs: 10_000 });
    } catch (err) {
      await this.killPid(pid);
      await Promise.all([layout.qmpSocket, layout.pidFile].map((p) => rm(p, { force: true })));
      throw new HypervisorError(
        `QEMU for VM ${spec.id} started but its QMP socket did not answer: ${errorMessage(err)}`,
        {
          cause: err,
          key: spec.id,
        },
      );
    }
    const state: PersistedHandleState = {
      version: 1,
      driver: QEMU_DRIVER_NAME,
      vmId: spec.id,
      vmDir: layout.vmDir,
      pid,
      controlSocket: layout.qmpSocket,
      pidFile: layout.pidFile,
      serialLog: layout.serialLog,
      argsHash: qemuArgsHash(args),
      accel: verdict.accel,
      startedAt: new Date().toISOString(),
      incoming: options.incoming === 'defer',
    };
    await writeFileAtomic(layout.handleFile, `${JSON.stringify(state, null, 2)}\n`);
    const handle = new QemuVmHandle(state, qmp);
    this.track(handle);
    return handle;
  }

  async stop(handle: VmHandle, options: StopOptions): Promise<StopResult> {
    const h = this.own(handle);
    if (h.exit) return { method: 'already-exited', exit: h.exit };
    if (!(await isAlive(h.pid))) return { method: 'already-exited', exit: await h.exited };
    const within = (ms: number): Promise<VmExit | undefined> =>
      Promise.race([h.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), ms))]);

    if (options.graceMs > 0) {
      try {
        // Press the power button again every second of the grace period: a press that lands right
        // after `cont` (or while the guest is still booting) can be lost, and a guest already
        // powering off ignores the extra presses.
        const deadline = Date.now() + options.graceMs;
        for (;;) {
          await h.qmpClient().systemPowerdown();
          const exit = await within(Math.min(POWERDOWN_REPEAT_MS, deadline - Date.now()));
          if (exit) return { method: 'powerdown', exit };
          if (Date.now() >= deadline) break;
        }
      } catch (err) {
        this.log('system_powerdown failed; quitting QEMU', { vmId: h.vmId, error: errorMessage(err) });
      }
    }
    try {
      await h.qmpClient().quit();
      const exit = await within(options.quitTimeoutMs ?? 5000);
      if (exit) return { method: 'quit', exit };
    } catch (err) {
      this.log('QMP quit failed; killing QEMU', { vmId: h.vmId, error: errorMessage(err) });
    }
    h.markKilled();
    await this.killPid(h.pid);
    const exit = await within(10_000);
    if (!exit)
      throw new HypervisorError(`QEMU pid ${h.pid} of VM ${h.vmId} survived SIGKILL`, { key: h.vmId });
    return { method: 'kill', exit };
  }

  async destroy(handle: VmHandle, options: DestroyOptions): Promise<void> {
    const h = this.own(handle);
    if (!h.exit && (await isAlive(h.pid))) {
      if (!options.force)
        throw new InvalidStateError(`VM ${h.vmId} is running; stop it first or destroy with force`, {
          key: h.vmId,
        });
      await this.stop(h, { graceMs: 0, quitTimeoutMs: 2000 });
    }
    await h.exited;
    await rm(h.persisted().vmDir, { recursive: true, force: true });
    if (this.handles.get(h.vmId) === h) this.handles.delete(h.vmId);
  }

  async inspect(handle: VmHandle): Promise<VmInspection> {
    const h = this.own(handle);
    const s = h.persisted();
    const base = {
      vmId: h.vmId,
      driver: this.name,
      pid: s.pid,
      accel: s.accel,
      serialLog: s.serialLog,
      simulated: false,
    };
    if (h.exit || !(await isAlive(h.pid)))
      return { ...base, state: 'exited', rawState: 'exited', alive: false };
    try {
      const st = await h.qmpClient().queryStatus();
      return { ...base, state: observedFromRunState(st.status), rawState: st.status, alive: true };
    } catch (err) {
      if (!(await isAlive(h.pid))) return { ...base, state: 'exited', rawState: 'exited', alive: false };
      return { ...base, state: 'unknown', rawState: `qmp unavailable: ${errorMessage(err)}`, alive: true };
    }
  }

  async pause(handle: VmHandle): Promise<void> {
    await this.own(handle).qmpClient().stop();
  }

  async resume(handle: VmHandle): Promise<void> {
    await this.own(handle).qmpClient().cont();
  }

  async recover(state: PersistedHandleState): Promise<RecoverOutcome> {
    if (state.driver !== this.name)
      throw new InvalidStateError(`handle of driver ${state.driver} given to the ${this.name} driver`, {
        key: state.vmId,
      });
    const known = this.handles.get(state.vmId);
    if (known && !known.exit && (await isAlive(known.pid))) return { status: 'adopted', handle: known };

    const layout = qemuVmLayout(state.vmDir);
    let adopt = state;
    if (!(await isQemuOwning(state.pid, state.controlSocket))) {
      // The recorded pid is gone or recycled. Another QEMU may own the directory (a restart whose new pid
      // never reached the database): adopt that one rather than let a second copy start.
      const owner = await this.liveOwner(layout);
      if (owner === undefined) {
        await this.cleanStale(layout);
        return { status: 'gone', reason: `QEMU pid ${state.pid} of VM ${state.vmId} is not running` };
      }
      adopt = (await this.stateFromDisk(layout, owner, state.vmId)) ?? state;
    }
    let qmp: QmpClient;
    try {
      qmp = await QmpClient.connect(adopt.controlSocket, { timeoutMs: 5000 });
    } catch (err) {
      throw new UnavailableError(
        `QEMU pid ${adopt.pid} of VM ${state.vmId} runs but its QMP socket does not answer: ${errorMessage(err)}`,
        { key: state.vmId, hint: 'another client may hold the QMP socket', cause: err },
      );
    }
    const handle = new QemuVmHandle(adopt, qmp);
    this.track(handle);
    await writeFileAtomic(layout.handleFile, `${JSON.stringify(adopt, null, 2)}\n`);
    return { status: 'adopted', handle };
  }

  async list(vmsRoot: string): Promise<readonly DiscoveredVm[]> {
    const root = resolve(vmsRoot);
    const out = new Map<string, DiscoveredVm>();
    let names: string[] = [];
    try {
      names = await readdir(root);
    } catch {
      // No VM directory yet: nothing to find there, but stray processes may still point into it.
    }
    for (const name of names) {
      const layout = qemuVmLayout(join(root, name));
      if (!(await isDir(layout.vmDir))) continue;
      const pid = await readPid(layout.pidFile);
      const persisted = await readFile(layout.handleFile, 'utf8').then(parseQemuHandleFile, () => undefined);
      const hasSocket = await exists(layout.qmpSocket);
      if (pid === undefined && persisted === undefined && !hasSocket) continue;
      const p = pid ?? persisted?.pid ?? 0;
      out.set(name, {
        vmId: persisted?.vmId ?? name,
        vmDir: layout.vmDir,
        pid: p,
        alive: p > 0 && (await isQemuOwning(p, layout.qmpSocket)),
        controlSocket: layout.qmpSocket,
        persisted,
      });
    }
    // Processes whose pid file was lost still name their socket on the command line.
    for (const [pid, socket] of await findQemuPidsUnder(root)) {
      const dir = dirname(socket);
      const name = basename(dir);
      const seen = out.get(name);
      if (seen?.alive) continue;
      const persisted = await readFile(qemuVmLayout(dir).handleFile, 'utf8').then(
        parseQemuHandleFile,
        () => undefined,
      );
      out.set(name, {
        vmId: persisted?.vmId ?? name,
        vmDir: dir,
        pid,
        alive: true,
        controlSocket: socket,
        persisted,
      });
    }
    return [...out.values()];
  }

  async reconcile(vmsRoot: string, known: readonly PersistedHandleState[]): Promise<ReconcileReport> {
    const adopted: VmHandle[] = [];
    const orphans: VmHandle[] = [];
    const gone: { vmId: string; reason: string }[] = [];
    const cleaned: string[] = [];
    const knownIds = new Set<string>();
    for (const state of known) {
      knownIds.add(state.vmId);
      const outcome = await this.recover(state);
      if (outcome.status === 'adopted') adopted.push(outcome.handle);
      else gone.push({ vmId: state.vmId, reason: outcome.reason });
    }
    for (const d of await this.list(vmsRoot)) {
      if (knownIds.has(d.vmId)) continue;
      const layout = qemuVmLayout(d.vmDir);
      if (!d.alive) {
        cleaned.push(...(await this.cleanStale(layout)));
        continue;
      }
      const state = (await this.stateFromDisk(layout, d.pid, d.vmId)) ?? d.persisted;
      if (state === undefined) continue;
      const outcome = await this.recover(state);
      if (outcome.status === 'adopted') {
        this.log('adopted a QEMU the caller did not know about', {
          vmId: d.vmId,
          pid: d.pid,
          vmDir: d.vmDir,
        });
        orphans.push(outcome.handle);
      }
    }
    return { adopted, orphans, gone, cleaned };
  }

  async close(): Promise<void> {
    for (const h of this.handles.values()) h.detach();
    this.handles.clear();
    return Promise.resolve();
  }

  /** The QemuVmHandle behind a VmHandle this driver issued. */
  handleOf(handle: VmHandle): QemuVmHandle {
    return this.own(handle);
  }

  private own(handle: VmHandle): QemuVmHandle {
    if (!(handle instanceof QemuVmHandle))
      throw new InvalidStateError(`handle of driver ${handle.driver} given to the ${this.name} driver`, {
        key: handle.vmId,
      });
    return handle;
  }

  private track(handle: QemuVmHandle): void {
    this.handles.set(handle.vmId, handle);
    void handle.exited.then(() => {
      // Keep exited handles out of the map so a restart is not mistaken for a duplicate.
      if (this.handles.get(handle.vmId) === handle) this.handles.delete(handle.vmId);
    });
  }

  /** Pid of the live QEMU that owns `layout` (by pid file, else by command line), if any. */
  private async liveOwner(layout: QemuVmLayout): Promise<number | undefined> {
    const pid = await readPid(layout.pidFile);
    if (pid !== undefined && (await isQemuOwning(pid, layout.qmpSocket))) return pid;
    for (const [p, socket] of await findQemuPidsUnder(layout.vmDir))
      if (socket === layout.qmpSocket) return p;
    return undefined;
  }

  /** Handle state for a live QEMU found on disk: handle.json when it names this pid, else rebuilt from argv. */
  private async stateFromDisk(
    layout: QemuVmLayout,
    pid: number,
    vmId: string,
  ): Promise<PersistedHandleState | undefined> {
    const onDisk = await readFile(layout.handleFile, 'utf8').then(parseQemuHandleFile, () => undefined);
    if (onDisk && onDisk.pid === pid && onDisk.controlSocket === layout.qmpSocket) return onDisk;
    const argv = await processArgv(pid);
    if (argv === undefined) return undefined;
    const args = argv.slice(1);
    const machine = args[args.indexOf('-machine') + 1] ?? '';
    return {
      version: 1,
      driver: QEMU_DRIVER_NAME,
      vmId,
      vmDir: layout.vmDir,
      pid,
      controlSocket: layout.qmpSocket,
      pidFile: layout.pidFile,
      serialLog: layout.serialLog,
      argsHash: qemuArgsHash(args),
      accel: /accel=(\w+)/.exec(machine)?.[1] ?? 'unknown',
      startedAt:
        (await stat(`/proc/${pid}`).catch(() => undefined))?.mtime.toISOString() ?? new Date().toISOString(),
      incoming: args.includes('-incoming'),
    };
  }

  private async cleanStale(layout: QemuVmLayout): Promise<string[]> {
    const removed: string[] = [];
    for (const p of [layout.qmpSocket, layout.pidFile, layout.handleFile]) {
      if (await exists(p)) {
        await rm(p, { force: true });
        removed.push(p);
      }
    }
    return removed;
  }

  private async killPid(pid: number): Promise<void> {
    try {
      process.kill(pid, 'SIGKILL');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
    await waitForExit(pid, 10_000);
  }

  /** Runs QEMU with -daemonize and waits for the foreground parent, which exits once the VM is set up. */
  private spawnDaemonized(args: readonly string[], vmId: string): Promise<void> {
    return new Promise((resolvePromise, reject) => {
      const child = spawn(this.qemuBinary, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(
          new NovaCronError(
            ErrorCode.DeadlineExceeded,
            `QEMU for VM ${vmId} did not finish starting in ${this.startTimeoutMs} ms`,
          ),
        );
      }, this.startTimeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
        reject(
          new UnavailableError(`cannot run ${this.qemuBinary}: ${err.message}`, {
            cause: err,
            ...(missing ? { hint: 'install the Debian package qemu-system-x86, or use vm.driver: sim' } : {}),
          }),
        );
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolvePromise();
        else
          reject(
            new HypervisorError(
              `QEMU for VM ${vmId} failed to start (${code ?? signal}): ${stderr.trim().slice(-2000)}`,
              {
                key: vmId,
              },
            ),
          );
      });
    });
  }
}

export type QemuDetection =
  | { readonly status: 'found'; readonly version: string; readonly detail: string }
  | { readonly status: 'missing' | 'broken'; readonly detail: string };

/** Cheap check that the QEMU binary exists and runs (`--version`); no guest is started. Never throws. */
export async function detectQemu(qemuBinary: string): Promise<QemuDetection> {
  try {
    const { stdout } = await run(qemuBinary, ['--version'], { timeout: 10_000 });
    const version = stdout.split('\n')[0]?.trim() ?? 'unknown';
    return { status: 'found', version, detail: version };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      return { status: 'missing', detail: `${qemuBinary} not found (Debian package qemu-system-x86)` };
    return { status: 'broken', detail: `${qemuBinary} --version failed: ${errorMessage(err)}` };
  }
}

async function writeFileAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode: 0o640 });
  await rename(tmp, path);
}

async function readPid(pidFile: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(pidFile, 'utf8')).trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}
