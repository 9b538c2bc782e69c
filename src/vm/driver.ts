// The VM driver contract (after Nomad's plugins/drivers): what the VM service may ask of a hypervisor driver.
//
// A driver starts, stops, inspects and re-adopts VMs. It never touches the database: it returns a
// `PersistedHandleState` (plain JSON) that the VM service stores and hands back to `recover()` after a
// NovaCron restart. Two drivers implement it: `qemu` (real, QMP) and `sim` (in-process, for scale tests).

/** Health of a driver on this node. A missing binary is `undetected`, not an error. */
export const DriverHealthStatus = {
  Healthy: 'healthy',
  Unhealthy: 'unhealthy',
  Undetected: 'undetected',
} as const;
export type DriverHealthStatus = (typeof DriverHealthStatus)[keyof typeof DriverHealthStatus];

export interface DriverHealth {
  readonly status: DriverHealthStatus;
  /** One line for operators: version and acceleration, or why the driver cannot be used. */
  readonly detail: string;
  /** True for the simulator: nothing really runs. APIs and dashboards must say so. */
  readonly simulated: boolean;
  /** Facts found while fingerprinting (binary path, version, accel …). */
  readonly attributes: Readonly<Record<string, string>>;
}

/** What a driver can do; the VM service and the migration orchestrator branch on these. */
export interface DriverCapabilities {
  readonly simulated: boolean;
  readonly pauseResume: boolean;
  readonly gracefulStop: boolean;
  /** Start a VM waiting for an incoming migration stream, and drive a migration out of one. */
  readonly liveMigration: boolean;
  readonly snapshots: boolean;
  readonly diskOverlays: boolean;
  readonly serialConsole: boolean;
  /** Re-adopt VMs that outlived a NovaCron restart. */
  readonly recover: boolean;
}

/** A disk: either an image used as is (`path`) or a base image under a per-VM qcow2 overlay (`baseImage`). */
export type VmDiskSpec =
  | { readonly path: string; readonly format?: 'qcow2' | 'raw'; readonly readOnly?: boolean }
  | { readonly baseImage: string; readonly format?: 'qcow2' | 'raw' };

export interface HostForward {
  readonly protocol: 'tcp' | 'udp';
  readonly hostAddress: string;
  readonly hostPort: number;
  readonly guestPort: number;
}

export type VmNetworkSpec =
  { readonly mode: 'none' } | { readonly mode: 'user'; readonly hostForwards?: readonly HostForward[] };

/** What to run. Validated by the VM service; drivers re-check what they depend on. */
export interface VmSpec {
  readonly id: string;
  readonly name: string;
  readonly cpus: number;
  readonly memoryMib: number;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly cmdline?: string;
  readonly disks: readonly VmDiskSpec[];
  readonly network: VmNetworkSpec;
  readonly labels: Readonly<Record<string, string>>;
}

/** Where a VM's files live: `<data_dir>/vms/<id>/` (qmp.sock, serial.log, qemu.pid, handle.json, overlays). */
export interface VmDirs {
  readonly vmDir: string;
}

export interface StartOptions {
  /**
   * Start waiting for an incoming live migration instead of booting (QEMU `-incoming defer`); the
   * migration orchestrator then sets capabilities and calls migrate-incoming through the handle.
   */
  readonly incoming?: 'defer';
  /** Start with vCPUs stopped (QEMU `-S`); `resume()` starts them. */
  readonly paused?: boolean;
}

/**
 * A driver's handle state, persisted by the VM service as JSON and handed back to `recover()`.
 * Plain data only: no functions, no class instances.
 */
export interface PersistedHandleState {
  readonly version: 1;
  readonly driver: string;
  readonly vmId: string;
  readonly vmDir: string;
  /** Process id of the hypervisor (0 for the simulator). */
  readonly pid: number;
  /** Control socket (QMP) path; empty for the simulator. */
  readonly controlSocket: string;
  readonly pidFile: string;
  readonly serialLog: string;
  /** sha256 of the argv the VM was started with: a recovered VM with another hash was started differently. */
  readonly argsHash: string;
  readonly accel: string;
  readonly startedAt: string;
  readonly incoming: boolean;
}

