// A QEMU VM under the driver's control: its persisted state, its QMP session, and exit detection.
//
// QEMU runs daemonized (not our child), so exit is seen as the QMP socket closing and then the pid
// disappearing from /proc. The same code path serves VMs we started and VMs adopted after a restart.
import { rm } from 'node:fs/promises';
import { UnavailableError } from '../../../errors.js';
import type { PersistedHandleState, VmDriverEvent, VmExit, VmHandle } from '../../driver.js';
import { qemuVmLayout } from './args.js';
import { isAlive, waitForExit } from './process.js';
import { QmpClient, type QmpEvent } from './qmp.js';
import { QEMU_DRIVER_NAME } from './state.js';

/** How long to wait for the pid to vanish after the QMP socket closed before trying to reconnect. */
const EXIT_AFTER_CLOSE_MS = 3000;
const RECONNECT_INTERVAL_MS = 1000;

export class QemuVmHandle implements VmHandle {
  readonly driver = QEMU_DRIVER_NAME;
  readonly vmId: string;
  readonly exited: Promise<VmExit>;
  private readonly state: PersistedHandleState;
  private qmp: QmpClient | undefined;
  private readonly listeners = new Set<(e: VmDriverEvent) => void>();
  private shutdownEvent: { reason: string; guest: boolean } | undefined;
  private killedByDriver = false;
  private detached = false;
  private exitInfo: VmExit | undefined;
  private resolveExited!: (e: VmExit) => void;

  constructor(state: PersistedHandleState, qmp: QmpClient | undefined) {
    this.state = state;
    this.vmId = state.vmId;
    this.exited = new Promise((resolve) => (this.resolveExited = resolve));
    if (qmp) this.attach(qmp);
    else void this.watchWithoutQmp();
  }

  persisted(): PersistedHandleState {
    return { ...this.state };
  }

  get pid(): number {
    return this.state.pid;
  }

  /** Set once the process is known to be gone. */
  get exit(): VmExit | undefined {
    return this.exitInfo;
  }

  onEvent(listener: (event: VmDriverEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The live QMP session, for the driver and the migration orchestrator (migrate, query-migrate …).
   * Throws UnavailableError when the VM has exited or the session is being re-established.
   */
  qmpClient(): QmpClient {
    if (this.qmp === undefined || this.qmp.isClosed)
      throw new UnavailableError(
        `no QMP session to VM ${this.vmId} (${this.exitInfo ? 'exited' : 'reconnecting'})`,
      );
    return this.qmp;
  }

  /** Called by the driver before SIGKILL, so the exit reason says `killed`. */
  markKilled(): void {
    this.killedByDriver = true;
  }

  /** Drops the QMP session without treating it as an exit (driver.close(): the VM keeps running). */
  detach(): void {
    this.detached = true;
    this.qmp?.close();
  }

  private emit(e: VmDriverEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // Listeners must not throw; one that does must not stop the others or the exit bookkeeping.
      }
    }
  }

  private attach(qmp: QmpClient): void {
    this.qmp = qmp;
    qmp.onEvent((e) => this.onQmpEvent(e));
    void qmp.closed.then(() => this.onQmpClosed());
  }

  private onQmpEvent(e: QmpEvent): void {
    if (e.name === 'SHUTDOWN') {
      const d = (e.data ?? {}) as { guest?: unknown; reason?: unknown };
      this.shutdownEvent = {
        guest: d.guest === true,
        reason: typeof d.reason === 'string' ? d.reason : 'shutdown',
      };
    }
    this.emit({ type: 'hypervisor', vmId: this.vmId, name: e.name, data: e.data });
    if (e.name === 'STOP') this.emit({ type: 'state', vmId: this.vmId, state: 'paused', rawState: 'paused' });
    if (e.name === 'RESUME')
      this.emit({ type: 'state', vmId: this.vmId, state: 'running', rawState: 'running' });
    if (e.name === 'SHUTDOWN')
      this.emit({ type: 'state', vmId: this.vmId, state: 'shutdown', rawState: 'shutdown' });
  }

  private async onQmpClosed(): Promise<void> {
    if (this.detached || this.exitInfo) return;
    if (await waitForExit(this.state.pid, EXIT_AFTER_CLOSE_MS)) {
      await this.finish();
      return;
    }
    // QEMU still runs but the session dropped: reconnect until it comes back or the process goes.
    await this.watchWithoutQmp();
  }

  private async watchWithoutQmp(): Promise<void> {
    while (!this.detached && !this.exitInfo) {
      if (!(await isAlive(this.state.pid))) {
        await this.finish();
        return;
      }
      try {
        const qmp = await QmpClient.connect(this.state.controlSocket, { timeoutMs: 2000 });
        if (this.detached) {
          qmp.close();
          return;
        }
        this.attach(qmp);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, RECONNECT_INTERVAL_MS));
      }
    }
  }

  /** Records the exit, removes the socket, pid file and handle file, then tells listeners. */
  private async finish(): Promise<void> {
    if (this.exitInfo) return;
    const layout = qemuVmLayout(this.state.vmDir);
    await Promise.all(
      [this.state.controlSocket, this.state.pidFile, layout.handleFile].map((p) => rm(p, { force: true })),
    );
    const exit: VmExit = {
      vmId: this.vmId,
      reason: this.killedByDriver ? 'killed' : (this.shutdownEvent?.reason ?? 'unknown'),
      guest: !this.killedByDriver && (this.shutdownEvent?.guest ?? false),
      at: new Date().toISOString(),
    };
    this.exitInfo = exit;
    this.qmp?.close();
    this.resolveExited(exit);
    this.emit({ type: 'state', vmId: this.vmId, state: 'exited', rawState: 'exited' });
    this.emit({ type: 'exit', exit });
  }
}
