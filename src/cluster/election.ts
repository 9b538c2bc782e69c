// Leader election per region: a lease-bound key created in a txn; its create revision is the leader's term.
import { performance } from 'node:perf_hooks';
import type { IKeyValue } from 'etcd3';
import type { EtcdConnection } from './etcd-client.js';
import { Keys } from './keys.js';
import type { Session } from './session.js';
import { cancelWatcher, resilientWatch } from './watch.js';

/** A leadership term: who leads and the etcd revision at which the leader key was created (unique, increasing). */
export interface Term {
  readonly leader: string;
  readonly revision: number;
}

export interface ElectionOptions {
  readonly region: string;
  readonly nodeId: string;
  /** Called when this node becomes leader. */
  readonly onElected?: (term: Term) => void;
  /** Called when this node stops being leader (resigned, fenced, or its key vanished). */
  readonly onDeposed?: (term: Term, reason: 'resigned' | 'fenced' | 'lost') => void;
}

/**
 * Contract:
 * - At most one key `leader/<region>` exists; it is created only when absent (txn on create
 *   revision 0) and bound to the winner's session lease, so it vanishes when that lease expires
 *   or is revoked. Its create revision is the term.
 * - A node considers itself leader from the successful txn until, whichever is first: its
 *   session fences (before the lease can expire, see session.ts), the key is seen deleted or
 *   replaced, or it resigns. So two nodes never believe they lead at the same moment, provided
 *   the margin in fencing.ts holds.
 * - Anything the leader writes must be guarded by `leaderGuard(term)` (assignments.ts does), so
 *   a deposed leader's writes fail in etcd even if it has not noticed yet.
 * - `start()` campaigns until elected, leads until deposed, and campaigns again (after a rejoin
 *   if it was fenced). `stop()` resigns (deletes the key if it is still ours) and stops.
 * - A campaign that finds the key holding this node's id on this session's lease takes that term
 *   up again (the node stopped believing because etcd cancelled its watch, but nobody else can
 *   have led since). The same id on another lease is a previous process's term: waited out.
 */
export class Election {
  private current: Term | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private readonly offFence: () => void;
  private readonly offRejoin: () => void;

  constructor(
    private readonly conn: EtcdConnection,
    private readonly session: Session,
    private readonly opts: ElectionOptions,
  ) {
    this.offFence = session.onFence(() => this.depose('fenced'));
    this.offRejoin = session.onRejoin(() => this.wake?.());
  }

  /** The term this node leads, or undefined. */
  get term(): Term | undefined {
    return this.current;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.offFence();
    this.offRejoin();
    const t = this.current;
    this.wake?.();
    if (t) {
      this.depose('resigned');
      await resign(this.conn, this.opts.region, t).catch(() => undefined);
    }
    await this.loop;
  }

  private depose(reason: 'resigned' | 'fenced' | 'lost'): void {
    const t = this.current;
    if (!t) return;
    this.current = undefined;
    this.opts.onDeposed?.(t, reason);
    this.wake?.();
  }

  private async run(): Promise<void> {
    const key = Keys.leader(this.opts.region);
    while (!this.stopped) {
      if (this.session.state !== 'ready') {
        await this.sleepUntilWoken(1000);
        continue;
      }
      try {
        const lease = this.session.leaseId;
        const res = await this.conn.kv
          .if(key, 'Create', '==', 0)
          .then(this.conn.kv.put(key).value(this.opts.nodeId).lease(lease))
          .else(this.conn.kv.get(key))
          .commit();
        const rev = Number(res.header.revision);
        if (this.stopped) {
          if (res.succeeded)
            await resign(this.conn, this.opts.region, { leader: this.opts.nodeId, revision: rev });
          break;
        }
        const existing = res.succeeded ? undefined : res.responses[0]?.response_range.kvs[0];
        // The key may already be this node's, bound to its live lease: its own term, whose watch
        // ended without a delete (etcd cancelled it) so the node stopped believing. It leads on in
        // that term; waiting for the key to go would leave the region without a leader for as long
        // as this node's session lives.
        const ours =
          existing !== undefined &&
          existing.value.toString('utf8') === this.opts.nodeId &&
          existing.lease === lease;
        if (res.succeeded || ours) {
          if (this.session.state !== 'ready' || this.session.leaseId !== lease) continue;
          const term = {
            leader: this.opts.nodeId,
            revision: res.succeeded ? rev : Number(existing?.create_revision),
          };
          this.current = term;
          this.opts.onElected?.(term);
          // (an adopted term is watched from now, with its create revision to tell a new term by)
          await this.waitKeyGone(key, rev, () => this.current !== term, existing);
          if (this.current === term) this.depose('lost');
        } else {
          await this.waitKeyGone(key, rev, () => this.stopped || this.session.state !== 'ready', existing);
        }
      } catch {
        await this.sleepUntilWoken(250);
      }
    }
  }

