// The VM service: create (validate, idempotency, place through the scheduler, account resources in
// the same transaction as the VM row), start/stop/restart/delete through the driver, list/get/patch,
// the serial console, driver events, and the boot-time reconcile of every VM row with the driver.
// Every state change is one transaction with its audit event, then published on the EventBus.
import { randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  ConflictError,
  InvalidStateError,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
  ValidationError,
} from '../errors.js';
import type { EventBus } from '../boot/events.js';
import {
  placeVm,
  unschedulableError,
  type ClusterSnapshot,
  type SchedulerOptions,
} from '../scheduler/index.js';
import { firstShortfall } from '../store/index.js';
import type { Store, StoreTx } from '../store/index.js';
import type { NodeCapacity, NodeUsage, Page, VmFilters, VmPatch, VmRecord } from '../store/types.js';
import { appendVmStateEvent } from './audit.js';
import type { VmDriver, VmExit, VmHandle, VmSpec } from './driver.js';
import {
  parseStoredSpec,
  requestHash,
  specOf,
  validateCreateRequest,
  validateLabels,
  viewOf,
  isVmState,
  type CreateVmRequest,
  type StoredVmSpec,
  type VmView,
} from './model.js';
import { assertOperationAllowed, transition, VmState } from './state-machine.js';

export const IDEMPOTENCY_SCOPE = 'vm.create';

export interface VmServiceOptions {
  readonly store: Store;
  readonly driver: VmDriver;
  readonly events: EventBus;
  readonly logger: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  readonly nodeId: string;
  /** `<data_dir>/vms`: one directory per VM. */
  readonly vmsRoot: string;
  /** What the node offers, overcommit ratios already applied. */
  readonly capacity: NodeCapacity;
  readonly nodeLabels: Readonly<Record<string, string>>;
  readonly scheduler: SchedulerOptions;
  readonly stopGraceMs: number;
  /** Check that kernel, initrd and disk paths exist (real drivers). */
  readonly checkPaths: boolean;
  /**
   * Cluster mode with records shared by the region (PostgreSQL): a create is recorded `pending`
   * with no node and placed by the region's leader (src/cluster/region.ts); unplaced rows are not
   * rolled back at boot. Default false: this node places and starts what it creates.
   */
  readonly regionPlacement?: boolean;
}

/** Set by cluster mode (src/components/cluster.ts) once the node has joined its region. */
export interface RegionHooks {
  /** A create was recorded `pending`: tell the leader. Must not throw. */
  readonly placementRequested: (vmId: string) => void;
  /** True while the node is fenced: no VM may be started here (not even an HA restart). */
  readonly isFenced: () => boolean;
}

export interface ListVmsQuery {
  readonly state?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly namePrefix?: string;
  readonly limit?: number;
  readonly cursor?: string;
}

export interface CreateResult {
  readonly vm: VmView;
  /** True when an Idempotency-Key replayed an earlier create. */
  readonly replayed: boolean;
}

export interface ConsoleOutput {
  readonly vmId: string;
  readonly simulated: boolean;
  readonly log: string;
  readonly truncated: boolean;
}

export interface ReconcileSummary {
  readonly adopted: number;
  readonly completed: number;
  readonly rolledBack: number;
  readonly failed: number;
  readonly restarted: number;
  readonly orphansDestroyed: number;
}

const CONSOLE_TAIL_BYTES = 64 * 1024;
/** Most units of work committed together in one transaction (group commit). */
const MAX_BATCH = 256;

interface TxJob {
  readonly work: (tx: StoreTx) => Promise<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits. Ids of VMs
 * created close in time sort close together, so a burst of creates inserts at the end of the
 * id-keyed indexes (vms, allocations, events by resource) instead of dirtying a random page of each
 * per VM: fewer pages written per group commit.
 */
export function timeOrderedId(now: number = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = 0x70 | (b[6]! & 0x0f);
  b[8] = 0x80 | (b[8]! & 0x3f);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The message format of a create that does not fit: `resource exhausted: <what> (requested X, free Y)`. */
export function exhaustedError(
  what: string,
  requested: number,
  free: number,
  details: Record<string, unknown> = {},
): ResourceExhaustedError {
  return new ResourceExhaustedError(`resource exhausted: ${what} (requested ${requested}, free ${free})`, {
    key: what,
    details: { what, requested, free, ...details },
    retryable: true,
  });
}

export class VmService {
  readonly #o: VmServiceOptions;
  readonly #handles = new Map<string, VmHandle>();
  readonly #unsubscribe = new Map<string, () => void>();
  /** VMs whose exit we caused (stop, delete): their exit event is not a crash. */
  readonly #expectedExit = new Set<string>();
  readonly #locks = new Map<string, Promise<void>>();
  #closed = false;
  #region: RegionHooks | undefined;
  readonly #queue: TxJob[] = [];
  #flushing = false;

  constructor(options: VmServiceOptions) {
    this.#o = options;
  }

  get driverName(): string {
    return this.#o.driver.name;
  }

  get simulated(): boolean {
    return this.#o.driver.capabilities().simulated;
  }

  /** Number of VMs with a live driver handle in this process. */
  get liveHandles(): number {
    return this.#handles.size;
  }

  // ------------------------------------------------------------------ reads

  async list(q: ListVmsQuery = {}): Promise<Page<VmView>> {
    if (q.state !== undefined) {
      for (const s of q.state.split(','))
        if (!isVmState(s))
          throw new ValidationError(`invalid query: state ${s} is not a VM state`, { key: 'state' });
    }
    const filters: VmFilters = {
      ...(q.state === undefined ? {} : { state: q.state.split(',') }),
      ...(q.labels === undefined ? {} : { labels: q.labels }),
      ...(q.namePrefix === undefined ? {} : { namePrefix: q.namePrefix }),
    };
    const page = await this.#o.store.vms.list({
      filters,
      ...(q.limit === undefined ? {} : { limit: q.limit }),
      ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
    });
    return {
      items: page.items.map(viewOf),
      ...(page.nextCursor === undefined ? {} : { nextCursor: page.nextCursor }),
    };
  }

