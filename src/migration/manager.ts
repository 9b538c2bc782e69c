// The node's migration manager: both roles of a node-to-node live migration.
//
// Source role (`migrate`): validates the request, records the migration and puts the VM in
// `migrating`, asks the destination peer (gRPC, join token) to prepare, streams the source QEMU's
// migration over DWCP (MigrationSource), and coordinates commit/rollback. Destination role
// (DestinationHost, called by the peer): reserves the VM here (row `migrating` + allocation), starts
// QEMU waiting (-incoming defer, paused), feeds it from the DWCP receiver, and commits (row
// `running`, recorded first, then `cont`) or aborts (QEMU killed, row removed).
//
// One running copy: the destination resumes only on the source's Resume, which the source sends only
// after its QEMU completed (vCPUs stopped for good). Whenever the source is unsure whether the
// destination resumed (the Resume call failed in transport, or the source restarted), it asks the
// destination to Abort; Abort is the arbiter (`committed` or `aborted`), and until it answers the
// source QEMU stays paused. A destination whose source went away before Resume aborts by itself.
import { randomUUID } from 'node:crypto';
import { access, open, readdir, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { EventBus } from '../boot/events.js';
import type { CodecChoice } from '../dwcp/encoding/codec.js';
import { checkFileName, createReceiver, sendFile, type FileReceiver } from '../dwcp/index.js';
import { openStreamSender, streamReceiver } from '../dwcp/stream.js';
import { AmstServer } from '../dwcp/transport/server.js';
import type { ConnectionSecurity } from '../dwcp/transport/connection.js';
import {
  ConflictError,
  ErrorCode,
  InvalidStateError,
  MigrationError,
  NotFoundError,
  ValidationError,
  errorMessage,
} from '../errors.js';
import { isTransportFailure, MigrationPeerClient, type PeerAddress } from '../api/grpc/migration-service.js';
import type { Store, StoreTx } from '../store/index.js';
import type { MigrationRecord, NodeCapacity, VmRecord } from '../store/types.js';
import { LinkSampler } from './link-samples.js';
import { appendVmStateEvent } from '../vm/audit.js';
import type { VmHandle, VmSpec } from '../vm/driver.js';
import { overlayPath } from '../vm/drivers/qemu/args.js';
import { QemuDriver } from '../vm/drivers/qemu/driver.js';
import { parseStoredSpec, type StoredVmSpec } from '../vm/model.js';
import type { VmService } from '../vm/service.js';
import {
  MigrationDestination,
  MigrationSource,
  migrationWindowBytes,
  type MigrationProgress,
} from './live.js';
import type {
  AbortOutcome,
  ColdDisk,
  DestinationHost,
  PeerMigrationView,
  PrepareRequest,
  PrepareResult,
} from './protocol.js';

type Log = (fields: Record<string, unknown>, message: string) => void;

export interface MigrationManagerOptions {
  readonly store: Store;
  readonly vms: VmService;
  readonly events: EventBus;
  readonly logger: { readonly info: Log; readonly warn: Log; readonly error: Log };
  readonly nodeId: string;
  readonly peers: readonly PeerAddress[];
  /**
   * Peers beyond the static list: in a region, the live members that announce a gRPC URL (consulted
   * when `peers` has no entry of that name).
   */
  readonly resolvePeer?: (name: string) => PeerAddress | undefined;
  /**
   * Predicts the next rate of a link from its recent samples (bytes/s, oldest first): the ML
   * bridge's PredictBandwidth, which falls back to a moving average without the service.
   */
  readonly predictLinkRate?: (
    samples: readonly number[],
  ) => Promise<{ readonly bytesPerSecond: number; readonly source: string }>;
  readonly joinToken: string;
  /** `<data_dir>/vms`. */
  readonly vmsRoot: string;
  readonly capacity: NodeCapacity;
  /** The DWCP receiver of incoming migrations. */
  readonly dwcp: {
    readonly host: string;
    readonly port: number;
    readonly encrypt: boolean;
    readonly streams: number;
    readonly codec: CodecChoice;
    /**
     * How DWCP streams authenticate (dwcp.auth, see dwcpSecurity); default: the join token. With
     * certificates, the target's must name the peer (its name or its url's host).
     */
    readonly security?: ConnectionSecurity;
    /** Unacknowledged bytes in flight; small keeps QEMU's bandwidth estimate honest (default 2 MiB). */
    readonly windowBytes?: number;
  };
  /** Pre-copy must complete within this (default 600 s). */
  readonly convergeTimeoutMs?: number;
  /** Default switchover pause limit (default 300 ms). */
  readonly defaultMaxDowntimeMs?: number;
  /** A prepared cold migration is given up when not committed within this (default 1 h). */
  readonly coldTimeoutMs?: number;
  /** A prepared destination aborts when the source does not resume it this long after loading (default 60 s). */
  readonly resumeTimeoutMs?: number;
}

/** The DWCP security of this node; towards a target, its certificate must name that peer. */
function dwcpSecurityOf(o: MigrationManagerOptions, target?: MigrationPeerClient): ConnectionSecurity {
  const sec = o.dwcp.security ?? { token: o.joinToken, encrypt: o.dwcp.encrypt };
  return target && sec.certificate ? { ...sec, peerNames: [target.peer.name, target.host] } : sec;
}

export interface MigrateRequest {
  /** Peer name from cluster.peers. */
  readonly target: string;
  /** Live (the VM keeps running) — the only kind built so far. Default true. */
  readonly live?: boolean;
  readonly maxDowntimeMs?: number;
}

/** A migration as the API shows it. */
export interface MigrationView {
  readonly id: string;
  readonly vmId: string;
  readonly kind: 'live' | 'cold';
  readonly source: string;
  readonly target: string;
  /** pending | running | completed | failed | cancelled */
  readonly state: string;
  readonly phase: string;
  /** Bytes DWCP put on the wire. */
  readonly bytesSent: number;
  readonly bytesTotal: number | null;
  readonly bytesRemaining: number | null;
  readonly downtimeMs: number | null;
  readonly totalMs: number | null;
  readonly maxDowntimeMs: number | null;
  readonly progress: Readonly<Record<string, unknown>>;
  readonly error: string | null;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly finishedAt: string | null;
}

export function migrationViewOf(r: MigrationRecord): MigrationView {
  return {
    id: r.id,
    vmId: r.vmId,
    kind: r.kind,
    source: r.sourceNode,
    target: r.targetNode,
    state: r.state,
    phase: r.phase,
    bytesSent: r.bytesSent,
    bytesTotal: r.bytesTotal,
    bytesRemaining: r.bytesRemaining,
    downtimeMs: r.downtimeMs,
    totalMs: r.totalMs,
    maxDowntimeMs: r.maxDowntimeMs,
    progress: r.progress,
    error: r.error,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    finishedAt: r.finishedAt,
  };
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

/** The destination confirmed it does not run the VM (so the source may). */
function destinationAborted(message: string): MigrationError {
  return new MigrationError(message, { details: { destinationAborted: true } });
}
function isDestinationAborted(err: unknown): boolean {
  return (
    err instanceof MigrationError &&
    (err.details as { destinationAborted?: boolean } | undefined)?.destinationAborted === true
  );
}
const MIB = 1024 * 1024;
/** What the destination's Resume costs besides the round trip: its commit transaction and `cont`. */
const RESUME_COMMIT_MS = 25;

/** Validates a migrate request body (pure); a ValidationError naming the field otherwise. */
export function validateMigrateRequest(body: unknown): MigrateRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new ValidationError('invalid body: expected an object {target, live, maxDowntimeMs}', {
      key: 'body',
    });
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b))
    if (!['target', 'live', 'maxDowntimeMs'].includes(k))
      throw new ValidationError(`invalid body: unknown field ${k}`, { key: k });
  if (typeof b.target !== 'string' || b.target === '')
    throw new ValidationError('invalid body: target must be the name of a peer node', { key: 'target' });
  if (b.live !== undefined && typeof b.live !== 'boolean')
    throw new ValidationError('invalid body: live must be a boolean', { key: 'live' });
  if (
    b.maxDowntimeMs !== undefined &&
    (typeof b.maxDowntimeMs !== 'number' ||
      !Number.isInteger(b.maxDowntimeMs) ||
      b.maxDowntimeMs < 1 ||
      b.maxDowntimeMs > 600_000)
  )
    throw new ValidationError('invalid body: maxDowntimeMs must be an integer from 1 to 600000', {
      key: 'maxDowntimeMs',
    });
  return {
    target: b.target,
    ...(b.live === undefined ? {} : { live: b.live }),
    ...(b.maxDowntimeMs === undefined ? {} : { maxDowntimeMs: b.maxDowntimeMs as number }),
  };
}

