// The `sim` driver: an in-process simulator of the VM driver contract for scale tests and demos. Nothing runs.
//
// It keeps VMs in a map, moves them through the same observed states as QEMU would (with optional
// delays), and says `simulated: true` in its capabilities, health and inspections so no API or
// dashboard can mistake it for real VMs.
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { ConflictError, InvalidStateError, ValidationError } from '../../../errors.js';
import type {
  DestroyOptions,
  DiscoveredVm,
  DriverCapabilities,
  DriverHealth,
  ObservedVmState,
  PersistedHandleState,
  ReconcileReport,
  RecoverOutcome,
  StartOptions,
  StopOptions,
  StopResult,
  VmDirs,
  VmDriver,
  VmDriverEvent,
  VmExit,
  VmHandle,
  VmInspection,
  VmSpec,
} from '../../driver.js';

export const SIM_DRIVER_NAME = 'sim';

export interface SimDriverOptions {
  /** Simulated time from start to running (default 0: immediate). */
  readonly startDelayMs?: number;
  /** Simulated time a graceful stop takes when the guest honours the power button (default 0). */
  readonly stopDelayMs?: number;
  /**
   * Whether simulated VMs "outlive" a NovaCron restart: `recover()` on a fresh driver adopts them as
   * running, as the QEMU driver adopts real processes (default true). False makes every recover `gone`.
   */
  readonly survivesRestart?: boolean;
  /** Injected clock for deterministic timestamps. */
  readonly now?: () => Date;
  /**
   * Fault injection for tests of the layers above: return an error to make that start fail (after
   * the start delay, as a real hypervisor would), or undefined to let it succeed.
   */
  readonly failStart?: (spec: VmSpec) => Error | undefined;
}

class SimVmHandle implements VmHandle {
  readonly driver = SIM_DRIVER_NAME;
  readonly vmId: string;
  readonly exited: Promise<VmExit>;
  state: ObservedVmState;
  exit: VmExit | undefined;
  private readonly persistedState: PersistedHandleState;
  private readonly listeners = new Set<(e: VmDriverEvent) => void>();
  private resolveExited!: (e: VmExit) => void;

  constructor(persisted: PersistedHandleState, state: ObservedVmState) {
    this.persistedState = persisted;
    this.vmId = persisted.vmId;
    this.state = state;
    this.exited = new Promise((r) => (this.resolveExited = r));
  }

  persisted(): PersistedHandleState {
    return { ...this.persistedState };
  }

  onEvent(listener: (event: VmDriverEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  setState(state: ObservedVmState): void {
    this.state = state;
    this.emit({ type: 'state', vmId: this.vmId, state, rawState: state });
  }

  finish(exit: VmExit): void {
    if (this.exit) return;
    this.exit = exit;
    this.setState('exited');
    this.resolveExited(exit);
    this.emit({ type: 'exit', exit });
  }

  private emit(e: VmDriverEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // Listeners must not throw.
      }
    }
  }
}

/** In-process simulated driver. Safe for thousands of concurrent starts; no file or process is created. */
export class SimDriver implements VmDriver {
  readonly name = SIM_DRIVER_NAME;
  private readonly vms = new Map<string, SimVmHandle>();
  private readonly startDelayMs: number;
  private readonly stopDelayMs: number;
  private readonly survivesRestart: boolean;
  private readonly now: () => Date;
  private readonly failStart: ((spec: VmSpec) => Error | undefined) | undefined;

  constructor(options: SimDriverOptions = {}) {
    this.startDelayMs = options.startDelayMs ?? 0;
    this.stopDelayMs = options.stopDelayMs ?? 0;
    this.survivesRestart = options.survivesRestart ?? true;
    this.now = options.now ?? ((): Date => new Date());
    this.failStart = options.failStart;
  }

  capabilities(): DriverCapabilities {
    return {
      simulated: true,
      pauseResume: true,
      gracefulStop: true,
      liveMigration: false,
      snapshots: false,
      diskOverlays: false,
      serialConsole: false,
      recover: true,
    };
  }

  health(): Promise<DriverHealth> {
    return Promise.resolve({
      status: 'healthy',
      detail: 'sim: simulated driver, VMs do not really run (for scale tests and demos)',
      simulated: true,
      attributes: { simulated: 'true', vms: String(this.vms.size) },
    });
  }

  async start(spec: VmSpec, dirs: VmDirs, options: StartOptions = {}): Promise<VmHandle> {
    if (!Number.isInteger(spec.cpus) || spec.cpus < 1)
      throw new ValidationError(`cpus must be a positive integer (got ${spec.cpus})`, { key: 'cpus' });
    if (!Number.isInteger(spec.memoryMib) || spec.memoryMib < 16)
      throw new ValidationError(`memoryMib must be an integer of at least 16 (got ${spec.memoryMib})`, {
        key: 'memoryMib',
      });
    const existing = this.vms.get(spec.id);
    if (existing && !existing.exit)
      throw new ConflictError(`VM ${spec.id} is already running (simulated)`, {
        key: spec.id,
        hint: 'recover (adopt) it instead of starting a second copy',
      });
    const injected = this.failStart?.(spec);
    if (injected) {
      await delay(this.startDelayMs);
      throw injected;
    }
    const vmDir = resolve(dirs.vmDir);
    const persisted: PersistedHandleState = {
      version: 1,
      driver: SIM_DRIVER_NAME,
      vmId: spec.id,
      vmDir,
      pid: 0,
      controlSocket: '',
      pidFile: '',
      serialLog: '',
      argsHash: createHash('sha256')
        .update(
          JSON.stringify([
            spec.cpus,
            spec.memoryMib,
            spec.kernel,
            spec.initrd,
            spec.cmdline,
            spec.disks,
            spec.network,
          ]),
        )
        .digest('hex'),
      accel: 'sim',
      startedAt: this.now().toISOString(),
      incoming: options.incoming === 'defer',
    };
    const initial: ObservedVmState =
      options.incoming === 'defer'
        ? 'incoming'
        : options.paused
          ? 'created'
          : this.startDelayMs > 0
            ? 'created'
            : 'running';
    const handle = new SimVmHandle(persisted, initial);
    this.vms.set(spec.id, handle);
    if (initial === 'created' && !options.paused) {
      await delay(this.startDelayMs);
      if (!handle.exit) handle.setState('running');
    }
    return handle;
  }

