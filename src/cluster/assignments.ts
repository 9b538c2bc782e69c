// Assignments: the leader writes `assignments/<node>/<vm>` guarded by its term; each node agent watches its own prefix and acks.
import { InvalidStateError, UnavailableError } from '../errors.js';
import type { Term } from './election.js';
import type { EtcdConnection } from './etcd-client.js';
import { relativeKey } from './etcd-client.js';
import { Keys, childName, isValidId } from './keys.js';
import type { Session } from './session.js';
import { resilientWatch, type ResilientWatch } from './watch.js';

/** A placement: run `vm` on `node`. `spec` is opaque here (the VM service defines it). */
export interface Assignment {
  readonly vm: string;
  readonly node: string;
  /** The term of the leader that wrote it. */
  readonly term: number;
  readonly spec?: unknown;
}

export interface AssignmentAck {
  readonly vm: string;
  readonly node: string;
  /** Mod revision of the assignment that was acknowledged. */
  readonly revision: number;
  readonly state: 'accepted' | 'running' | 'failed';
  readonly message?: string;
}

/** Raised when a write guarded by a leadership term finds the term over. */
export function notLeaderError(term: Term): InvalidStateError {
  return new InvalidStateError(
    `node ${term.leader} is no longer leader (term ${term.revision}); write rejected`,
    {
      key: 'cluster.leader',
      hint: 'the current leader retries the placement',
      retryable: false,
    },
  );
}

/**
 * Contract: succeeds only if, in the same etcd transaction, `leader/<region>` still exists with
 * create revision `term.revision` and value `term.leader`; otherwise throws InvalidStateError and
 * writes nothing. A node whose session is partitioned refuses at once (UnavailableError) without
 * asking etcd. Returns the revision of the write.
 */
export async function writeAssignment(
  conn: EtcdConnection,
  session: Session,
  region: string,
  term: Term,
  a: Omit<Assignment, 'term'>,
): Promise<number> {
  if (session.state !== 'ready') {
    throw new UnavailableError('this node is partitioned from etcd and refuses cluster writes', {
      key: 'cluster.etcd.endpoints',
      hint: 'the write can be retried when the node has rejoined',
    });
  }
  if (!isValidId(a.node) || !isValidId(a.vm)) {
    throw new InvalidStateError(`assignment ${a.node}/${a.vm} has an id that is not a key segment`);
  }
  const leaderKey = Keys.leader(region);
  const value: Assignment = { ...a, term: term.revision };
  const res = await conn.kv
    .if(leaderKey, 'Create', '==', term.revision)
    .and(leaderKey, 'Value', '==', term.leader)
    .then(conn.kv.put(Keys.assignment(a.node, a.vm)).value(JSON.stringify(value)))
    .commit();
  if (!res.succeeded) throw notLeaderError(term);
  return Number(res.header.revision);
}

/** Removes an assignment under the same guard as `writeAssignment`. */
export async function removeAssignment(
  conn: EtcdConnection,
  region: string,
  term: Term,
  node: string,
  vm: string,
): Promise<void> {
  const leaderKey = Keys.leader(region);
  const res = await conn.kv
    .if(leaderKey, 'Create', '==', term.revision)
    .and(leaderKey, 'Value', '==', term.leader)
    .then(conn.kv.delete().key(Keys.assignment(node, vm)))
    .commit();
  if (!res.succeeded) throw notLeaderError(term);
}

export function parseAssignment(raw: Buffer | string): Assignment | undefined {
  try {
    const v = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8')) as Partial<Assignment>;
    if (typeof v.vm !== 'string' || typeof v.node !== 'string' || typeof v.term !== 'number')
      return undefined;
    return { vm: v.vm, node: v.node, term: v.term, ...(v.spec === undefined ? {} : { spec: v.spec }) };
  } catch {
    return undefined;
  }
}

export interface AgentHandlers {
  /** A new or changed assignment for this node; resolve with the state to ack. */
  readonly onAssign: (a: Assignment, revision: number) => Promise<AssignmentAck['state']>;
  /** The assignment was removed. */
  readonly onRemove?: (vm: string) => void | Promise<void>;
  /** The ack was written (`written: false`: the assignment changed meanwhile, or etcd refused). */
  readonly onAcked?: (ack: AssignmentAck, written: boolean) => void;
}

/**
 * Contract: the agent reads `assignments/<node>/` at one revision, handles each entry, then
 * watches every later change, so none is missed or handled twice. The changes of one VM are
 * handled serially, in revision order; different VMs concurrently (at most `AGENT_PARALLEL` at
 * once). After `onAssign` it writes `acks/<node>/<vm>` only if the assignment still has the
 * revision it handled (a newer one will be handled and acked in turn).
 */
export const AGENT_PARALLEL = 32;