/** The VmSpec to start the destination QEMU with (same id: the VM directory is `<vmsRoot>/<id>`). */
function driverSpecOf(
  id: string,
  name: string,
  labels: Readonly<Record<string, string>>,
  s: StoredVmSpec,
): VmSpec {
  return {
    id,
    name,
    cpus: s.cpus,
    memoryMib: s.memoryMib,
    ...(s.kernel === undefined ? {} : { kernel: s.kernel }),
    ...(s.initrd === undefined ? {} : { initrd: s.initrd }),
    ...(s.cmdline === undefined ? {} : { cmdline: s.cmdline }),
    disks: s.disks,
    network: s.network,
    labels,
  };
}

interface Outgoing {
  readonly abort: AbortController;
  /** Past this point (Resume sent) a cancel is refused. */
  committing: boolean;
  done: Promise<void>;
}

interface ColdIncoming {
  readonly vmId: string;
  readonly sourceNode: string;
  readonly shared: boolean;
  readonly receiver: FileReceiver;
  committed: boolean;
  aborted: boolean;
  lock: Promise<void>;
}

/** A disk file of a stopped VM to send, and what it becomes on the destination. */
interface DiskFile {
  readonly path: string;
  readonly bytes: number;
  readonly disk: ColdDisk;
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

interface Incoming {
  readonly vmId: string;
  readonly sourceNode: string;
  /** Source and destination share one database: the VM keeps its one row, which commit moves. */
  readonly shared: boolean;
  readonly handle: VmHandle;
  readonly destination: MigrationDestination;
  resumedAtUs: number | undefined;
  aborted: boolean;
  watchdog: NodeJS.Timeout | undefined;
  /** Serialises resume and abort: exactly one of them wins. */
  lock: Promise<void>;
}

export class MigrationManager implements DestinationHost {
  readonly #o: MigrationManagerOptions;
  readonly #driver: QemuDriver;
  readonly #server: AmstServer;
  readonly #outgoing = new Map<string, Outgoing>();
  /** Link samples of outgoing transfers, appended to bandwidth_samples when each ends. */
  readonly #links = new Map<string, LinkSampler>();
  readonly #incoming: Map<string, Incoming>;
  readonly #incomingCold = new Map<string, ColdIncoming>();
  readonly #clients = new Map<string, MigrationPeerClient>();
  #closed = false;
  readonly #closing = new AbortController();

  private constructor(
    o: MigrationManagerOptions,
    driver: QemuDriver,
    server: AmstServer,
    incoming: Map<string, Incoming>,
  ) {
    this.#incoming = incoming;
    this.#o = o;
    this.#driver = driver;
    this.#server = server;
  }

  /** Opens the DWCP receiver for incoming migrations. Needs the QEMU driver. */
  static async open(o: MigrationManagerOptions): Promise<MigrationManager> {
    const driver = o.vms.driver;
    if (!(driver instanceof QemuDriver))
      throw new InvalidStateError(`live migration needs the qemu VM driver, this node runs ${driver.name}`, {
        key: 'vm.driver',
      });
    const incoming = new Map<string, Incoming>();
    const server = await AmstServer.listen({
      host: o.dwcp.host,
      port: o.dwcp.port,
      security: dwcpSecurityOf(o),
      // Ack each bundle at once (a stream has nothing to fsync): the sender's window then only has
      // to cover the round trip, and less sits in flight when the guest pauses (docs/migration.md).
      syncDelayMs: 1,
      onSession: streamReceiver((stream, label) => {
        const entry = incoming.get(label);
        if (!entry || entry.aborted) {
          stream.destroy(new MigrationError(`no prepared incoming migration ${label} on this node`));
          return;
        }
        entry.destination.attach(stream);
      }),
    });
    return new MigrationManager(o, driver, server, incoming);
  }

  /** Port of the DWCP receiver. */
  get dwcpPort(): number {
    return this.#server.address.port;
  }

  get nodeId(): string {
    return this.#o.nodeId;
  }

  // ============================================================ source role

