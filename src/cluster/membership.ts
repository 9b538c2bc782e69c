// Membership: a node registers itself under its session lease; others follow the live node list by watch.
import { ConflictError, ValidationError } from '../errors.js';
import type { EtcdConnection } from './etcd-client.js';
import { relativeKey } from './etcd-client.js';
import { Keys, childName, isValidId } from './keys.js';
import type { Session } from './session.js';
import { resilientWatch, type ResilientWatch } from './watch.js';

/** What a node tells the region about itself. */
export interface NodeInfo {
  readonly id: string;
  /** API addresses (`host:port`), the first is the one reported by cluster status. */
  readonly addresses: readonly string[];
  readonly capacity: { readonly cpus: number; readonly memoryMiB: number; readonly diskGiB?: number };
  readonly labels: Readonly<Record<string, string>>;
  /** VM driver in use (qemu, sim …). */
  readonly driver: string;
  /** Set by drain: the node takes no new placements. */
  readonly draining?: boolean;
  /**
   * URL of the node's gRPC server (`http://host:port`, `https://` when it serves TLS): where peers
   * reach its MigrationService, so a drain can live-migrate without static `cluster.peers`.
   */
  readonly grpcUrl?: string;
  /** Base URL of the node's REST API (`http://host:port` or `https://…`): where VM operations are forwarded. */
  readonly apiUrl?: string;
}

/** Parses a stored NodeInfo; undefined for a value that is not one (written by something else). */
export function parseNodeInfo(raw: Buffer | string): NodeInfo | undefined {
  try {
    const v = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8')) as Partial<NodeInfo>;
    if (typeof v.id !== 'string' || !Array.isArray(v.addresses) || typeof v.driver !== 'string')
      return undefined;
    return {
      id: v.id,
      addresses: v.addresses.filter((a): a is string => typeof a === 'string'),
      capacity: v.capacity ?? { cpus: 0, memoryMiB: 0 },
      labels: v.labels ?? {},
      driver: v.driver,
      ...(v.draining === true ? { draining: true } : {}),
      ...(typeof v.grpcUrl === 'string' && v.grpcUrl !== '' ? { grpcUrl: v.grpcUrl } : {}),
      ...(typeof v.apiUrl === 'string' && v.apiUrl !== '' ? { apiUrl: v.apiUrl } : {}),
    };
  } catch {
    return undefined;
  }
}

/**
 * Contract: `Membership.join` writes `nodes/<id>` (durable) and `members/<id>` under the session
 * lease, refusing (ConflictError) when another live lease holds the same id. When the session
 * rejoins after a partition it writes `members/<id>` again under the new lease. `leave()` deletes
 * the member key (others see the node leave at once; a crash is seen when the lease expires).
 */
export class Membership {
  private info: NodeInfo;
  private readonly unsubscribe: () => void;