  async stop(handle: VmHandle, options: StopOptions): Promise<StopResult> {
    const h = this.own(handle);
    if (h.exit) return { method: 'already-exited', exit: h.exit };
    // A paused guest cannot react to the power button, exactly as under QEMU.
    const graceful = options.graceMs > 0 && h.state === 'running';
    if (graceful) await delay(Math.min(this.stopDelayMs, options.graceMs));
    const exit: VmExit = {
      vmId: h.vmId,
      reason: graceful ? 'guest-shutdown' : 'host-qmp-quit',
      guest: graceful,
      at: this.now().toISOString(),
    };
    h.finish(exit);
    return { method: graceful ? 'powerdown' : 'quit', exit };
  }

  async destroy(handle: VmHandle, options: DestroyOptions): Promise<void> {
    const h = this.own(handle);
    if (!h.exit) {
      if (!options.force)
        throw new InvalidStateError(`VM ${h.vmId} is running; stop it first or destroy with force`, {
          key: h.vmId,
        });
      await this.stop(h, { graceMs: 0 });
    }
    if (this.vms.get(h.vmId) === h) this.vms.delete(h.vmId);
  }

  inspect(handle: VmHandle): Promise<VmInspection> {
    const h = this.own(handle);
    return Promise.resolve({
      vmId: h.vmId,
      driver: this.name,
      state: h.state,
      rawState: `simulated ${h.state}`,
      pid: 0,
      alive: !h.exit,
      accel: 'sim',
      serialLog: '',
      simulated: true,
    });
  }

  pause(handle: VmHandle): Promise<void> {
    const h = this.own(handle);
    if (h.state !== 'running' && h.state !== 'paused')
      return Promise.reject(
        new InvalidStateError(`cannot pause VM ${h.vmId} in state ${h.state}`, { key: h.vmId }),
      );
    h.setState('paused');
    return Promise.resolve();
  }

  resume(handle: VmHandle): Promise<void> {
    const h = this.own(handle);
    if (h.state !== 'paused' && h.state !== 'created' && h.state !== 'running')
      return Promise.reject(
        new InvalidStateError(`cannot resume VM ${h.vmId} in state ${h.state}`, { key: h.vmId }),
      );
    h.setState('running');
    return Promise.resolve();
  }

  recover(state: PersistedHandleState): Promise<RecoverOutcome> {
    if (state.driver !== this.name)
      return Promise.reject(
        new InvalidStateError(`handle of driver ${state.driver} given to the ${this.name} driver`, {
          key: state.vmId,
        }),
      );
    const known = this.vms.get(state.vmId);
    if (known && !known.exit) return Promise.resolve({ status: 'adopted', handle: known });
    if (!this.survivesRestart)
      return Promise.resolve({
        status: 'gone',
        reason: `simulated VM ${state.vmId} did not survive the restart`,
      });
    const handle = new SimVmHandle(state, state.incoming ? 'incoming' : 'running');
    this.vms.set(state.vmId, handle);
    return Promise.resolve({ status: 'adopted', handle });
  }

  list(vmsRoot: string): Promise<readonly DiscoveredVm[]> {
    const root = `${resolve(vmsRoot)}/`;
    return Promise.resolve(
      [...this.vms.values()]
        .filter((h) => !h.exit && h.persisted().vmDir.startsWith(root))
        .map((h) => ({
          vmId: h.vmId,
          vmDir: h.persisted().vmDir,
          pid: 0,
          alive: true,
          controlSocket: '',
          persisted: h.persisted(),
        })),
    );
  }

  async reconcile(vmsRoot: string, known: readonly PersistedHandleState[]): Promise<ReconcileReport> {
    const adopted: VmHandle[] = [];
    const gone: { vmId: string; reason: string }[] = [];
    const ids = new Set<string>();
    for (const s of known) {
      ids.add(s.vmId);
      const o = await this.recover(s);
      if (o.status === 'adopted') adopted.push(o.handle);
      else gone.push({ vmId: s.vmId, reason: o.reason });
    }
    const orphans = (await this.list(vmsRoot))
      .filter((d) => !ids.has(d.vmId))
      .flatMap((d) => {
        const h = this.vms.get(d.vmId);
        return h ? [h] : [];
      });
    return { adopted, orphans, gone, cleaned: [] };
  }

  close(): Promise<void> {
    // Simulated VMs exist only in this process: closing the driver is the "restart" they may survive
    // through recover() on a new driver.
    this.vms.clear();
    return Promise.resolve();
  }

  private own(handle: VmHandle): SimVmHandle {
    if (!(handle instanceof SimVmHandle))
      throw new InvalidStateError(`handle of driver ${handle.driver} given to the ${this.name} driver`, {
        key: handle.vmId,
      });
    return handle;
  }
}

function delay(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}