/** Observed state, as the hypervisor reports it (QEMU's run state, mapped). */
export const ObservedVmState = {
  /** Started with `-S` or created, vCPUs never ran yet. */
  Created: 'created',
  Running: 'running',
  Paused: 'paused',
  /** Waiting for or receiving an incoming migration. */
  Incoming: 'incoming',
  /** Sending the last pages of an outgoing migration. */
  Migrating: 'migrating',
  /** Outgoing migration finished; this copy must not run again. */
  Migrated: 'migrated',
  /** The guest shut down; the process is exiting. */
  Shutdown: 'shutdown',
  Crashed: 'crashed',
  /** No process any more. */
  Exited: 'exited',
  Unknown: 'unknown',
} as const;
export type ObservedVmState = (typeof ObservedVmState)[keyof typeof ObservedVmState];

export interface VmInspection {
  readonly vmId: string;
  readonly driver: string;
  readonly state: ObservedVmState;
  /** The hypervisor's own word for its state (QEMU RunState), for operators. */
  readonly rawState: string;
  readonly pid: number;
  readonly alive: boolean;
  readonly accel: string;
  readonly serialLog: string;
  readonly simulated: boolean;
}

/** Why a VM's process went away, as far as the driver knows. */
export interface VmExit {
  readonly vmId: string;
  /** QEMU's SHUTDOWN reason (`guest-shutdown`, `host-qmp-quit`, …), `killed`, or `unknown` (crash or external kill). */
  readonly reason: string;
  /** True when the guest asked for it (power off from inside). */
  readonly guest: boolean;
  readonly at: string;
}

export type VmDriverEvent =
  | {
      readonly type: 'state';
      readonly vmId: string;
      readonly state: ObservedVmState;
      readonly rawState: string;
    }
  | { readonly type: 'exit'; readonly exit: VmExit }
  /** Any hypervisor event (QMP event name and data), e.g. MIGRATION, for the migration orchestrator. */
  | { readonly type: 'hypervisor'; readonly vmId: string; readonly name: string; readonly data: unknown };

/** A running (or just exited) VM under a driver's control. */
export interface VmHandle {
  readonly vmId: string;
  readonly driver: string;
  /** Current persistable state (JSON-safe). */
  persisted(): PersistedHandleState;
  /** Subscribe to events; returns the unsubscribe function. Listeners must not throw. */
  onEvent(listener: (event: VmDriverEvent) => void): () => void;
  /** Resolves once when the VM's process has gone (whatever the cause); never rejects. */
  readonly exited: Promise<VmExit>;
}

export interface StopOptions {
  /** How long the guest gets after the ACPI power button before the hypervisor is told to quit. */
  readonly graceMs: number;
  /** How long `quit` gets before SIGKILL (default 5 s). */
  readonly quitTimeoutMs?: number;
}

export type StopMethod = 'powerdown' | 'quit' | 'kill' | 'already-exited';

export interface StopResult {
  /** Which step ended the process. */
  readonly method: StopMethod;
  readonly exit: VmExit;
}

export interface DestroyOptions {
  /** Kill a running VM first; without it, destroying a running VM is an InvalidStateError. */
  readonly force: boolean;
}

export type RecoverOutcome =
  | { readonly status: 'adopted'; readonly handle: VmHandle }
  /** The process is gone (its leftovers were cleaned); the VM service decides whether to restart it. */
  | { readonly status: 'gone'; readonly reason: string };

/** A VM process, socket or pid file found under the VM directories. */
export interface DiscoveredVm {
  readonly vmId: string;
  readonly vmDir: string;
  readonly pid: number;
  readonly alive: boolean;
  readonly controlSocket: string;
  /** The handle state the driver wrote into the VM directory at start, if readable. */
  readonly persisted: PersistedHandleState | undefined;
}