  /**
   * Starts migrating a running VM to the peer `req.target`; returns at once with the migration
   * record (state pending). Bad target, unknown peer, a VM that is not running here: clear errors.
   */
  async migrate(vmIdOrName: string, body: MigrateRequest): Promise<MigrationView> {
    const req = validateMigrateRequest(body);
    const peer = this.#peer(req.target);
    if (req.target === this.#o.nodeId)
      throw new ValidationError(`invalid target: ${req.target} is this node; the VM already runs here`, {
        key: 'target',
      });
    if (!peer)
      throw new ValidationError(
        `invalid target: no peer named ${req.target} in cluster.peers or among the region's live members (known: ${this.#o.peers.map((p) => p.name).join(', ') || 'none'})`,
        {
          key: 'target',
          hint: 'add the node to cluster.peers as {name, url} with its gRPC url, or check that it is a live member (novacron node list)',
        },
      );
    if (this.#o.joinToken === '')
      throw new InvalidStateError('cluster.join_token is empty: peers cannot authenticate this node', {
        key: 'cluster.join_token',
      });
    const vm = (await this.#o.store.vms.get(vmIdOrName)) ?? (await this.#o.store.vms.getByName(vmIdOrName));
    if (!vm) throw new NotFoundError('vm', vmIdOrName);
    if (vm.node !== this.#o.nodeId)
      throw new InvalidStateError(
        `vm ${vm.name} is on node ${vm.node ?? '(none)'}, not on this node ${this.#o.nodeId}: ask that node to migrate it`,
        { key: vm.name },
      );
    // Cold for a stopped VM unless live was asked for; live needs a running one.
    const kind: 'live' | 'cold' = (req.live ?? vm.state !== 'stopped') ? 'live' : 'cold';
    const wantState = kind === 'live' ? 'running' : 'stopped';
    if (vm.state !== wantState)
      throw new InvalidStateError(
        `vm ${vm.name} is ${vm.state}: ${kind} migration needs a ${wantState} VM` +
          (kind === 'live' && vm.state === 'stopped'
            ? ' (omit live or set live: false for a cold migration)'
            : ''),
        { key: vm.name, details: { state: vm.state } },
      );
    const spec = parseStoredSpec(vm.spec);
    const diskFiles = kind === 'cold' ? await this.#diskFilesOf(vm, spec) : [];
    if (kind === 'live' && spec.disks.some((d) => !('readOnly' in d && d.readOnly === true)))
      throw new InvalidStateError(
        `vm ${vm.name} has a writable disk: live migration moves memory only, its disks would diverge`,
        { key: vm.name, hint: 'stop the VM first (cold migration) or use read-only/shared disks' },
      );
    if (kind === 'live' && !this.#o.vms.driverHandle(vm.id))
      throw new InvalidStateError(`vm ${vm.name}: no QEMU process of it is attached on this node`, {
        key: vm.name,
      });
    const maxDowntimeMs = req.maxDowntimeMs ?? this.#o.defaultMaxDowntimeMs ?? 300;
    const id = randomUUID();
    const rec = await this.#o.vms.withVmLock(vm.id, async () => {
      const cur = await this.#o.store.vms.get(vm.id);
      if (!cur || cur.state !== wantState)
        throw new InvalidStateError(
          `vm ${vm.name} is ${cur?.state ?? 'gone'}: ${kind} migration needs a ${wantState} VM`,
          {
            key: vm.name,
          },
        );
      const out = await this.#o.store.transaction(async (tx) => {
        const active = await tx.migrations.activeForVm(vm.id);
        if (active)
          throw new ConflictError(`vm ${vm.name} is already migrating (migration ${active.id})`, {
            key: vm.name,
          });
        const m = await tx.migrations.insert({
          id,
          vmId: vm.id,
          kind,
          sourceNode: this.#o.nodeId,
          targetNode: req.target,
          state: 'pending',
          phase: 'prepare',
          maxDowntimeMs: kind === 'live' ? maxDowntimeMs : null,
          bytesTotal: kind === 'live' ? spec.memoryMib * MIB : diskFiles.reduce((n, d) => n + d.bytes, 0),
        });
        const u = await tx.vms.update(vm.id, cur.generation, { state: 'migrating' });
        await this.#auditVm(tx, u, cur.state, { migration: id });
        return { m, u, from: cur.state };
      });
      this.#publishVm(out.u, out.from);
      return out.m;
    });
    this.#publishMigration(rec);
    const abort = new AbortController();
    const entry: Outgoing = {
      abort,
      committing: false,
      done: Promise.resolve(),
    };
    const run =
      kind === 'live'
        ? this.#runOutgoing(rec, vm, peer, maxDowntimeMs, entry)
        : this.#runCold(rec, vm, peer, diskFiles, entry);
    entry.done = run
      .catch((err: unknown) =>
        // Recording the end failed (database down …): the record stays active; recovery settles it.
        this.#o.logger.error({ id, err: errorMessage(err) }, 'migration bookkeeping failed'),
      )
      .finally(() => this.#outgoing.delete(id));
    this.#outgoing.set(id, entry);
    return migrationViewOf(rec);
  }

  /** A migration this node recorded (as source or destination). */
  async view(id: string): Promise<MigrationView> {
    const r = await this.#o.store.migrations.get(id);
    if (!r) throw new NotFoundError('migration', id);
    return this.#viewOf(r);
  }

  async list(filters: { vmId?: string } = {}): Promise<MigrationView[]> {
    return (await this.#o.store.migrations.list(filters.vmId ? { vmId: filters.vmId } : {})).map((r) =>
      this.#viewOf(r),
    );
  }

  /**
   * In a shared database the target's commit marks the migration completed while this source is
   * still quitting its QEMU and recording the figures: until then this node shows it in `commit`.
   */
  #viewOf(r: MigrationRecord): MigrationView {
    const v = migrationViewOf(r);
    if (v.state === 'completed' && this.#outgoing.has(r.id))
      return { ...v, state: 'running', phase: 'commit' };
    return v;
  }

  /** Cancels a running outgoing migration (rollback: the source keeps running). */
  async cancel(id: string): Promise<MigrationView> {
    const r = await this.#o.store.migrations.get(id);
    if (!r) throw new NotFoundError('migration', id);
    if (TERMINAL.has(r.state))
      throw new ConflictError(`migration ${id} already ended: ${r.state}`, {
        key: id,
        details: { state: r.state },
      });
    const entry = this.#outgoing.get(id);
    if (!entry)
      throw new ConflictError(`migration ${id} is not driven by this node (it runs from ${r.sourceNode})`, {
        key: id,
      });
    if (entry.committing)
      throw new ConflictError(
        `migration ${id} is committing (the destination is being resumed): too late to cancel`,
        {
          key: id,
        },
      );
    entry.abort.abort();
    await entry.done;
    return migrationViewOf((await this.#o.store.migrations.get(id))!);
  }

  /** Resolves with the migration once it ended. */
  async wait(id: string): Promise<MigrationView> {
    await this.#outgoing.get(id)?.done;
    const r = await this.#o.store.migrations.get(id);
    if (!r) throw new NotFoundError('migration', id);
    return migrationViewOf(r);
  }

  /** A peer by name: the static `cluster.peers` first, then the region's members. */
  #peer(name: string): PeerAddress | undefined {
    return this.#o.peers.find((p) => p.name === name) ?? this.#o.resolvePeer?.(name);
  }

  #client(peer: PeerAddress): MigrationPeerClient {
    // by name and URL: a member that restarted on another port gets a new client
    const key = `${peer.name} ${peer.url}`;
    let c = this.#clients.get(key);
    if (!c) {
      c = new MigrationPeerClient(peer, this.#o.joinToken);
      this.#clients.set(key, c);
    }
    return c;
  }

  async #runOutgoing(
    rec: MigrationRecord,
    vm: VmRecord,
    peerAddr: PeerAddress,
    maxDowntimeMs: number,
    entry: Outgoing,
  ): Promise<void> {
    const id = rec.id;
    const started = Date.now();
    const peer = this.#client(peerAddr);
    const spec = parseStoredSpec(vm.spec);
    const signal = entry.abort.signal;
    let source: MigrationSource | undefined;
    let prepared = false;
    const loadedAc = new AbortController();
    let lastDb = 0;
    let pendingWrite: Promise<unknown> = Promise.resolve();
    const onProgress = (p: MigrationProgress): void => {
      const progress = {
        status: p.status,
        streamBytes: p.transferredBytes,
        ramBytes: p.totalBytes,
        dirtyPagesRate: p.dirtyPagesRate,
        mbps: Math.round(p.mbps * 10) / 10,
        expectedDowntimeMs: p.expectedDowntimeMs,
        dirtySyncCount: p.dirtySyncCount,
        elapsedMs: Date.now() - started,
      };
      this.#links.get(id)?.observe(Date.now(), p.wireBytes);
      this.#o.events.publish('migration.progress', {
        id,
        vmId: rec.vmId,
        phase: p.phase,
        bytesSent: p.wireBytes,
        bytesRemaining: p.remainingBytes,
        ...progress,
      });
      if (Date.now() - lastDb < 1000) return;
      lastDb = Date.now();
      pendingWrite = pendingWrite.then(() =>
        this.#o.store.migrations
          .update(id, {
            phase: p.phase,
            bytesSent: p.wireBytes,
            bytesRemaining: p.remainingBytes,
            ...(p.totalBytes > 0 ? { bytesTotal: p.totalBytes } : {}),
            progress,
          })
          .catch(() => undefined),
      );
    };
    const onCancel = (): void => void source?.cancel().catch(() => undefined);
    signal.addEventListener('abort', onCancel, { once: true });
    let summary: Awaited<MigrationSource['sent']>;
    try {
      await this.#setMigration(id, { state: 'running', phase: 'prepare' });
      const prep = await peer.prepare({
        migrationId: id,
        vmId: vm.id,
        vmName: vm.name,
        specJson: JSON.stringify({ ...spec, handle: null }),
        labels: vm.labels,
        restartPolicy: vm.restartPolicy,
        sourceNode: this.#o.nodeId,
        kind: 'live',
        maxDowntimeMs,
      });
      prepared = true;
      if (signal.aborted) throw new MigrationError('migration cancelled', { code: ErrorCode.Cancelled });
      const handle = this.#o.vms.driverHandle(vm.id);
      if (!handle) throw new MigrationError(`vm ${vm.name}: its QEMU process went away`);
      // The round trip to the destination sizes the DWCP window and what the switchover costs
      // besides QEMU's final pass (the AwaitLoaded answer and the Resume call: one round trip, plus
      // the destination's commit transaction).
      const rttMs = await this.#measureRtt(peer, id);
      const predicted = await this.#predictLink(rec.targetNode);
      if (predicted)
        this.#o.logger.info(
          { id, mbps: Math.round((predicted.bytesPerSecond * 8) / 1e5) / 10, source: predicted.source },
          `link to ${rec.targetNode} predicted from ${predicted.samples} earlier samples`,
        );
      this.#links.set(
        id,
        new LinkSampler({
          sourceNode: this.#o.nodeId,
          targetNode: rec.targetNode,
          rttMs,
          streams: this.#o.dwcp.streams,
        }),
      );
      // The destination aborts by itself if this call breaks before Resume (e.g. this node dies).
      const loaded = peer.awaitLoaded(id, (this.#o.convergeTimeoutMs ?? 600_000) + 120_000, loadedAc.signal);
      loaded.catch(() => undefined);
      source = await MigrationSource.start({
        qmp: this.#driver.handleOf(handle).qmpClient(),
        socketPath: join(this.#o.vmsRoot, vm.id, 'migrate-out.sock'),
        openStream: () =>
          openStreamSender({
            host: peer.host,
            port: prep.dwcpPort,
            security: dwcpSecurityOf(this.#o, peer),
            streams: this.#o.dwcp.streams,
            reconnectAttempts: 2,
            windowBytes: this.#o.dwcp.windowBytes ?? migrationWindowBytes(rttMs, predicted?.bytesPerSecond),
            congestionControl: 'auto',
            codec: this.#o.dwcp.codec,
            label: id,
          }),
        maxDowntimeMs,
        controlOverheadMs: Math.ceil(rttMs) + RESUME_COMMIT_MS,
        convergeTimeoutMs: this.#o.convergeTimeoutMs ?? 600_000,
      });
      source.on('progress', onProgress);
      if (signal.aborted) await source.cancel();
      [summary] = await Promise.all([source.sent, loaded]);
    } catch (err) {
      // Nothing was resumed: the source may run on. The destination is told to abort (it also does by itself).
      loadedAc.abort();
      signal.removeEventListener('abort', onCancel);
      if (prepared) await peer.abort(id).catch(() => undefined);
      if (source)
        await source
          .rollback()
          .catch((e: unknown) =>
            this.#o.logger.error({ id, err: errorMessage(e) }, 'rollback of the source failed'),
          );
      await pendingWrite;
      const cancelled = signal.aborted || source?.cancelled === true;
      await this.#endOutgoing(rec, vm, cancelled ? 'cancelled' : 'failed', {
        error: cancelled ? 'cancelled' : errorMessage(err),
        totalMs: Date.now() - started,
      });
      return;
    }
    signal.removeEventListener('abort', onCancel);
    // Point of no return: the source QEMU completed (vCPUs stopped for good); the destination holds the state.
    entry.committing = true;
    await pendingWrite;
    await this.#setMigration(id, { phase: 'commit' });
    // From here the VM may run on the destination: a restart of this node must not boot it here.
    await this.#setDesired(vm.id, 'moving');
    let resumedAtUs: number | undefined;
    try {
      resumedAtUs = await this.#resumeOrArbitrate(peer, id);
    } catch (err) {
      if (isDestinationAborted(err)) {
        // The destination confirmed it is not running the VM: resume the source.
        await source.rollback().catch(() => undefined);
        await this.#endOutgoing(rec, vm, 'failed', {
          error: `destination did not resume: ${errorMessage(err)}`,
          totalMs: Date.now() - started,
        });
        return;
      }
      // Still unsure (this node is closing): the source stays paused; recovery at the next start settles it.
      this.#o.logger.error({ id, err: errorMessage(err) }, 'migration outcome unknown; left for recovery');
      return;
    }
    this.#o.vms.releaseHandle(vm.id);
    const final = await source.commit().catch((e: unknown) => {
      this.#o.logger.warn({ id, err: errorMessage(e) }, 'source quit failed');
      return undefined;
    });
    const info = final ?? summary.info;
    await this.#endOutgoing(rec, vm, 'completed', {
      totalMs: Date.now() - started,
      downtimeMs:
        summary.stoppedAtUs === undefined
          ? null
          : Math.max(0, Math.round((resumedAtUs - summary.stoppedAtUs) / 1000)),
      bytesSent: summary.wireBytes,
      bytesRemaining: 0,
      progress: {
        status: 'completed',
        streamBytes: summary.streamBytes,
        ramBytes: info.ram?.total ?? spec.memoryMib * MIB,
        qemuDowntimeMs: info.downtime ?? null,
        dirtySyncCount: info.ram?.['dirty-sync-count'] ?? 0,
      },
    });
  }

  /**
   * The rate predicted for the link to `target` from its last 20 recorded samples (at least 5),
   * or undefined (no history, no predictor, or the prediction failed: never fails the migration).
   */
  async #predictLink(
    target: string,
  ): Promise<{ bytesPerSecond: number; source: string; samples: number } | undefined> {
    if (!this.#o.predictLinkRate) return undefined;
    try {
      const rows = await this.#o.store.bandwidth.list(
        { sourceNode: this.#o.nodeId, targetNode: target },
        { newest: true, limit: 20 },
      );
      if (rows.length < 5) return undefined;
      const p = await this.#o.predictLinkRate(rows.map((r) => r.bytesPerSecond));
      return Number.isFinite(p.bytesPerSecond) && p.bytesPerSecond > 0
        ? { ...p, samples: rows.length }
        : undefined;
    } catch (err) {
      this.#o.logger.warn({ target, err: errorMessage(err) }, 'link prediction failed; default window');
      return undefined;
    }
  }

  /** Appends what the transfer measured of the link to bandwidth_samples (never fails the migration). */
  async #recordLink(id: string, wireBytes: number | undefined): Promise<void> {
    const link = this.#links.get(id);
    this.#links.delete(id);
    if (link && wireBytes !== undefined) link.finish(Date.now(), wireBytes);
    if (!link || link.samples().length === 0) return;
    await this.#o.store.bandwidth
      .append(link.samples())
      .catch((err: unknown) =>
        this.#o.logger.warn({ id, err: errorMessage(err) }, 'could not record the link samples'),
      );
  }

  /** Smallest of three round trips of a cheap call to the destination (ms). */
  async #measureRtt(peer: MigrationPeerClient, id: string): Promise<number> {
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      await peer.get(id);
      best = Math.min(best, performance.now() - t);
    }
    return best;
  }

  /**
   * Resume on the destination. When the call fails in transport the destination may or may not have
   * resumed: ask it to Abort until it answers (committed → resumed; aborted → it does not run).
   */
  async #resumeOrArbitrate(peer: MigrationPeerClient, id: string): Promise<number> {
    try {
      return await peer.resume(id);
    } catch (err) {
      // Refused or lost: either way only the destination knows whether its vCPUs started.
      this.#o.logger.warn(
        { id, err: errorMessage(err) },
        'resume on the destination failed; asking it to settle',
      );
    }
    return this.#arbitrate(peer, id);
  }

  async #arbitrate(peer: MigrationPeerClient, id: string): Promise<number> {
    for (let wait = 500; ; wait = Math.min(wait * 2, 5000)) {
      try {
        const r = await peer.abort(id);
        if (r.outcome === 'committed') return r.resumedAtUs ?? Date.now() * 1000;
        throw destinationAborted(
          `the destination ${r.outcome === 'unknown' ? 'never prepared it' : 'aborted it'}`,
        );
      } catch (err) {
        if (!isTransportFailure(err)) throw err;
        if (this.#closed) throw new MigrationError(`destination unreachable: ${errorMessage(err)}`);
        this.#o.logger.warn(
          { id, err: errorMessage(err) },
          'destination unreachable while settling a migration',
        );
        await delay(wait, undefined, { signal: this.#closing.signal }).catch(() => undefined);
      }
    }
  }

  /** Final records on the source: the migration row, and the VM row (moved, or back to running). */
  async #endOutgoing(
    rec: MigrationRecord,
    vm: VmRecord,
    state: 'completed' | 'failed' | 'cancelled',
    patch: {
      error?: string;
      totalMs: number;
      downtimeMs?: number | null;
      bytesSent?: number;
      bytesRemaining?: number;
      progress?: object;
    },
  ): Promise<void> {
    const finishedAt = new Date().toISOString();
    await this.#recordLink(rec.id, patch.bytesSent);
    await this.#o.vms.withVmLock(vm.id, async () => {
      const cur = await this.#o.store.vms.get(vm.id);
      const out = await this.#o.store.transaction(async (tx) => {
        let u: VmRecord | undefined;
        // After a restart the reconcile may have marked the row failed (its QEMU quit on commit).
        const moved = state === 'completed' && (cur?.state === 'migrating' || cur?.state === 'failed');
        const settled = rec.kind === 'cold' ? 'stopped' : 'running';
        if (cur && (cur.state === 'migrating' || moved)) {
          if (moved) {
            const s = parseStoredSpec(cur.spec);
            u = await tx.vms.update(vm.id, cur.generation, {
              state: settled,
              desiredState: settled,
              node: rec.targetNode,
              spec: { ...s, handle: null },
              error: null,
            });
            await tx.allocations.release(vm.id);
          } else {
            u = await tx.vms.update(vm.id, cur.generation, { state: settled, desiredState: settled });
          }
          await this.#auditVm(tx, u, cur.state, { migration: rec.id, outcome: state });
        }
        const m = await tx.migrations.update(rec.id, {
          state,
          phase: state === 'completed' ? 'done' : 'rollback',
          error: patch.error ?? null,
          totalMs: patch.totalMs,
          finishedAt,
          ...(patch.downtimeMs === undefined ? {} : { downtimeMs: patch.downtimeMs }),
          ...(patch.bytesSent === undefined ? {} : { bytesSent: patch.bytesSent }),
          ...(patch.bytesRemaining === undefined ? {} : { bytesRemaining: patch.bytesRemaining }),
          ...(patch.progress === undefined ? {} : { progress: patch.progress }),
        });
        await tx.events.append({
          type: 'migration.state',
          resourceType: 'migration',
          resourceId: rec.id,
          nodeId: this.#o.nodeId,
          data: { vmId: vm.id, state, error: patch.error ?? null },
        });
        return { u, m };
      });
      if (out.u && cur) this.#publishVm(out.u, cur.state);
      this.#publishMigration(out.m);
    });
    this.#o.logger.info(
      {
        id: rec.id,
        vm: vm.name,
        target: rec.targetNode,
        state,
        error: patch.error,
        totalMs: patch.totalMs,
        downtimeMs: patch.downtimeMs,
      },
      `migration ${state}`,
    );
  }

  /** The files of a stopped VM's disks: a path disk itself, a base-image disk its qcow2 overlay. */
  async #diskFilesOf(vm: VmRecord, spec: StoredVmSpec): Promise<DiskFile[]> {
    const out: DiskFile[] = [];
    for (const [i, d] of spec.disks.entries()) {
      const path = 'path' in d ? resolve(d.path) : overlayPath(join(this.#o.vmsRoot, vm.id), i);
      let bytes: number;
      try {
        bytes = (await stat(path)).size;
      } catch {
        throw new InvalidStateError(`vm ${vm.name}: disk ${i} file ${path} is missing`, {
          key: `disks[${i}]`,
        });
      }
      const head = Buffer.alloc(4);
      const fh = await open(path, 'r');
      try {
        await fh.read(head, 0, 4, 0);
      } finally {
        await fh.close();
      }
      const format =
        'path' in d ? (d.format ?? (head.toString('latin1') === 'QFI\xfb' ? 'qcow2' : 'raw')) : 'qcow2';
      out.push({
        path,
        bytes,
        disk: { name: `${vm.id}.disk${i}.${format}`, format, readOnly: 'path' in d && d.readOnly === true },
      });
    }
    return out;
  }

  /** Cold migration of a stopped VM: each disk file over DWCP (chunks the target holds are reused). */
  async #runCold(
    rec: MigrationRecord,
    vm: VmRecord,
    peerAddr: PeerAddress,
    disks: readonly DiskFile[],
    entry: Outgoing,
  ): Promise<void> {
    const id = rec.id;
    const started = Date.now();
    const peer = this.#client(peerAddr);
    const spec = parseStoredSpec(vm.spec);
    const total = disks.reduce((n, d) => n + d.bytes, 0);
    let prepared = false;
    let wire = 0;
    let sent = 0;
    const chunks = { zero: 0, known: 0, delta: 0, literal: 0 };
    try {
      await this.#setMigration(id, { state: 'running', phase: 'prepare' });
      const prep = await peer.prepare({
        migrationId: id,
        vmId: vm.id,
        vmName: vm.name,
        specJson: JSON.stringify({ ...spec, handle: null }),
        labels: vm.labels,
        restartPolicy: vm.restartPolicy,
        sourceNode: this.#o.nodeId,
        kind: 'cold',
        maxDowntimeMs: 0,
      });
      prepared = true;
      await this.#setMigration(id, { phase: 'transfer' });
      const link = new LinkSampler({
        sourceNode: this.#o.nodeId,
        targetNode: rec.targetNode,
        streams: this.#o.dwcp.streams,
      });
      this.#links.set(id, link);
      link.observe(Date.now(), 0);
      let lastDb = 0;
      for (const d of disks) {
        if (entry.abort.signal.aborted)
          throw new MigrationError('migration cancelled', { code: ErrorCode.Cancelled });
        const before = { wire, sent };
        const r = await sendFile(d.path, {
          host: peer.host,
          port: prep.dwcpPort,
          security: dwcpSecurityOf(this.#o, peer),
          name: d.disk.name,
          streams: this.#o.dwcp.streams,
          codec: this.#o.dwcp.codec,
          onProgress: (p) => {
            wire = before.wire + p.wireBytes;
            sent = before.sent + p.bytes;
            link.observe(Date.now(), wire);
            this.#o.events.publish('migration.progress', {
              id,
              vmId: vm.id,
              phase: 'transfer',
              bytesSent: wire,
              bytesRemaining: total - sent,
              diskBytes: sent,
              elapsedMs: Date.now() - started,
            });
            if (Date.now() - lastDb >= 1000) {
              lastDb = Date.now();
              void this.#o.store.migrations
                .update(id, { bytesSent: wire, bytesRemaining: total - sent, progress: { diskBytes: sent } })
                .catch(() => undefined);
            }
          },
        });
        wire = before.wire + r.wireBytes;
        sent = before.sent + r.bytes;
        for (const k of Object.keys(chunks) as (keyof typeof chunks)[]) chunks[k] += r.chunks[k];
      }
    } catch (err) {
      if (prepared) await peer.abort(id).catch(() => undefined);
      const cancelled = entry.abort.signal.aborted;
      await this.#endOutgoing(rec, vm, cancelled ? 'cancelled' : 'failed', {
        error: cancelled ? 'cancelled' : errorMessage(err),
        totalMs: Date.now() - started,
      });
      return;
    }
    entry.committing = true;
    await this.#setMigration(id, { phase: 'commit' });
    try {
      await peer.commitCold(
        id,
        disks.map((d) => d.disk),
      );
    } catch (err) {
      try {
        await this.#arbitrate(peer, id);
      } catch (e) {
        if (isDestinationAborted(e)) {
          await this.#endOutgoing(rec, vm, 'failed', {
            error: `the target did not take the disks: ${errorMessage(err)}`,
            totalMs: Date.now() - started,
          });
          return;
        }
        this.#o.logger.error(
          { id, err: errorMessage(e) },
          'cold migration outcome unknown; left for recovery',
        );
        return;
      }
    }
    // The VM lives on the target now: its overlays here are stale copies.
    for (const [i, d] of spec.disks.entries())
      if ('baseImage' in d) await rm(overlayPath(join(this.#o.vmsRoot, vm.id), i), { force: true });
    await this.#endOutgoing(rec, vm, 'completed', {
      totalMs: Date.now() - started,
      bytesSent: wire,
      bytesRemaining: 0,
      progress: { diskBytes: sent, chunks },
    });
  }

  // ============================================================ destination role

  async prepare(req: PrepareRequest): Promise<PrepareResult> {
    if (this.#closed) throw new InvalidStateError('this node is stopping');
    let stored: StoredVmSpec;
    try {
      stored = parseStoredSpec(JSON.parse(req.specJson) as Record<string, unknown>);
    } catch (err) {
      throw new ValidationError(`invalid spec_json for vm ${req.vmName}: ${errorMessage(err)}`, {
        key: 'spec_json',
      });
    }
    if (req.kind === 'cold')
      for (const [i, d] of stored.disks.entries())
        if ('baseImage' in d && !(await exists(d.baseImage)))
          throw new ValidationError(
            `node ${this.#o.nodeId} lacks the base image ${d.baseImage} of disk ${i} of vm ${req.vmName}`,
            { key: `disks[${i}].baseImage`, hint: 'copy the base image to the same path on the target node' },
          );
    const existing = await this.#o.store.vms.get(req.vmId);
    if (existing && existing.node === this.#o.nodeId)
      throw new ConflictError(
        `vm ${req.vmName} already exists on node ${this.#o.nodeId} (${existing.state})`,
        {
          key: req.vmName,
        },
      );
    const byName = await this.#o.store.vms.getByName(req.vmName);
    if (byName && byName.id !== req.vmId)
      throw new ConflictError(`node ${this.#o.nodeId} already has another vm named ${req.vmName}`, {
        key: req.vmName,
      });
    // Source and destination may share one database (a region's PostgreSQL): then the source's
    // migration row and VM row are already here. The VM keeps that one row (commit moves its
    // `node` and allocation in one transaction); only an allocation on this node is reserved now.
    const mig = await this.#o.store.migrations.get(req.migrationId);
    const shared =
      mig !== undefined && mig.sourceNode === req.sourceNode && existing?.node === req.sourceNode;
    // This node's allocation for the incoming VM, or a 409 naming what does not fit.
    const reserveHere = async (tx: StoreTx): Promise<void> => {
      const r = await tx.allocations.reserve(
        {
          vmId: req.vmId,
          nodeId: this.#o.nodeId,
          cpus: stored.cpus,
          memoryMib: stored.memoryMib,
          diskMib: 0,
        },
        this.#o.capacity,
      );
      if (!r.ok)
        throw new ConflictError(
          `node ${this.#o.nodeId} cannot take vm ${req.vmName}: resource exhausted: ${r.what} (requested ${r.requested}, free ${r.free})`,
          { key: r.what, details: { what: r.what, requested: r.requested, free: r.free } },
        );
    };
    if (shared) {
      await this.#o.store.transaction(async (tx) => {
        await reserveHere(tx);
      });
    } else
      // Reserve: the VM row (migrating) and its allocation in one transaction.
      await this.#o.store.transaction(async (tx) => {
        // A row left from an earlier move away from this node is replaced.
        if (existing) await tx.vms.delete(existing.id);
        const u = await tx.vms.insert({
          id: req.vmId,
          name: req.vmName,
          spec: { ...stored, handle: null },
          labels: req.labels,
          node: this.#o.nodeId,
          // Not `running` until committed: a restart must never boot this row's VM afresh.
          desiredState: 'incoming',
          state: 'migrating',
          restartPolicy: req.restartPolicy,
        });
        await reserveHere(tx);
        await tx.migrations.insert({
          id: req.migrationId,
          vmId: req.vmId,
          kind: req.kind,
          sourceNode: req.sourceNode,
          targetNode: this.#o.nodeId,
          state: 'running',
          phase: 'prepare',
          maxDowntimeMs: req.maxDowntimeMs,
          bytesTotal: stored.memoryMib * MIB,
        });
        await this.#auditVm(tx, u, 'incoming', { migration: req.migrationId, from: req.sourceNode });
      });
    if (req.kind === 'cold') return this.#prepareCold(req, shared);
    let handle: VmHandle | undefined;
    try {
      handle = await this.#driver.start(
        driverSpecOf(req.vmId, req.vmName, req.labels, stored),
        { vmDir: join(this.#o.vmsRoot, req.vmId) },
        { incoming: 'defer', paused: true },
      );
      const h = handle;
      const destination = await MigrationDestination.prepare({
        qmp: this.#driver.handleOf(h).qmpClient(),
        socketPath: join(this.#o.vmsRoot, req.vmId, 'migrate-in.sock'),
        kill: () => this.#driver.destroy(h, { force: true }),
      });
      const entry: Incoming = {
        vmId: req.vmId,
        sourceNode: req.sourceNode,
        shared,
        handle: h,
        destination,
        resumedAtUs: undefined,
        aborted: false,
        watchdog: undefined,
        lock: Promise.resolve(),
      };
      this.#incoming.set(req.migrationId, entry);
      // A stream that breaks or a QEMU that fails to load ends the migration here.
      destination.loaded.catch((err: unknown) => {
        void this.abort(req.migrationId, `destination failed to load: ${errorMessage(err)}`);
      });
      await this.#o.store.migrations.update(req.migrationId, { phase: 'transfer' });
    } catch (err) {
      if (handle) await this.#driver.destroy(handle, { force: true }).catch(() => undefined);
      await this.#undoReserve(req.vmId, shared);
      throw new MigrationError(
        `node ${this.#o.nodeId} could not start the destination QEMU: ${errorMessage(err)}`,
        {
          cause: err,
        },
      );
    }
    this.#o.logger.info(
      { id: req.migrationId, vm: req.vmName, from: req.sourceNode },
      'incoming migration prepared',
    );
    return { nodeId: this.#o.nodeId, dwcpPort: this.dwcpPort };
  }

  async awaitLoaded(migrationId: string, signal: AbortSignal): Promise<void> {
    const entry = this.#incoming.get(migrationId);
    if (!entry || entry.aborted)
      throw new MigrationError(`migration ${migrationId} is not prepared on this node`, {
        code: ErrorCode.InvalidState,
      });
    const onAbort = (): void => {
      if (entry.resumedAtUs === undefined)
        void this.abort(migrationId, 'the source node went away before resuming the destination');
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await entry.destination.loaded;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    await this.#o.store.migrations.update(migrationId, { phase: 'switchover' }).catch(() => undefined);
    // Loaded, paused: the source must resume it soon or it is given up.
    entry.watchdog = setTimeout(() => {
      if (entry.resumedAtUs === undefined)
        void this.abort(migrationId, 'the source did not resume the destination in time');
    }, this.#o.resumeTimeoutMs ?? 60_000);
    entry.watchdog.unref();
  }

  #serial<T>(entry: Incoming, fn: () => Promise<T>): Promise<T> {
    const run = entry.lock.then(fn);
    entry.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async resume(migrationId: string): Promise<number> {
    const entry = this.#incoming.get(migrationId);
    if (!entry)
      throw new MigrationError(`migration ${migrationId} is not prepared on this node`, {
        code: ErrorCode.InvalidState,
      });
    // Under the VM's lock as well: in a region an assignment run for this VM (runAssigned) waits
    // until the handle is adopted, instead of seeing a running row without a process here.
    return this.#serial(entry, () =>
      this.#o.vms.withVmLock(entry.vmId, async () => {
        if (entry.resumedAtUs !== undefined) return entry.resumedAtUs;
        if (entry.aborted)
          throw new MigrationError(`migration ${migrationId} was aborted on this node`, {
            code: ErrorCode.InvalidState,
          });
        if (entry.watchdog) clearTimeout(entry.watchdog);
        // The decision is recorded first: a crash after it resumes the VM at the next start, never drops it.
        const finishedAt = new Date().toISOString();
        const cur = await this.#o.store.vms.get(entry.vmId);
        if (!cur)
          throw new MigrationError(`migration ${migrationId}: the vm row is gone`, {
            code: ErrorCode.InvalidState,
          });
        const s = parseStoredSpec(cur.spec);
        const u = await this.#o.store.transaction(async (tx) => {
          // In a shared database the VM's one row moves here, with its allocation.
          if (entry.shared) await tx.allocations.release(entry.vmId, entry.sourceNode);
          const v = await tx.vms.update(entry.vmId, cur.generation, {
            ...(entry.shared ? { node: this.#o.nodeId } : {}),
            state: 'running',
            desiredState: 'running',
            spec: { ...s, handle: entry.handle.persisted() },
          });
          await tx.migrations.update(migrationId, { state: 'completed', phase: 'done', finishedAt });
          await this.#auditVm(tx, v, 'migrating', { migration: migrationId });
          return v;
        });
        try {
          entry.resumedAtUs = await entry.destination.resume();
        } catch (err) {
          // vCPUs did not start: undo (kill, drop the row) so the source can safely run on.
          entry.aborted = true;
          await entry.destination.abort().catch(() => undefined);
          if (entry.shared)
            await this.#unmoveShared(entry, u.generation, cur.desiredState, s).catch((e: unknown) =>
              this.#o.logger.error(
                { id: migrationId, err: errorMessage(e) },
                'could not move the vm row back',
              ),
            );
          else await this.#o.store.vms.delete(entry.vmId).catch(() => undefined);
          throw new MigrationError(`destination QEMU did not resume: ${errorMessage(err)}`, { cause: err });
        }
        this.#o.vms.adoptHandle(entry.vmId, entry.handle);
        this.#publishVm(u, 'migrating');
        this.#o.logger.info(
          { id: migrationId, vm: cur.name },
          'incoming migration committed: the VM runs here',
        );
        setTimeout(() => this.#incoming.delete(migrationId), 120_000).unref();
        return entry.resumedAtUs;
      }),
    );
  }

  async abort(migrationId: string, reason: string): Promise<AbortOutcome> {
    const cold = this.#incomingCold.get(migrationId);
    if (cold)
      return this.#serialCold(cold, async () => {
        if (cold.committed) return { outcome: 'committed' };
        if (cold.aborted) return { outcome: 'aborted' };
        cold.aborted = true;
        await cold.receiver.close(0).catch(() => undefined);
        await this.#removeReceivedDisks(cold.vmId);
        await this.#dropIncoming(cold.vmId, migrationId, reason);
        return { outcome: 'aborted' };
      });
    const entry = this.#incoming.get(migrationId);
    if (!entry) {
      const r = await this.#o.store.migrations.get(migrationId);
      if (r?.state === 'completed' && r.targetNode === this.#o.nodeId) return { outcome: 'committed' };
      if (r && r.targetNode === this.#o.nodeId && !TERMINAL.has(r.state)) {
        if (r.kind === 'cold') await this.#removeReceivedDisks(r.vmId);
        await this.#dropIncoming(r.vmId, migrationId, reason);
        return { outcome: 'aborted' };
      }
      return { outcome: r ? 'aborted' : 'unknown' };
    }
    return this.#serial(entry, async () => {
      if (entry.resumedAtUs !== undefined) return { outcome: 'committed', resumedAtUs: entry.resumedAtUs };
      if (entry.aborted) return { outcome: 'aborted' };
      entry.aborted = true;
      if (entry.watchdog) clearTimeout(entry.watchdog);
      await entry.destination.abort().catch(() => undefined);
      await this.#dropIncoming(entry.vmId, migrationId, reason);
      return { outcome: 'aborted' };
    });
  }

  /** Kills the destination QEMU (if still attached) and removes the VM row (allocation and migration row cascade). */
  async #dropIncoming(vmId: string, migrationId: string, reason: string): Promise<void> {
    const h = this.#o.vms.driverHandle(vmId);
    if (h) {
      this.#o.vms.releaseHandle(vmId);
      await this.#driver.destroy(h, { force: true }).catch(() => undefined);
    }
    const cur = await this.#o.store.vms.get(vmId);
    // The row exists only for the migration (committed rows are `running` and never dropped here);
    // after a restart the reconcile may have marked it failed (its QEMU died with the stream).
    // A shared database's row is the source's (node still the source): only this node's allocation goes.
    if (cur && cur.node !== this.#o.nodeId)
      await this.#o.store.allocations.release(vmId, this.#o.nodeId).catch(() => undefined);
    if (cur && cur.node === this.#o.nodeId && cur.state !== 'running') {
      await this.#o.store.transaction(async (tx) => {
        await tx.vms.delete(vmId);
        await tx.events.append({
          type: 'migration.state',
          resourceType: 'migration',
          resourceId: migrationId,
          nodeId: this.#o.nodeId,
          data: { vmId, state: 'failed', role: 'destination', error: reason },
        });
      });
      this.#o.events.publish('vm.state', {
        id: vmId,
        name: cur.name,
        node: this.#o.nodeId,
        from: 'migrating',
        to: 'deleted',
      });
    }
    this.#o.logger.warn({ id: migrationId, vmId, reason }, 'incoming migration aborted');
  }

  async get(migrationId: string): Promise<PeerMigrationView> {
    const r = await this.#o.store.migrations.get(migrationId);
    if (!r) throw new NotFoundError('migration', migrationId);
    return { migrationId: r.id, vmId: r.vmId, state: r.state, phase: r.phase, error: r.error };
  }

  #diskStore(): string {
    return join(this.#o.vmsRoot, '..', 'disk-store');
  }

  /**
   * Shared database, the destination's vCPUs did not start after the commit was recorded: the one
   * VM row goes back to the source (its node, spec and allocation), in one transaction.
   */
  async #unmoveShared(
    entry: Incoming,
    generation: number,
    desiredState: string,
    spec: StoredVmSpec,
  ): Promise<void> {
    await this.#o.store.transaction(async (tx) => {
      await tx.vms.update(entry.vmId, generation, {
        node: entry.sourceNode,
        state: 'migrating',
        desiredState,
        spec,
      });
      await tx.allocations.release(entry.vmId, this.#o.nodeId);
      // It held this a moment ago: no capacity check.
      const r = await tx.allocations.reserve(
        {
          vmId: entry.vmId,
          nodeId: entry.sourceNode,
          cpus: spec.cpus,
          memoryMib: spec.memoryMib,
          diskMib: 0,
        },
        { cpus: Infinity, memoryMib: Infinity, diskMib: Infinity },
      );
      if (!r.ok) throw new MigrationError(`could not give vm ${entry.vmId} its allocation back`);
    });
  }

  /** Undoes prepare's reservation: the VM row (its allocation and migration row cascade), or in a shared database only this node's allocation. */
  async #undoReserve(vmId: string, shared: boolean): Promise<void> {
    if (shared) await this.#o.store.allocations.release(vmId, this.#o.nodeId).catch(() => undefined);
    else await this.#o.store.vms.delete(vmId).catch(() => undefined);
  }

  async #prepareCold(req: PrepareRequest, shared: boolean): Promise<PrepareResult> {
    let receiver: FileReceiver;
    try {
      receiver = await createReceiver({
        dir: this.#diskStore(),
        host: this.#o.dwcp.host,
        port: 0,
        security: dwcpSecurityOf(this.#o),
      });
    } catch (err) {
      await this.#undoReserve(req.vmId, shared);
      throw new MigrationError(
        `node ${this.#o.nodeId} could not open a disk receiver: ${errorMessage(err)}`,
        {
          cause: err,
        },
      );
    }
    this.#incomingCold.set(req.migrationId, {
      vmId: req.vmId,
      sourceNode: req.sourceNode,
      shared,
      receiver,
      committed: false,
      aborted: false,
      lock: Promise.resolve(),
    });
    await this.#o.store.migrations.update(req.migrationId, { phase: 'transfer' });
    // A source that never commits (it died) leaves nothing behind for long.
    setTimeout(() => {
      const c = this.#incomingCold.get(req.migrationId);
      if (c && !c.committed) void this.abort(req.migrationId, 'the source did not finish the cold migration');
    }, this.#o.coldTimeoutMs ?? 3_600_000).unref();
    this.#o.logger.info(
      { id: req.migrationId, vm: req.vmName, from: req.sourceNode },
      'incoming cold migration prepared',
    );
    return { nodeId: this.#o.nodeId, dwcpPort: receiver.address.port };
  }

  #serialCold<T>(entry: ColdIncoming, fn: () => Promise<T>): Promise<T> {
    const run = entry.lock.then(fn);
    entry.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async commitCold(migrationId: string, disks: readonly ColdDisk[]): Promise<void> {
    const entry = this.#incomingCold.get(migrationId);
    if (!entry)
      throw new MigrationError(`cold migration ${migrationId} is not prepared on this node`, {
        code: ErrorCode.InvalidState,
      });
    await this.#serialCold(entry, async () => {
      if (entry.committed) return;
      if (entry.aborted)
        throw new MigrationError(`migration ${migrationId} was aborted on this node`, {
          code: ErrorCode.InvalidState,
        });
      const paths = disks.map((d) => join(this.#diskStore(), checkFileName(d.name)));
      for (const p of paths)
        if (!(await exists(p)))
          throw new MigrationError(`cold migration ${migrationId}: disk ${p} did not arrive`);
      const cur = await this.#o.store.vms.get(entry.vmId);
      if (!cur) throw new MigrationError(`migration ${migrationId}: the vm row is gone`);
      const s = parseStoredSpec(cur.spec);
      const u = await this.#o.store.transaction(async (tx) => {
        // In a shared database the VM's one row moves here, with its allocation.
        if (entry.shared) await tx.allocations.release(entry.vmId, entry.sourceNode);
        const v = await tx.vms.update(entry.vmId, cur.generation, {
          ...(entry.shared ? { node: this.#o.nodeId } : {}),
          state: 'stopped',
          desiredState: 'stopped',
          // Base-image overlays arrive as qcow2 files backed by the same base path: path disks here.
          spec: {
            ...s,
            handle: null,
            disks: disks.map((d, i) => ({
              path: paths[i]!,
              format: d.format,
              ...(d.readOnly ? { readOnly: true } : {}),
            })),
          },
        });
        await tx.migrations.update(migrationId, {
          state: 'completed',
          phase: 'done',
          finishedAt: new Date().toISOString(),
        });
        await this.#auditVm(tx, v, 'migrating', { migration: migrationId });
        return v;
      });
      entry.committed = true;
      await entry.receiver.close(0).catch(() => undefined);
      this.#publishVm(u, 'migrating');
      this.#o.logger.info({ id: migrationId, vm: cur.name }, 'incoming cold migration committed');
    });
  }

  async #removeReceivedDisks(vmId: string): Promise<void> {
    const dir = this.#diskStore();
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names) if (n.startsWith(`${vmId}.disk`)) await rm(join(dir, n), { force: true });
  }

  // ============================================================ recovery after a restart

  /**
   * Settles migrations this node took part in when it stopped (killed) in the middle: incoming ones
   * not committed are dropped (QEMU killed, row removed); outgoing ones are settled with the peer
   * (Abort is the arbiter): committed → the local QEMU quits and the VM row records the move;
   * aborted → the local QEMU runs on. Unreachable peers are retried in the background.
   */
  async recover(): Promise<void> {
    const active = await this.#o.store.migrations.list({ state: ['pending', 'running'] }, 1000);
    for (const m of active) {
      if (m.targetNode === this.#o.nodeId) {
        if (m.kind === 'cold') await this.#removeReceivedDisks(m.vmId);
        await this.#dropIncoming(m.vmId, m.id, 'this node restarted before the migration was committed');
      } else if (m.sourceNode === this.#o.nodeId) {
        const done = this.#settleOutgoing(m).catch((err: unknown) =>
          this.#o.logger.error(
            { id: m.id, err: errorMessage(err) },
            'settling a migration after restart failed',
          ),
        );
        const entry: Outgoing = {
          abort: new AbortController(),
          committing: true,
          done: done.then(() => undefined),
        };
        this.#outgoing.set(m.id, entry);
        void done.finally(() => this.#outgoing.delete(m.id));
      }
    }
    // Incoming migrations committed just before a crash may have been recorded but not resumed yet.
    for (const m of await this.#o.store.migrations.list({ state: 'completed', node: this.#o.nodeId }, 50)) {
      if (m.targetNode !== this.#o.nodeId) continue;
      const h = this.#o.vms.driverHandle(m.vmId);
      if (!h) continue;
      const qmp = this.#driver.handleOf(h).qmpClient();
      const st = await qmp.queryStatus().catch(() => undefined);
      if (st && !st.running && (st.status === 'paused' || st.status === 'prelaunch')) {
        this.#o.logger.warn(
          { id: m.id, vmId: m.vmId },
          'resuming a committed incoming migration after restart',
        );
        await qmp.cont().catch(() => undefined);
      }
    }
  }

  async #settleOutgoing(m: MigrationRecord): Promise<void> {
    const peerAddr = this.#peer(m.targetNode);
    const vm = await this.#o.store.vms.get(m.vmId);
    if (!vm) return;
    let committed = false;
    if (peerAddr) {
      try {
        await this.#arbitrate(this.#client(peerAddr), m.id);
        committed = true;
      } catch (err) {
        if (!isDestinationAborted(err)) throw err;
      }
    }
    const h = this.#o.vms.driverHandle(vm.id);
    if (committed) {
      if (h) {
        this.#o.vms.releaseHandle(vm.id);
        await this.#driver.destroy(h, { force: true }).catch(() => undefined);
      }
      await this.#endOutgoing(m, vm, 'completed', { totalMs: Date.now() - Date.parse(m.createdAt) });
      return;
    }
    if (h) {
      const qmp = this.#driver.handleOf(h).qmpClient();
      const st = await qmp.queryStatus().catch(() => undefined);
      if (st && !st.running) await qmp.cont().catch(() => undefined);
    }
    await this.#endOutgoing(m, vm, 'failed', {
      error: 'this node restarted during the migration; rolled back to the source',
      totalMs: Date.now() - Date.parse(m.createdAt),
    });
  }

  // ============================================================ helpers

  async #setDesired(vmId: string, desiredState: string): Promise<void> {
    await this.#o.vms.withVmLock(vmId, async () => {
      const cur = await this.#o.store.vms.get(vmId);
      if (cur) await this.#o.store.vms.update(vmId, cur.generation, { desiredState });
    });
  }

  async #setMigration(id: string, patch: { state?: string; phase?: string }): Promise<void> {
    const m = await this.#o.store.migrations.update(id, patch);
    this.#publishMigration(m);
  }

  #auditVm(
    tx: Pick<StoreTx, 'events'>,
    vm: VmRecord,
    from: string,
    extra: Record<string, unknown>,
  ): Promise<void> {
    return appendVmStateEvent(tx, vm, from, { node: vm.node, ...extra }, this.#o.nodeId);
  }

  #publishVm(vm: VmRecord, from: string): void {
    this.#o.events.publish('vm.state', {
      id: vm.id,
      name: vm.name,
      node: vm.node,
      from,
      to: vm.state,
      generation: vm.generation,
      error: vm.error,
    });
  }

  #publishMigration(m: MigrationRecord): void {
    this.#o.events.publish('migration.state', { ...migrationViewOf(m) });
  }

  /** Stops the receiver and peer clients. Running migrations are cancelled (rolled back) first. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const e of this.#outgoing.values()) if (!e.committing) e.abort.abort();
    await Promise.race([Promise.all([...this.#outgoing.values()].map((e) => e.done)), delay(10_000)]);
    this.#closing.abort();
    for (const e of this.#incoming.values()) if (e.watchdog) clearTimeout(e.watchdog);
    for (const c of this.#incomingCold.values()) await c.receiver.close(0).catch(() => undefined);
    await this.#server.close(500).catch(() => undefined);
    for (const c of this.#clients.values()) c.close();
  }
}