  /** By id or by name; NotFoundError otherwise. */
  async get(idOrName: string): Promise<VmView> {
    return viewOf(await this.#find(idOrName));
  }

  async #find(idOrName: string): Promise<VmRecord> {
    const vm = (await this.#o.store.vms.get(idOrName)) ?? (await this.#o.store.vms.getByName(idOrName));
    if (vm === undefined) throw new NotFoundError('vm', idOrName);
    return vm;
  }

  async console(idOrName: string): Promise<ConsoleOutput> {
    const vm = await this.#find(idOrName);
    const spec = parseStoredSpec(vm.spec);
    const handle = this.#handles.get(vm.id);
    const path = handle?.persisted().serialLog || spec.handle?.serialLog || '';
    if (this.simulated || path === '')
      return { vmId: vm.id, simulated: this.simulated, log: '', truncated: false };
    try {
      const f = await open(path, 'r');
      try {
        const { size } = await f.stat();
        const start = Math.max(0, size - CONSOLE_TAIL_BYTES);
        const buf = Buffer.alloc(size - start);
        await f.read(buf, 0, buf.length, start);
        return { vmId: vm.id, simulated: false, log: buf.toString('utf8'), truncated: start > 0 };
      } finally {
        await f.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        return { vmId: vm.id, simulated: false, log: '', truncated: false };
      throw err;
    }
  }

  // ------------------------------------------------------------------ create

  async create(body: unknown, idempotencyKey?: string): Promise<CreateResult> {
    const req = validateCreateRequest(body);
    if (idempotencyKey !== undefined && (idempotencyKey === '' || idempotencyKey.length > 255))
      throw new ValidationError('invalid header: Idempotency-Key must be 1-255 characters', {
        key: 'Idempotency-Key',
      });
    if (this.#o.checkPaths) await this.#checkPaths(req);
    const id = timeOrderedId();
    // Only a create with an Idempotency-Key needs the body's hash (stored with the key).
    const hash = idempotencyKey === undefined ? '' : requestHash(req);
    if (this.simulated && this.#o.regionPlacement !== true) {
      const inline = await this.#createStarted(req, id, hash, idempotencyKey);
      if (inline !== undefined) return inline;
    }
    const outcome = await this.#tx(async (tx) => {
      if (idempotencyKey !== undefined) {
        const claim = await tx.idempotency.claim(IDEMPOTENCY_SCOPE, idempotencyKey, hash);
        if (claim.status === 'mismatch')
          throw new ConflictError(
            `idempotency key ${idempotencyKey} was used with a different request body`,
            {
              key: 'Idempotency-Key',
              hint: 'use a new key for a different request',
            },
          );
        if (claim.status === 'replay') return { replay: claim.resourceId, response: claim.response };
      }
      if (this.#o.regionPlacement === true) {
        const rec = await tx.vms.insert({
          id,
          name: req.name,
          spec: specOf(req),
          labels: req.labels ?? {},
          node: null,
          desiredState: 'running',
          state: VmState.Pending,
          restartPolicy: req.restartPolicy ?? 'never',
        });
        await appendVmStateEvent(tx, rec, VmState.Pending, { created: true });
        if (idempotencyKey !== undefined)
          await tx.idempotency.complete(IDEMPOTENCY_SCOPE, idempotencyKey, id, viewOf(rec));
        return { rec, pending: true };
      }
      transition({ name: req.name, state: VmState.Pending }, VmState.Scheduled);
      const usage = await tx.allocations.usage(this.#o.nodeId);
      const nodeId = this.#place(req.name, req, usage);
      const rec = await tx.vms.insert({
        id,
        name: req.name,
        spec: specOf(req),
        labels: req.labels ?? {},
        node: nodeId,
        desiredState: 'running',
        state: VmState.Scheduled,
        restartPolicy: req.restartPolicy ?? 'never',
      });
      const r = await tx.allocations.reserve(
        { vmId: id, nodeId, cpus: req.cpus, memoryMib: req.memoryMib, diskMib: 0 },
        this.#o.capacity,
      );
      if (!r.ok) throw exhaustedError(r.what, r.requested, r.free, { node: nodeId });
      await appendVmStateEvent(tx, rec, VmState.Pending, { created: true });
      if (idempotencyKey !== undefined)
        await tx.idempotency.complete(IDEMPOTENCY_SCOPE, idempotencyKey, id, viewOf(rec));
      return { rec };
    });
    if ('replay' in outcome) {
      const current = outcome.replay === null ? undefined : await this.#o.store.vms.get(outcome.replay);
      return { vm: current ? viewOf(current) : (outcome.response as VmView), replayed: true };
    }
    this.#publish(outcome.rec, VmState.Pending);
    if ('pending' in outcome) {
      this.#region?.placementRequested(id);
      return { vm: viewOf(outcome.rec), replayed: false };
    }
    const started = await this.#locked(id, () => this.#startNow(outcome.rec));
    return { vm: viewOf(started), replayed: false };
  }

  /**
   * Create for a driver whose start is in process and immediate (sim): the VM is started first,
   * then pending → scheduled → starting → running is recorded in ONE transaction (one unit of the
   * group commit) with the allocation and one audit event per state change, at generations 1, 2
   * and 3 as the stepwise path writes them; the 201 follows the commit. When that transaction fails
   * (name taken, resource exhausted …) or replays an idempotency key, the started VM is destroyed.
   * Undefined when the driver refused the start: the stepwise path then records the failure.
   */
  async #createStarted(
    req: CreateVmRequest,
    id: string,
    hash: string,
    idempotencyKey: string | undefined,
  ): Promise<CreateResult | undefined> {
    const name = req.name;
    transition({ name, state: VmState.Pending }, VmState.Scheduled);
    transition({ name, state: VmState.Scheduled }, VmState.Starting);
    transition({ name, state: VmState.Starting }, VmState.Running);
    const spec = specOf(req);
    const labels = req.labels ?? {};
    let handle: VmHandle;
    try {
      handle = await this.#o.driver.start(this.#specFor({ id, name, labels }, spec), {
        vmDir: this.#vmDir(id),
      });
    } catch {
      return undefined;
    }
    const undo = async () => {
      await this.#o.driver.destroy(handle, { force: true }).catch((err: unknown) => {
        this.#o.logger.error({ vm: name, err }, 'destroying a VM whose create was not recorded failed');
      });
    };
    // Locked from before the commit: a delete of the new VM waits until its handle is attached.
    return this.#locked(id, async () => {
      let outcome: { rec: VmRecord } | { replay: string | null; response: unknown };
      try {
        outcome = await this.#tx(async (tx) => {
          const replay = await this.#claimKey(tx, idempotencyKey, hash);
          if (replay !== undefined) return replay;
          const usage = await tx.allocations.usage(this.#o.nodeId);
          const nodeId = this.#place(name, req, usage);
          const rec = await tx.vms.insert({
            id,
            name,
            spec: { ...spec, handle: handle.persisted() },
            labels,
            node: nodeId,
            desiredState: 'running',
            state: VmState.Running,
            restartPolicy: req.restartPolicy ?? 'never',
            generation: 3,
          });
          const r = await tx.allocations.reserve(
            { vmId: id, nodeId, cpus: req.cpus, memoryMib: req.memoryMib, diskMib: 0 },
            this.#o.capacity,
          );
          if (!r.ok) throw exhaustedError(r.what, r.requested, r.free, { node: nodeId });
          const step = (
            from: VmState,
            to: VmState,
            generation: number,
            extra: Record<string, unknown> = {},
          ) => ({
            type: 'vm.state',
            resourceType: 'vm',
            resourceId: id,
            nodeId,
            data: { name, from, to, generation, ...extra },
          });
          await tx.events.appendMany([
            step(VmState.Pending, VmState.Scheduled, 1, { created: true }),
            step(VmState.Scheduled, VmState.Starting, 2),
            step(VmState.Starting, VmState.Running, 3),
          ]);
          if (idempotencyKey !== undefined)
            await tx.idempotency.complete(IDEMPOTENCY_SCOPE, idempotencyKey, id, viewOf(rec));
          return { rec };
        });
      } catch (err) {
        await undo();
        throw err;
      }
      if ('replay' in outcome) {
        await undo();
        const current = outcome.replay === null ? undefined : await this.#o.store.vms.get(outcome.replay);
        return { vm: current ? viewOf(current) : (outcome.response as VmView), replayed: true };
      }
      const rec = outcome.rec;
      this.#attach(id, handle);
      this.#publish({ ...rec, state: VmState.Scheduled, generation: 1 }, VmState.Pending);
      this.#publish({ ...rec, state: VmState.Starting, generation: 2 }, VmState.Scheduled);
      this.#publish(rec, VmState.Starting);
      return { vm: viewOf(rec), replayed: false };
    });
  }

  /** Claims an idempotency key in `tx`: undefined when the create goes ahead, the earlier outcome on
   *  a replay; a ConflictError when the key came with another body. */
  async #claimKey(
    tx: StoreTx,
    key: string | undefined,
    hash: string,
  ): Promise<{ replay: string | null; response: unknown } | undefined> {
    if (key === undefined) return undefined;
    const claim = await tx.idempotency.claim(IDEMPOTENCY_SCOPE, key, hash);
    if (claim.status === 'mismatch')
      throw new ConflictError(`idempotency key ${key} was used with a different request body`, {
        key: 'Idempotency-Key',
        hint: 'use a new key for a different request',
      });
    if (claim.status === 'replay') return { replay: claim.resourceId, response: claim.response };
    return undefined;
  }

  async #checkPaths(req: CreateVmRequest): Promise<void> {
    const paths: [string, string][] = [];
    if (req.kernel) paths.push(['kernel', req.kernel]);
    if (req.initrd) paths.push(['initrd', req.initrd]);
    (req.disks ?? []).forEach((d, i) => paths.push([`disks/${i}`, 'path' in d ? d.path : d.baseImage]));
    for (const [field, p] of paths) {
      try {
        await access(p, constants.R_OK);
      } catch {
        throw new ValidationError(`invalid request body: ${field} ${p} does not exist or is not readable`, {
          key: field,
          details: [{ path: `/${field}`, message: `${p} does not exist or is not readable` }],
        });
      }
    }
  }

  /** Places a VM through the scheduler on this node's snapshot; throws the 409 error when it cannot. */
  #place(name: string, res: { cpus: number; memoryMib: number }, usage: NodeUsage): string {
    const cap = this.#o.capacity;
    const snapshot: ClusterSnapshot = {
      nodes: [
        {
          id: this.#o.nodeId,
          status: 'ready',
          labels: this.#o.nodeLabels,
          drivers: [this.#o.driver.name],
          liveMigration: this.#o.driver.capabilities().liveMigration,
          groups: {},
          capacity: { cpus: cap.cpus, memoryMib: cap.memoryMib, diskGib: cap.diskMib / 1024 },
          allocated: { cpus: usage.cpus, memoryMib: usage.memoryMib, diskGib: usage.diskMib / 1024 },
        },
      ],
    };
    const o = placeVm(
      snapshot,
      {
        id: name,
        resources: { cpus: res.cpus, memoryMib: res.memoryMib, diskGib: 0 },
        driver: this.#o.driver.name,
      },
      this.#o.scheduler,
    );
    if (o.status === 'placed') return o.nodeId;
    const short = firstShortfall(usage, cap, { cpus: res.cpus, memoryMib: res.memoryMib, diskMib: 0 });
    if (short) throw exhaustedError(short.what, short.requested, short.free, { reasons: o.reasons });
    throw unschedulableError(o);
  }

  // ------------------------------------------------------------------ operations

  async start(idOrName: string): Promise<VmView> {
    const { id } = await this.#find(idOrName);
    return viewOf(
      await this.#locked(id, async () => {
        const vm = await this.#o.store.vms.require(id);
        this.#assertHere(vm);
        assertOperationAllowed(this.#asState(vm), 'start');
        return this.#startNow(vm);
      }),
    );
  }

  async stop(idOrName: string, options: { force?: boolean } = {}): Promise<VmView> {
    const { id } = await this.#find(idOrName);
    return viewOf(
      await this.#locked(id, async () => {
        const vm = await this.#o.store.vms.require(id);
        this.#assertHere(vm);
        assertOperationAllowed(this.#asState(vm), 'stop');
        return this.#stopNow(vm, options.force === true, 'stopped');
      }),
    );
  }

  /** Stops (when running) and starts again, placed again through the scheduler. */
  async restart(idOrName: string): Promise<VmView> {
    const { id } = await this.#find(idOrName);
    return viewOf(
      await this.#locked(id, async () => {
        let vm = await this.#o.store.vms.require(id);
        this.#assertHere(vm);
        assertOperationAllowed(this.#asState(vm), 'restart');
        if (vm.state === VmState.Running) vm = await this.#stopNow(vm, false, 'running');
        vm = await this.#reschedule(vm);
        return this.#startNow(vm);
      }),
    );
  }

  async patchLabels(idOrName: string, body: unknown): Promise<VmView> {
    if (typeof body !== 'object' || body === null || !('labels' in body))
      throw new ValidationError('invalid request body: labels is required', { key: 'labels' });
    const raw = (body as { labels: unknown }).labels;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw new ValidationError('invalid request body: labels must be an object', { key: 'labels' });
    const removals = Object.entries(raw)
      .filter(([, v]) => v === null)
      .map(([k]) => k);
    const sets = validateLabels(Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== null)));
    const { id } = await this.#find(idOrName);
    return viewOf(
      await this.#locked(id, async () => {
        const vm = await this.#o.store.vms.require(id);
        const labels: Record<string, string> = { ...vm.labels, ...sets };
        for (const k of removals) delete labels[k];
        const updated = await this.#tx(async (tx) => {
          const u = await tx.vms.update(vm.id, vm.generation, { labels });
          await tx.events.append({
            type: 'vm.labels',
            resourceType: 'vm',
            resourceId: vm.id,
            nodeId: vm.node,
            data: { name: vm.name, labels, generation: u.generation },
          });
          return u;
        });
        this.#o.events.publish('vm.labels', {
          id: vm.id,
          name: vm.name,
          labels,
          generation: updated.generation,
        });
        return updated;
      }),
    );
  }

  /** Stops and destroys the VM, removes its files, frees its resources and its row. */
  async delete(idOrName: string): Promise<void> {
    const { id } = await this.#find(idOrName);
    await this.#locked(id, async () => {
      const vm = await this.#o.store.vms.get(id);
      if (vm === undefined) return;
      this.#assertHere(vm);
      if (vm.state !== VmState.Deleting) assertOperationAllowed(this.#asState(vm), 'delete');
      // A VM with a process goes down first (forced: it is being deleted), through the legal states.
      let cur = vm;
      if (cur.state === VmState.Running || cur.state === VmState.Starting)
        cur = await this.#stopNow(cur, true, 'deleted');
      else if (cur.state === VmState.Stopping) cur = await this.#stopNowFromStopping(cur);
      const deleting =
        cur.state === VmState.Deleting
          ? cur
          : await this.#change(cur, VmState.Deleting, { desiredState: 'deleted' }, async (tx) => {
              await tx.allocations.release(cur.id);
            });
      await this.#finishDelete(deleting);
    });
  }

  async #finishDelete(vm: VmRecord): Promise<void> {
    const handle = this.#handles.get(vm.id);
    if (handle) {
      this.#expectedExit.add(vm.id);
      await this.#o.driver.destroy(handle, { force: true });
      this.#detach(vm.id);
    }
    await rm(this.#vmDir(vm.id), { recursive: true, force: true });
    await this.#tx(async (tx) => {
      await tx.allocations.release(vm.id);
      await tx.vms.delete(vm.id);
      await tx.events.append({
        type: 'vm.deleted',
        resourceType: 'vm',
        resourceId: vm.id,
        nodeId: vm.node,
        data: { name: vm.name, from: vm.state, generation: vm.generation },
      });
    });
    this.#expectedExit.delete(vm.id);
    this.#o.events.publish('vm.state', {
      id: vm.id,
      name: vm.name,
      node: vm.node,
      from: vm.state,
      to: 'deleted',
      generation: vm.generation + 1,
    });
  }

  // ------------------------------------------------------------------ internals

  #asState(vm: VmRecord): { name: string; state: VmState } {
    if (!isVmState(vm.state))
      throw new InvalidStateError(`vm ${vm.name}: unknown state ${vm.state} in the database`, { key: vm.id });
    return { name: vm.name, state: vm.state };
  }

  /**
   * Start/stop/restart/delete act on this node's driver, so a row whose `node` is another node
   * (e.g. what a node keeps of a VM it migrated away) is refused with the node that runs it. In a
   * region (shared records, region hooks set) the REST guard routes such requests and a VM of a
   * node that is down may be changed here, so the check is left to it.
   */
  #assertHere(vm: VmRecord): void {
    if (this.#region !== undefined || vm.node === null || vm.node === this.#o.nodeId) return;
    throw new InvalidStateError(
      `vm ${vm.name} runs on node ${vm.node}, not on this node (${this.#o.nodeId}): send the request to node ${vm.node}`,
      {
        key: 'node',
        details: { node: vm.node },
        hint: `operate it on node ${vm.node}, or migrate it back here`,
      },
    );
  }

  #vmDir(id: string): string {
    return join(this.#o.vmsRoot, id);
  }

  /**
   * Group commit: units of work (each one state change with its audit event, or one create) queued
   * while a transaction is running are committed together in the next one. A unit must only touch
   * the database through `tx` (no side effects), so that when any unit of a batch fails, the batch
   * is rolled back and every unit re-run in a transaction of its own: each caller sees exactly the
   * outcome it would have had alone.
   */
  #tx<T>(work: (tx: StoreTx) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ work, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#flushing) {
        this.#flushing = true;
        setImmediate(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, MAX_BATCH);
      let results: unknown[] | undefined;
      if (batch.length > 1) {
        try {
          results = await this.#o.store.transaction(async (tx) => {
            const out: unknown[] = [];
            for (const job of batch) out.push(await job.work(tx));
            return out;
          });
        } catch {
          results = undefined;
        }
      }
      if (results !== undefined) {
        batch.forEach((job, i) => job.resolve(results[i]));
        continue;
      }
      for (const job of batch) {
        try {
          job.resolve(await this.#o.store.transaction(job.work));
        } catch (err) {
          job.reject(err);
        }
      }
    }
    this.#flushing = false;
  }

  /** Serialises operations per VM. */
  async #locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(id) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.#locks.set(id, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.#locks.get(id) === tail) this.#locks.delete(id);
    }
  }

  #publish(vm: VmRecord, from: string): void {
    this.#o.events.publish('vm.state', {
      id: vm.id,
      name: vm.name,
      node: vm.node,
      from,
      to: vm.state,
      generation: vm.generation,
      error: vm.error,
      simulated: this.simulated,
    });
  }

  /** One state change: transition check, row update and audit event in one transaction, then published. */
  async #change(
    vm: VmRecord,
    to: string,
    patch: Omit<VmPatch, 'state'> = {},
    more?: (tx: StoreTx) => Promise<void>,
  ): Promise<VmRecord> {
    const from = this.#asState(vm);
    if (!isVmState(to))
      throw new InvalidStateError(`vm ${vm.name}: unknown target state ${to}`, { key: vm.id });
    if (to !== from.state) transition(from, to);
    const updated = await this.#tx(async (tx) => {
      const u = await tx.vms.update(vm.id, vm.generation, { ...patch, state: to });
      await more?.(tx);
      await appendVmStateEvent(tx, u, vm.state);
      return u;
    });
    this.#publish(updated, vm.state);
    return updated;
  }

  #specFor(vm: Pick<VmRecord, 'id' | 'name' | 'labels'>, spec: StoredVmSpec): VmSpec {
    return {
      id: vm.id,
      name: vm.name,
      cpus: spec.cpus,
      memoryMib: spec.memoryMib,
      ...(spec.kernel === undefined ? {} : { kernel: spec.kernel }),
      ...(spec.initrd === undefined ? {} : { initrd: spec.initrd }),
      ...(spec.cmdline === undefined ? {} : { cmdline: spec.cmdline }),
      disks: spec.disks,
      network: spec.network,
      labels: vm.labels,
    };
  }

  /** scheduled|stopped|failed|starting → starting → running (or failed). Caller holds the lock. */
  async #startNow(vm: VmRecord): Promise<VmRecord> {
    const cur =
      vm.state === VmState.Starting
        ? vm
        : await this.#change(vm, VmState.Starting, { error: null, desiredState: 'running' });
    const spec = parseStoredSpec(cur.spec);
    let handle: VmHandle;
    try {
      handle = await this.#o.driver.start(this.#specFor(cur, spec), { vmDir: this.#vmDir(cur.id) });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#o.logger.warn({ vm: cur.name, err: message }, 'vm start failed');
      return this.#change(cur, VmState.Failed, { error: `start failed: ${message}` });
    }
    this.#attach(cur.id, handle);
    return this.#change(cur, VmState.Running, { spec: { ...spec, handle: handle.persisted() }, error: null });
  }

  /** Stops the VM's process (graceful then forced) and records `stopped`. Caller holds the lock. */
  async #stopNow(vm: VmRecord, force: boolean, desired: string): Promise<VmRecord> {
    const cur = await this.#change(vm, VmState.Stopping, { desiredState: desired });
    const handle = this.#handles.get(vm.id);
    if (handle) {
      this.#expectedExit.add(vm.id);
      try {
        await this.#o.driver.stop(handle, { graceMs: force ? 0 : this.#o.stopGraceMs });
      } finally {
        this.#detach(vm.id);
        this.#expectedExit.delete(vm.id);
      }
    }
    const spec = parseStoredSpec(cur.spec);
    return this.#change(cur, VmState.Stopped, { spec: { ...spec, handle: null } });
  }

  /** stopped|failed → scheduled: placed again through the scheduler (its own allocation excluded). */
  async #reschedule(vm: VmRecord): Promise<VmRecord> {
    const from = this.#asState(vm);
    transition(from, VmState.Scheduled);
    const spec = parseStoredSpec(vm.spec);
    const updated = await this.#tx(async (tx) => {
      await tx.allocations.release(vm.id);
      const usage = await tx.allocations.usage(this.#o.nodeId);
      const nodeId = this.#place(vm.name, spec, usage);
      const r = await tx.allocations.reserve(
        { vmId: vm.id, nodeId, cpus: spec.cpus, memoryMib: spec.memoryMib, diskMib: 0 },
        this.#o.capacity,
      );
      if (!r.ok) throw exhaustedError(r.what, r.requested, r.free, { node: nodeId });
      const u = await tx.vms.update(vm.id, vm.generation, {
        state: VmState.Scheduled,
        node: nodeId,
        desiredState: 'running',
        error: null,
      });
      await appendVmStateEvent(tx, u, vm.state, { rescheduled: true });
      return u;
    });
    this.#publish(updated, vm.state);
    return updated;
  }

  #attach(id: string, handle: VmHandle): void {
    this.#detach(id);
    this.#handles.set(id, handle);
    const off = handle.onEvent((e) => {
      if (e.type === 'exit') void this.#onExit(id, e.exit);
    });
    this.#unsubscribe.set(id, off);
  }

  #detach(id: string): void {
    this.#unsubscribe.get(id)?.();
    this.#unsubscribe.delete(id);
    this.#handles.delete(id);
  }

  /** A VM's process went away without us asking: record it, and restart it under `restartPolicy: always`. */
  async #onExit(id: string, exit: VmExit): Promise<void> {
    if (this.#expectedExit.has(id) || this.#closed) return;
    try {
      await this.#locked(id, async () => {
        if (this.#expectedExit.has(id) || this.#closed) return;
        this.#detach(id);
        let vm = await this.#o.store.vms.get(id);
        if (vm === undefined) return;
        if (vm.state !== VmState.Running && vm.state !== VmState.Starting && vm.state !== VmState.Migrating)
          return;
        const spec = parseStoredSpec(vm.spec);
        if (exit.guest && vm.state === VmState.Running) {
          vm = await this.#change(vm, VmState.Stopping);
          vm = await this.#change(vm, VmState.Stopped, { spec: { ...spec, handle: null }, error: null });
        } else {
          vm = await this.#change(vm, VmState.Failed, {
            spec: { ...spec, handle: null },
            error: `process exited: ${exit.reason}`,
          });
        }
        this.#o.logger.warn({ vm: vm.name, reason: exit.reason, guest: exit.guest }, 'vm exited');
        if (vm.restartPolicy === 'always' && vm.desiredState === 'running' && !this.#region?.isFenced()) {
          await this.#startNow(vm);
        }
      });
    } catch (err) {
      this.#o.logger.error({ vmId: id, err }, 'recording a vm exit failed');
    }
  }

  // ------------------------------------------------------------------ reconcile

  /**
   * Boot-time reconcile: every VM row of this node against the driver. Live processes are adopted;
   * half-created VMs (scheduled/starting without a process) are completed; half-deleted ones finished;
   * running VMs whose process died are marked failed (restarted under `restartPolicy: always`);
   * processes under the VM directories with no row are destroyed.
   */
  async reconcile(): Promise<ReconcileSummary> {
    const rows: VmRecord[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.#o.store.vms.list({
        filters: { node: this.#o.nodeId },
        limit: 1000,
        ...(cursor === undefined ? {} : { cursor }),
      });
      rows.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    // Rows never placed (a crash before placement cannot leave one, but be safe) are rolled back below.
    // Cluster mode: unplaced rows are creates waiting for the region's leader, not leftovers.
    const unplaced =
      this.#o.regionPlacement === true
        ? { items: [] }
        : await this.#o.store.vms.list({ filters: { node: null }, limit: 1000 });
    const known = rows
      .map((r) => parseStoredSpec(r.spec).handle)
      .filter((h): h is NonNullable<typeof h> => h !== null && h.driver === this.#o.driver.name);
    const report = await this.#o.driver.reconcile(this.#o.vmsRoot, known);
    const live = new Map<string, VmHandle>();
    for (const h of [...report.adopted, ...report.orphans]) live.set(h.vmId, h);
    const gone = new Map(report.gone.map((g) => [g.vmId, g.reason]));
    let adopted = 0;
    let completed = 0;
    let rolledBack = 0;
    let failed = 0;
    let restarted = 0;
    let orphansDestroyed = 0;
    const rowIds = new Set(rows.map((r) => r.id));
    for (const vm of unplaced.items) {
      await this.#locked(vm.id, async () => {
        await this.#finishDelete(vm);
        rolledBack++;
      });
    }
    for (const [id, h] of live) {
      if (rowIds.has(id)) continue;
      this.#o.logger.warn({ vmId: id }, 'destroying a VM process with no VM row (orphan)');
      await this.#o.driver.destroy(h, { force: true });
      await rm(this.#vmDir(id), { recursive: true, force: true });
      orphansDestroyed++;
    }
    for (const row of rows) {
      await this.#locked(row.id, async () => {
        let vm = row;
        const h = live.get(vm.id);
        const spec = parseStoredSpec(vm.spec);
        switch (vm.state) {
          case VmState.Deleting:
            if (h) this.#attach(vm.id, h);
            await this.#finishDelete(vm);
            rolledBack++;
            return;
          case VmState.Stopping:
            if (h) this.#attach(vm.id, h);
            await this.#stopNowFromStopping(vm);
            return;
          case VmState.Pending:
          case VmState.Scheduled:
          case VmState.Starting:
            if (h) {
              this.#attach(vm.id, h);
              if (vm.state !== VmState.Starting) vm = await this.#change(vm, VmState.Starting);
              await this.#change(vm, VmState.Running, { spec: { ...spec, handle: h.persisted() } });
              adopted++;
            } else {
              if (vm.state === VmState.Pending) vm = await this.#change(vm, VmState.Scheduled);
              await this.#startNow(vm);
              completed++;
            }
            return;
          case VmState.Running:
          case VmState.Migrating:
            if (h) {
              this.#attach(vm.id, h);
              adopted++;
              return;
            }
            vm = await this.#change(vm, VmState.Failed, {
              spec: { ...spec, handle: null },
              error: `process gone after restart: ${gone.get(vm.id) ?? 'no process found'}`,
            });
            failed++;
            if (vm.restartPolicy === 'always' && vm.desiredState === 'running') {
              await this.#startNow(vm);
              restarted++;
            }
            return;
          default:
            // stopped / failed: nothing should run; stop a leftover process if one is alive.
            if (h) {
              this.#expectedExit.add(vm.id);
              await this.#o.driver.stop(h, { graceMs: 0 });
              this.#expectedExit.delete(vm.id);
            }
        }
      });
    }
    const summary = { adopted, completed, rolledBack, failed, restarted, orphansDestroyed };
    this.#o.logger.info(
      { ...summary, rows: rows.length, cleaned: report.cleaned.length },
      'vm reconcile done',
    );
    return summary;
  }

  async #stopNowFromStopping(vm: VmRecord): Promise<VmRecord> {
    const handle = this.#handles.get(vm.id);
    if (handle) {
      this.#expectedExit.add(vm.id);
      await this.#o.driver.stop(handle, { graceMs: this.#o.stopGraceMs });
      this.#detach(vm.id);
      this.#expectedExit.delete(vm.id);
    }
    const spec = parseStoredSpec(vm.spec);
    return this.#change(vm, VmState.Stopped, { spec: { ...spec, handle: null } });
  }

  // ------------------------------------------------------------------ live migration hooks (src/migration)

  /** The VM driver (live migration drives QEMU's migration through it). */
  get driver(): VmDriver {
    return this.#o.driver;
  }

  /** The live driver handle of a VM in this process, if any. */
  driverHandle(id: string): VmHandle | undefined {
    return this.#handles.get(id);
  }

  /** Watches a process that a live migration brought to this node, like one this service started. */
  adoptHandle(id: string, handle: VmHandle): void {
    this.#attach(id, handle);
  }

  /** A live migration takes the VM's process over (it quits on commit): stop watching it. */
  releaseHandle(id: string): void {
    this.#detach(id);
  }

  /** Runs `fn` under the VM's operation lock (serialised with start/stop/delete of that VM). */
  withVmLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.#locked(id, fn);
  }

  // ------------------------------------------------------------------ cluster mode hooks (src/cluster)

  setRegionHooks(hooks: RegionHooks | undefined): void {
    this.#region = hooks;
  }

  /** Ids of the VMs with a live process on this node (the driver's view, not the database's). */
  localVmIds(): string[] {
    return [...this.#handles.keys()];
  }

  /**
   * Carries out an assignment of the region's leader: starts the VM here when its row says it is
   * placed on this node and should run. `ignored`: the row is gone, elsewhere, not to run, or busy
   * (migrating, stopping). Refused (UnavailableError) while fenced.
   */
  async runAssigned(id: string): Promise<'running' | 'failed' | 'ignored'> {
    return this.#locked(id, async () => {
      let vm = await this.#o.store.vms.get(id);
      if (vm === undefined || vm.node !== this.#o.nodeId || vm.desiredState !== 'running') return 'ignored';
      if (this.#handles.has(id)) return 'running';
      if (this.#region?.isFenced())
        throw new UnavailableError(`vm ${vm.name}: this node is fenced and starts nothing`);
      if (vm.state === VmState.Running) {
        const spec = parseStoredSpec(vm.spec);
        vm = await this.#change(vm, VmState.Failed, {
          spec: { ...spec, handle: null },
          error: 'process not found on its node',
        });
      }
      if (
        vm.state !== VmState.Scheduled &&
        vm.state !== VmState.Failed &&
        vm.state !== VmState.Starting &&
        vm.state !== VmState.Stopped
      )
        return 'ignored';
      const started = await this.#startNow(vm);
      return started.state === VmState.Running ? 'running' : 'failed';
    });
  }

  /**
   * Self-fencing: stops at once (forced, no database needed) the local processes of the VMs with
   * `restartPolicy: always` (and of those whose policy is unknown), so that they can be restarted
   * elsewhere once the lease has expired; then records them `failed` (best effort: the row may have
   * moved on). Returns the ids stopped.
   */
  async fence(policyOf: (id: string) => string | undefined): Promise<string[]> {
    const stopped: string[] = [];
    for (const [id, handle] of [...this.#handles]) {
      const policy = policyOf(id);
      if (policy !== undefined && policy !== 'always') continue;
      this.#expectedExit.add(id);
      try {
        await this.#o.driver.stop(handle, { graceMs: 0 });
      } catch (err) {
        this.#o.logger.error({ vmId: id, err }, 'fencing: stopping a VM failed');
      } finally {
        this.#detach(id);
        this.#expectedExit.delete(id);
      }
      stopped.push(id);
    }
    for (const id of stopped) {
      await this.#locked(id, async () => {
        const vm = await this.#o.store.vms.get(id);
        if (vm === undefined || vm.node !== this.#o.nodeId || this.#handles.has(id)) return;
        if (vm.state !== VmState.Running && vm.state !== VmState.Starting) return;
        const spec = parseStoredSpec(vm.spec);
        await this.#change(vm, VmState.Failed, {
          spec: { ...spec, handle: null },
          error: 'fenced: node partitioned from etcd',
        });
      }).catch((err: unknown) => this.#o.logger.warn({ vmId: id, err }, 'fencing: recording failed'));
    }
    return stopped;
  }

  /**
   * Drain (stop-and-restart elsewhere): stops the VM here (graceful, then forced) and records it
   * `stopped` with `desiredState: running`, so that the region's leader places it on another node.
   * Returns false when the VM is not running here.
   */
  async handBack(id: string): Promise<boolean> {
    return this.#locked(id, async () => {
      const vm = await this.#o.store.vms.get(id);
      if (vm === undefined || vm.node !== this.#o.nodeId || vm.state !== VmState.Running) return false;
      await this.#stopNow(vm, false, 'running');
      return true;
    });
  }

  /** Destroys the local process of a VM whose row is gone or placed on another node. */
  async dropIfNotOurs(id: string): Promise<boolean> {
    return this.#locked(id, async () => {
      const handle = this.#handles.get(id);
      if (!handle) return false;
      const vm = await this.#o.store.vms.get(id);
      if (vm !== undefined && vm.node === this.#o.nodeId) return false;
      this.#expectedExit.add(id);
      try {
        await this.#o.driver.destroy(handle, { force: true });
      } finally {
        this.#detach(id);
        this.#expectedExit.delete(id);
      }
      this.#o.logger.warn(
        { vmId: id, node: vm?.node ?? null },
        'destroyed a local VM process that is not ours',
      );
      return true;
    });
  }

  /** Leaves VMs running (they are re-adopted at the next start) and drops driver connections. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const id of [...this.#handles.keys()]) this.#detach(id);
    await this.#o.driver.close();
  }
}