export interface ReconcileReport {
  /** Known VMs whose process is alive, re-adopted. */
  readonly adopted: readonly VmHandle[];
  /** Alive VMs under the VM directories that the caller did not know about: adopted too, so nothing leaks. */
  readonly orphans: readonly VmHandle[];
  /** Known VMs whose process is gone. */
  readonly gone: readonly { readonly vmId: string; readonly reason: string }[];
  /** Stale sockets and pid files removed. */
  readonly cleaned: readonly string[];
}

/**
 * The driver contract.
 *
 * Concurrency: the caller serialises operations per VM (the VM service holds a per-VM lock); a driver
 * must tolerate operations on different VMs concurrently.
 */
export interface VmDriver {
  readonly name: string;
  capabilities(): DriverCapabilities;
  /** Detects the hypervisor. Never throws: a missing binary is `undetected`. */
  health(): Promise<DriverHealth>;
  /**
   * Starts a VM. Refuses (ConflictError) when a live process already owns `dirs.vmDir`: the caller must
   * `recover()` it instead, so a VM is never started twice.
   */
  start(spec: VmSpec, dirs: VmDirs, options?: StartOptions): Promise<VmHandle>;
  /**
   * Stops gracefully: ACPI power button, wait `graceMs`, then `quit`, then SIGKILL. Removes the control
   * socket and pid file; keeps disks and the serial log. Idempotent: stopping an exited VM is fine.
   */
  stop(handle: VmHandle, options: StopOptions): Promise<StopResult>;
  /** Removes everything the driver created for the VM (its whole VM directory). Idempotent. */
  destroy(handle: VmHandle, options: DestroyOptions): Promise<void>;
  inspect(handle: VmHandle): Promise<VmInspection>;
  pause(handle: VmHandle): Promise<void>;
  resume(handle: VmHandle): Promise<void>;
  /**
   * Re-adopts a VM from persisted state after a restart (the process must be the one described: same
   * pid, same control socket). Never starts anything. A VM already adopted by this driver returns the
   * same handle.
   */
  recover(state: PersistedHandleState): Promise<RecoverOutcome>;
  /** VM processes, sockets and pid files under `vmsRoot` (`<data_dir>/vms`). Read-only. */
  list(vmsRoot: string): Promise<readonly DiscoveredVm[]>;
  /**
   * Adopts every live VM under `vmsRoot` (known ones from `known`, the rest as orphans) and cleans stale
   * sockets and pid files. After it, no VM process under `vmsRoot` is unaccounted for.
   */
  reconcile(vmsRoot: string, known: readonly PersistedHandleState[]): Promise<ReconcileReport>;
  /** Drops in-process resources (QMP connections); VMs keep running. */
  close(): Promise<void>;
}

/** Narrows unknown JSON (from the database) to a PersistedHandleState, or explains why not. */
export function parsePersistedHandleState(value: unknown): PersistedHandleState | string {
  if (typeof value !== 'object' || value === null) return 'handle state is not an object';
  const v = value as Record<string, unknown>;
  if (v['version'] !== 1) return `unsupported handle state version ${String(v['version'])}`;
  const strings = [
    'driver',
    'vmId',
    'vmDir',
    'controlSocket',
    'pidFile',
    'serialLog',
    'argsHash',
    'accel',
    'startedAt',
  ] as const;
  for (const k of strings) if (typeof v[k] !== 'string') return `handle state field ${k} is not a string`;
  if (typeof v['pid'] !== 'number' || !Number.isInteger(v['pid']) || v['pid'] < 0)
    return 'handle state field pid is not a non-negative integer';
  if (typeof v['incoming'] !== 'boolean') return 'handle state field incoming is not a boolean';
  return {
    version: 1,
    driver: v['driver'] as string,
    vmId: v['vmId'] as string,
    vmDir: v['vmDir'] as string,
    pid: v['pid'],
    controlSocket: v['controlSocket'] as string,
    pidFile: v['pidFile'] as string,
    serialLog: v['serialLog'] as string,
    argsHash: v['argsHash'] as string,
    accel: v['accel'] as string,
    startedAt: v['startedAt'] as string,
    incoming: v['incoming'],
  };
}