  /** Resolves when `key` is deleted (or re-created with another create revision) after `fromRev`, or when `cancelled()` turns true. */
  private async waitKeyGone(
    key: string,
    fromRev: number,
    cancelled: () => boolean,
    existing?: { create_revision: string },
  ): Promise<void> {
    const watcher = await this.conn.kv
      .watch()
      .key(key)
      .startRevision(String(fromRev + 1))
      .create();
    const createRev = existing ? Number(existing.create_revision) : fromRev;
    try {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        if (cancelled()) resolve();
        watcher.on('delete', () => resolve());
        // cancelled by etcd (e.g. fromRev compacted away): the caller's loop reads the key again
        watcher.on('error', () => resolve());
        watcher.on('put', (kv) => {
          if (Number(kv.create_revision) !== createRev) resolve();
        });
      });
    } finally {
      this.wake = undefined;
      await cancelWatcher(watcher);
    }
  }

  private sleepUntilWoken(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

/** Deletes the leader key if it still belongs to `term`. */
export async function resign(conn: EtcdConnection, region: string, term: Term): Promise<boolean> {
  const key = Keys.leader(region);
  const res = await conn.kv
    .if(key, 'Create', '==', term.revision)
    .and(key, 'Value', '==', term.leader)
    .then(conn.kv.delete().key(key))
    .commit();
  return res.succeeded;
}

/** One leadership observed by a watcher: from the revision its key was created to the one it was deleted. */
export interface ObservedTerm extends Term {
  readonly observedAt: number;
  endRevision?: number;
  /** Set when the key was overwritten by another term without being deleted first (a protocol violation). */
  replaced?: boolean;
}

/**
 * Follows `leader/<region>`: a consistent snapshot, then every change. `leader()` is the current
 * leader (or null); `history` lists each term seen, in order, with its end revision once gone.
 */
export class LeaderWatch {
  readonly history: ObservedTerm[] = [];
  private readonly listeners = new Set<(leader: string | null, term: Term | undefined) => void>();
  private cancel: (() => Promise<void>) | undefined;

  private constructor(private readonly now: () => number) {}

  static async start(
    conn: EtcdConnection,
    region: string,
    now = () => performance.now(),
  ): Promise<LeaderWatch> {
    const w = new LeaderWatch(now);
    const onPut = (p: IKeyValue): void => {
      const cur = w.current();
      const rev = Number(p.create_revision);
      if (cur && cur.revision === rev) return;
      if (cur) {
        cur.endRevision = Number(p.mod_revision);
        cur.replaced = true;
      }
      w.begin(p.value.toString('utf8'), rev);
    };
    const watch = await resilientWatch(
      conn,
      { key: Keys.leader(region) },
      {
        onSnapshot: (kvs, revision, resync) => {
          const kv = kvs[0];
          if (!resync) {
            if (kv) w.begin(kv.value.toString('utf8'), Number(kv.create_revision));
            return;
          }
          // after a cancelled watch: the leader now, as a watch would have shown the change
          // (a term that ended unseen is given the next one's create revision, or the snapshot's, as
          // its end: the latest it can have ended)
          const cur = w.current();
          if (kv) {
            if (cur?.revision === Number(kv.create_revision)) return;
            onPut({ ...kv, mod_revision: kv.create_revision });
          } else if (cur) {
            cur.endRevision = revision;
            w.emit();
          }
        },
        onPut,
        onDelete: (d) => {
          const cur = w.current();
          if (cur) cur.endRevision = Number(d.mod_revision);
          w.emit();
        },
      },
    );
    w.cancel = () => watch.cancel();
    return w;
  }

  leader(): string | null {
    return this.current()?.leader ?? null;
  }

  onChange(fn: (leader: string | null, term: Term | undefined) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Resolves once the leader satisfies `pred` (checked now and on each change). */
  waitFor(pred: (leader: string | null) => boolean): Promise<string | null> {
    return new Promise((resolve) => {
      if (pred(this.leader())) return resolve(this.leader());
      const off = this.onChange((l) => {
        if (pred(l)) {
          off();
          resolve(l);
        }
      });
    });
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.cancel?.();
  }

  private current(): ObservedTerm | undefined {
    const last = this.history[this.history.length - 1];
    return last && last.endRevision === undefined ? last : undefined;
  }

  private begin(leader: string, revision: number): void {
    this.history.push({ leader, revision, observedAt: this.now() });
    this.emit();
  }

  private emit(): void {
    const cur = this.current();
    for (const fn of this.listeners) fn(cur?.leader ?? null, cur);
  }
}

/**
 * Invariant over an observed history (pure): terms strictly increase, and each term ended (its key
 * was deleted) at or before the revision the next one was created — no two overlapping terms.
 * Returns the violations, empty when the history is sound.
 */
export function checkTermHistory(
  history: readonly (Term & { endRevision?: number; replaced?: boolean })[],
): string[] {
  const bad: string[] = [];
  for (let i = 1; i < history.length; i++) {
    const prev = history[i - 1];
    const cur = history[i];
    if (!prev || !cur) continue;
    if (cur.revision <= prev.revision)
      bad.push(`term ${cur.revision} (${cur.leader}) does not follow ${prev.revision}`);
    if (prev.replaced === true || prev.endRevision === undefined || prev.endRevision > cur.revision) {
      bad.push(`term ${prev.revision} (${prev.leader}) overlaps term ${cur.revision} (${cur.leader})`);
    }
  }
  return bad;
}
