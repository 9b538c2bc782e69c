// A watch that survives compaction: read a key or prefix at one revision R, then watch every change
// after R. When etcd cancels the watch (its start revision was compacted away while this node was
// cut off, or any other server-side cancel), the etcd3 client emits `error` on the watcher; here that
// means: read the key or prefix again at the current revision, hand the new snapshot to the caller
// (who reconciles: what vanished, what appeared, what changed), and watch on from there. Without
// this an unhandled `error` event would end the process, and a member or assignment list would
// stop changing for good.
import type { IKeyValue, Watcher } from 'etcd3';
import type { EtcdConnection } from './etcd-client.js';

export type WatchTarget = { readonly key: string } | { readonly prefix: string };

export interface WatchHandlers {
  /**
   * The whole key or prefix at `revision`: once at the start (`resync` false), and again after
   * etcd cancelled the watch (`resync` true: changes between the last event and `revision` are
   * only visible as the difference between what the caller holds and this snapshot).
   */
  readonly onSnapshot: (kvs: readonly IKeyValue[], revision: number, resync: boolean) => void;
  readonly onPut: (kv: IKeyValue) => void;
  readonly onDelete: (kv: IKeyValue) => void;
  /** Told each cancel and each failed re-read (for the log); the watch keeps trying. */
  readonly onTrouble?: (message: string) => void;
}

export interface ResilientWatch {
  /** How many times the watch was re-established from a fresh snapshot. */
  readonly resyncs: number;
  cancel(): Promise<void>;
}

const BACKOFF_MS = [100, 250, 500, 1000, 2000] as const;

/** Reads `target` and watches it from the next revision on, re-reading after any server cancel. */
export async function resilientWatch(
  conn: EtcdConnection,
  target: WatchTarget,
  handlers: WatchHandlers,
  options: { readonly startRevision?: number } = {},
): Promise<ResilientWatch> {
  let watcher: Watcher | undefined;
  let closed = false;
  let resyncs = 0;

  const read = async (): Promise<{ kvs: IKeyValue[]; revision: number }> => {
    const res =
      'key' in target
        ? await conn.kv.get(target.key).exec()
        : await conn.kv.getAll().prefix(target.prefix).exec();
    return { kvs: res.kvs, revision: Number(res.header.revision) };
  };

  const open = async (fromRevision: number): Promise<Watcher> => {
    const b = conn.kv.watch();
    const w = await ('key' in target ? b.key(target.key) : b.prefix(target.prefix))
      .startRevision(String(fromRevision))
      .create();
    w.on('put', (kv) => handlers.onPut(kv));
    w.on('delete', (kv) => handlers.onDelete(kv));
    w.on('error', (err: Error) => {
      if (closed || watcher !== w) return;
      // etcd cancelled it and the client dropped it already: no cancel of ours (it would wait for
      // an end that never comes)
      handlers.onTrouble?.(`watch cancelled by etcd (${err.message}): reading again`);
      void resync();
    });
    return w;
  };

  const resync = async (): Promise<void> => {
    for (let attempt = 0; !closed; attempt++) {
      try {
        const snap = await read();
        if (closed) return;
        const w = await open(snap.revision + 1);
        if (closed) {
          await cancelWatcher(w);
          return;
        }
        watcher = w;
        resyncs++;
        handlers.onSnapshot(snap.kvs, snap.revision, true);
        return;
      } catch (err) {
        handlers.onTrouble?.(`re-reading after a cancelled watch failed: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)]));
      }
    }
  };

  if (options.startRevision === undefined) {
    const snap = await read();
    handlers.onSnapshot(snap.kvs, snap.revision, false);
    watcher = await open(snap.revision + 1);
  } else {
    // The caller holds the state up to startRevision − 1 (a compacted start resyncs like a cancel).
    watcher = await open(options.startRevision);
  }

  return {
    get resyncs() {
      return resyncs;
    },
    async cancel() {
      closed = true;
      if (watcher) await cancelWatcher(watcher);
    },
  };
}

/**
 * Cancels an etcd3 watcher, waiting at most `ms`. The client's cancel waits for etcd's answer (or
 * for the watch to connect first), which never comes while the connection is down or when etcd
 * had cancelled the watch itself; a shutdown must not hang on it.
 */
export async function cancelWatcher(w: Watcher, ms = 1000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    w.cancel().catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      timer.unref();
    }),
  ]);
  clearTimeout(timer);
}