  private constructor(
    private readonly conn: EtcdConnection,
    private readonly session: Session,
    info: NodeInfo,
  ) {
    this.info = info;
    this.unsubscribe = session.onRejoin(async (lease) => {
      // retry until written, unless the session moved on (fenced again, or a newer lease)
      while (session.state === 'ready' && session.leaseId === lease) {
        try {
          await this.putMember(lease);
          return;
        } catch (e) {
          if (e instanceof ConflictError) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    });
  }

  static async join(conn: EtcdConnection, session: Session, info: NodeInfo): Promise<Membership> {
    if (!isValidId(info.id)) {
      throw new ValidationError(`node id ${JSON.stringify(info.id)} is not a valid key segment`, {
        key: 'system.node_id',
        hint: 'use letters, digits, . _ : - (at most 128)',
      });
    }
    const m = new Membership(conn, session, info);
    await conn.kv.put(Keys.node(info.id)).value(JSON.stringify(info));
    await m.putMember(session.leaseId);
    return m;
  }

  get self(): NodeInfo {
    return this.info;
  }

  /** Marks this node draining (or not); it stays a member. */
  async setDraining(draining: boolean): Promise<void> {
    const { draining: _old, ...rest } = this.info;
    this.info = draining ? { ...rest, draining: true } : rest;
    await this.putMember(this.session.leaseId);
  }

  async leave(): Promise<void> {
    this.unsubscribe();
    await this.conn.kv.delete().key(Keys.member(this.info.id));
  }

  private async putMember(lease: string): Promise<void> {
    const key = Keys.member(this.info.id);
    const value = JSON.stringify(this.info);
    const created = await this.conn.kv
      .if(key, 'Create', '==', 0)
      .then(this.conn.kv.put(key).value(value).lease(lease))
      .commit();
    if (created.succeeded) return;
    const updated = await this.conn.kv
      .if(key, 'Lease', '==', lease)
      .then(this.conn.kv.put(key).value(value).lease(lease))
      .commit();
    if (updated.succeeded) return;
    throw new ConflictError(`node id ${this.info.id} is already registered by another live process`, {
      key: 'system.node_id',
      hint: 'each node needs its own system.node_id; a crashed node frees its id when its lease expires',
    });
  }
}

export interface MemberChange {
  readonly type: 'join' | 'update' | 'leave';
  readonly id: string;
  /** The node's info (for leave: its last known info). */
  readonly node: NodeInfo | undefined;
  /** etcd revision of the change. */
  readonly revision: number;
}

/**
 * Contract: `watchMembers` reads the live members at one revision R (the initial snapshot) and
 * watches every change after R, so no join or leave between the read and the watch is lost or
 * seen twice. `nodes()` is the current set; listeners get each change in revision order.
 */
export class MemberWatch {
  private readonly members = new Map<string, NodeInfo>();
  private readonly listeners = new Set<(c: MemberChange) => void>();
  private cancel: (() => Promise<void>) | undefined;
  private watch: ResilientWatch | undefined;
  /** Revision of the initial snapshot. */
  snapshotRevision = 0;

  private constructor(private readonly conn: EtcdConnection) {}

  static async start(
    conn: EtcdConnection,
    options: { readonly onTrouble?: (message: string) => void } = {},
  ): Promise<MemberWatch> {
    const w = new MemberWatch(conn);
    const idOf = (key: Buffer): string | undefined => childName(relativeKey(conn, key), Keys.membersPrefix);
    const watch = await resilientWatch(
      conn,
      { prefix: Keys.membersPrefix },
      {
        onSnapshot: (kvs, revision, resync) => {
          const now = new Map<string, NodeInfo>();
          for (const kv of kvs) {
            const info = parseNodeInfo(kv.value);
            if (info) now.set(info.id, info);
          }
          if (!resync) {
            w.snapshotRevision = revision;
            for (const [id, info] of now) w.members.set(id, info);
            return;
          }
          // after a cancelled watch: what changed meanwhile, as the changes a watch would have shown
          for (const [id, last] of [...w.members]) {
            if (now.has(id)) continue;
            w.members.delete(id);
            w.emit({ type: 'leave', id, node: last, revision });
          }
          for (const [id, info] of now) {
            const last = w.members.get(id);
            if (last && JSON.stringify(last) === JSON.stringify(info)) continue;
            w.members.set(id, info);
            w.emit({ type: last ? 'update' : 'join', id, node: info, revision });
          }
        },
        onPut: (kv) => {
          const id = idOf(kv.key);
          const info = parseNodeInfo(kv.value);
          if (!id || !info) return;
          const type = w.members.has(id) ? 'update' : 'join';
          w.members.set(id, info);
          w.emit({ type, id, node: info, revision: Number(kv.mod_revision) });
        },
        onDelete: (kv) => {
          const id = idOf(kv.key);
          if (!id) return;
          const last = w.members.get(id);
          w.members.delete(id);
          w.emit({ type: 'leave', id, node: last, revision: Number(kv.mod_revision) });
        },
        ...(options.onTrouble ? { onTrouble: options.onTrouble } : {}),
      },
    );
    w.watch = watch;
    w.cancel = () => watch.cancel();
    return w;
  }

  /** How many times the member watch was re-read after etcd cancelled it (compaction). */
  get resyncs(): number {
    return this.watch?.resyncs ?? 0;
  }

  nodes(): NodeInfo[] {
    return [...this.members.values()];
  }

  has(id: string): boolean {
    return this.members.has(id);
  }

  onChange(fn: (c: MemberChange) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Resolves with the first change (from now on) that satisfies `pred`. */
  waitFor(pred: (c: MemberChange) => boolean): Promise<MemberChange> {
    return new Promise((resolve) => {
      const off = this.onChange((c) => {
        if (pred(c)) {
          off();
          resolve(c);
        }
      });
    });
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.cancel?.();
  }

  private emit(c: MemberChange): void {
    for (const fn of this.listeners) fn(c);
  }
}

/** Every node that ever joined (durable records), for status. */
export async function listKnownNodes(conn: EtcdConnection): Promise<NodeInfo[]> {
  const res = await conn.kv.getAll().prefix(Keys.nodesPrefix).exec();
  return res.kvs.map((kv) => parseNodeInfo(kv.value)).filter((n): n is NodeInfo => n !== undefined);
}