export class AssignmentAgent {
  /** Tail of each VM's chain of changes (removed when it settles). */
  private readonly chains = new Map<string, Promise<void>>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private cancel: (() => Promise<void>) | undefined;
  private watch: ResilientWatch | undefined;
  /** Assignment revision last taken in per VM (what a re-read after a cancelled watch compares against). */
  private readonly known = new Map<string, number>();
  private closed = false;

  private constructor(
    private readonly conn: EtcdConnection,
    private readonly node: string,
    private readonly handlers: AgentHandlers,
  ) {}

  static async start(
    conn: EtcdConnection,
    node: string,
    handlers: AgentHandlers,
    options: { readonly onTrouble?: (message: string) => void } = {},
  ): Promise<AssignmentAgent> {
    const agent = new AssignmentAgent(conn, node, handlers);
    const prefix = Keys.assignmentsPrefix(node);
    const removed = (vm: string): void => {
      agent.known.delete(vm);
      if (handlers.onRemove) agent.after(vm, async () => handlers.onRemove?.(vm));
    };
    const watch = await resilientWatch(
      conn,
      { prefix },
      {
        onSnapshot: (kvs, _revision, resync) => {
          const present = new Set<string>();
          for (const kv of kvs) {
            const key = relativeKey(conn, kv.key);
            const vm = childName(key, prefix);
            if (vm) present.add(vm);
            // after a cancelled watch, only what changed since it was last handled
            if (!resync || !vm || agent.known.get(vm) !== Number(kv.mod_revision))
              agent.enqueue(key, kv.value, Number(kv.mod_revision));
          }
          if (resync) for (const vm of [...agent.known.keys()]) if (!present.has(vm)) removed(vm);
        },
        onPut: (kv) => agent.enqueue(relativeKey(conn, kv.key), kv.value, Number(kv.mod_revision)),
        onDelete: (kv) => {
          const vm = childName(relativeKey(conn, kv.key), prefix);
          if (vm) removed(vm);
        },
        ...(options.onTrouble ? { onTrouble: options.onTrouble } : {}),
      },
    );
    agent.watch = watch;
    agent.cancel = () => watch.cancel();
    return agent;
  }

  /** How many times the assignment watch was re-read after etcd cancelled it (compaction). */
  get resyncs(): number {
    return this.watch?.resyncs ?? 0;
  }

  /** Resolves when every change seen so far has been handled. */
  async idle(): Promise<void> {
    while (this.chains.size > 0) await Promise.all([...this.chains.values()]);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.cancel?.();
    await this.idle();
  }

  /** Runs `fn` after the VM's earlier changes, within the concurrency limit. Never rejects. */
  private after(vm: string, fn: () => Promise<void>): void {
    const prev = this.chains.get(vm) ?? Promise.resolve();
    const next = prev
      .then(async () => {
        if (this.running >= AGENT_PARALLEL) await new Promise<void>((r) => this.waiting.push(r));
        this.running++;
        try {
          await fn();
        } finally {
          this.running--;
          this.waiting.shift()?.();
        }
      })
      .catch(() => undefined);
    this.chains.set(vm, next);
    void next.then(() => {
      if (this.chains.get(vm) === next) this.chains.delete(vm);
    });
  }

  private enqueue(key: string, raw: Buffer, revision: number): void {
    const vm = childName(key, Keys.assignmentsPrefix(this.node));
    const a = parseAssignment(raw);
    if (!vm || !a) return;
    this.known.set(vm, revision);
    this.after(vm, async () => {
      if (this.closed) return;
      let state: AssignmentAck['state'];
      let message: string | undefined;
      try {
        state = await this.handlers.onAssign(a, revision);
      } catch (e) {
        state = 'failed';
        message = e instanceof Error ? e.message : String(e);
      }
      const ack: AssignmentAck = {
        vm,
        node: this.node,
        revision,
        state,
        ...(message === undefined ? {} : { message }),
      };
      const akey = Keys.assignment(this.node, vm);
      let written = false;
      try {
        const res = await this.conn.kv
          .if(akey, 'Mod', '==', revision)
          .then(this.conn.kv.put(Keys.ack(this.node, vm)).value(JSON.stringify(ack)))
          .commit();
        written = res.succeeded;
      } finally {
        this.handlers.onAcked?.(ack, written);
      }
    });
  }
}

/** Reads the acks of a node (leader side). */
export async function readAcks(conn: EtcdConnection, node: string): Promise<AssignmentAck[]> {
  const res = await conn.kv.getAll().prefix(Keys.acksPrefix(node)).exec();
  const out: AssignmentAck[] = [];
  for (const kv of res.kvs) {
    try {
      out.push(JSON.parse(kv.value.toString('utf8')) as AssignmentAck);
    } catch {
      // not ours
    }
  }
  return out;
}
