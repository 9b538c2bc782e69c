// A node's session with etcd: one lease kept alive, self-fencing before it can expire, and a fresh lease on rejoin.
import { performance } from 'node:perf_hooks';
import type { EtcdConnection } from './etcd-client.js';
import { isRecoverableError } from 'etcd3';
import { withTimeout } from './etcd-client.js';
import { defaultMarginMs, fenceDeadline, recordKeepalive } from './fencing.js';
import type { FenceClock } from './fencing.js';

export type SessionState = 'ready' | 'partitioned' | 'closed';

export interface SessionOptions {
  /** Lease TTL in seconds (cluster.etcd.lease_ttl_seconds). */
  readonly ttlSeconds: number;
  /** Fence this long before the earliest possible expiry (default: fencing.defaultMarginMs). */
  readonly marginMs?: number;
  /** Keepalive period (default TTL/4). */
  readonly keepaliveIntervalMs?: number;
  /** Monotonic clock in ms (default performance.now). */
  readonly now?: () => number;
  /**
   * How long open() keeps asking for its first lease while etcd does not answer (e.g. during an
   * etcd leader election); default: one TTL. Errors etcd answers with (auth, TLS) fail at once.
   */
  readonly openBudgetMs?: number;
}

/** Whether a failed grant may succeed when tried again: no answer in time, or a transient gRPC error. */
function transientGrantError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return /no answer from etcd/.test(err.message) || isRecoverableError(err) || /no leader/i.test(err.message);
}

export interface FenceEvent {
  readonly leaseId: string;
  /** Monotonic ms of the last keepalive etcd confirmed. */
  readonly lastOkSentAt: number;
  /** Earliest monotonic ms at which etcd may expire the lease. */
  readonly earliestExpiry: number;
  readonly at: number;
}

/**
 * Contract:
 * - `open()` grants a lease, asking again for up to `openBudgetMs` (one TTL) while etcd does not
 *   answer, as during an etcd leader election; `leaseId` is the current one. Keepalives go out every interval, each
 *   with a deadline shorter than the interval.
 * - If no keepalive succeeds, `fence` listeners are called once at `lastOkSentAt + TTL - margin`
 *   (see fencing.ts), before etcd can expire the lease; `state` becomes `partitioned`. Listeners
 *   must stop whatever the lease protects (HA VMs, leadership work) synchronously or at once.
 * - A lease etcd reports gone (TTL 0) also fences, at once.
 * - While partitioned the session keeps trying; on the first answer it revokes the old lease
 *   (best effort), grants a new one, sets `state` back to `ready` and calls `rejoin` listeners
 *   with the new lease id (every listener, even if one throws). Whoever put keys under the old lease must put them again (membership
 *   and election do this themselves).
 * - `close()` stops keepalives and revokes the lease (its keys vanish at once).
 */
export class Session {
  private readonly conn: EtcdConnection;
  private readonly ttlMs: number;
  private readonly marginMs: number;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private clock: FenceClock;
  private lease = '';
  private st: SessionState = 'ready';
  private tickTimer: NodeJS.Timeout | undefined;
  private fenceTimer: NodeJS.Timeout | undefined;
  private busy = false;
  private readonly fenceListeners = new Set<(e: FenceEvent) => void>();
  private readonly rejoinListeners = new Set<(leaseId: string) => void | Promise<void>>();

  private constructor(conn: EtcdConnection, opts: SessionOptions) {
    this.conn = conn;
    this.ttlMs = opts.ttlSeconds * 1000;
    this.marginMs = opts.marginMs ?? defaultMarginMs(this.ttlMs);
    this.intervalMs = opts.keepaliveIntervalMs ?? Math.max(100, Math.floor(this.ttlMs / 4));
    this.now = opts.now ?? (() => performance.now());
    this.clock = { lastOkSentAt: 0, ttlMs: this.ttlMs, marginMs: this.marginMs };
  }

  /** Grants the first lease; throws (UnavailableError upstream) when etcd cannot be reached. */
  static async open(conn: EtcdConnection, opts: SessionOptions): Promise<Session> {
    const s = new Session(conn, opts);
    const until = s.now() + (opts.openBudgetMs ?? s.ttlMs);
    for (;;) {
      try {
        await s.grant();
        break;
      } catch (err) {
        // a lease etcd granted after our timeout expires on its own: it holds no keys
        if (!transientGrantError(err) || s.now() >= until) throw err;
        await new Promise((r) => setTimeout(r, 100).unref());
      }
    }
    s.tickTimer = setInterval(() => void s.tick(), s.intervalMs);
    s.tickTimer.unref();
    return s;
  }

  get leaseId(): string {
    return this.lease;
  }
  get state(): SessionState {
    return this.st;
  }
  /** Monotonic ms of the last keepalive etcd confirmed (send time). */
  get lastKeepaliveOkAt(): number {
    return this.clock.lastOkSentAt;
  }
  get ttlSeconds(): number {
    return this.ttlMs / 1000;
  }

  onFence(fn: (e: FenceEvent) => void): () => void {
    this.fenceListeners.add(fn);
    return () => this.fenceListeners.delete(fn);
  }
  onRejoin(fn: (leaseId: string) => void | Promise<void>): () => void {
    this.rejoinListeners.add(fn);
    return () => this.rejoinListeners.delete(fn);
  }

  async close(): Promise<void> {
    if (this.st === 'closed') return;
    this.st = 'closed';
    clearInterval(this.tickTimer);
    clearTimeout(this.fenceTimer);
    try {
      await withTimeout(
        this.conn.client.leaseClient.leaseRevoke({ ID: this.lease }),
        this.conn.callTimeoutMs,
        'revoke',
      );
    } catch {
      // the lease expires by itself
    }
  }

  private async grant(): Promise<void> {
    const sentAt = this.now();
    const res = await withTimeout(
      this.conn.client.leaseClient.leaseGrant({ TTL: this.ttlMs / 1000, ID: 0 }),
      this.conn.retryBudgetMs,
      'lease grant',
    );
    this.lease = String(res.ID);
    this.confirm(sentAt, Number(res.TTL) * 1000);
  }

  private confirm(sentAt: number, ttlMs: number): void {
    this.clock = recordKeepalive(this.clock, sentAt, ttlMs);
    clearTimeout(this.fenceTimer);
    const delay = Math.max(0, fenceDeadline(this.clock) - this.now());
    this.fenceTimer = setTimeout(() => this.fence(), delay);
    this.fenceTimer.unref();
  }

  private fence(): void {
    if (this.st !== 'ready') return;
    this.st = 'partitioned';
    clearTimeout(this.fenceTimer);
    const e: FenceEvent = {
      leaseId: this.lease,
      lastOkSentAt: this.clock.lastOkSentAt,
      earliestExpiry: this.clock.lastOkSentAt + this.clock.ttlMs,
      at: this.now(),
    };
    for (const fn of this.fenceListeners) fn(e);
  }

  private async tick(): Promise<void> {
    if (this.busy || this.st === 'closed') return;
    this.busy = true;
    try {
      if (this.st === 'ready') await this.keepaliveUntilFenced();
      else await this.rejoin();
    } catch {
      // no answer: the next tick tries again
    } finally {
      this.busy = false;
    }
  }

  /** One keepalive; on failure try again at once (another endpoint may answer) until it succeeds or the node fences. */
  private async keepaliveUntilFenced(): Promise<void> {
    for (;;) {
      try {
        await this.keepalive();
        return;
      } catch (e) {
        if (this.st !== 'ready' || this.now() >= fenceDeadline(this.clock)) throw e;
        await new Promise((r) => setTimeout(r, 20).unref());
      }
    }
  }

  private async keepalive(): Promise<void> {
    const sentAt = this.now();
    const deadline = Math.max(50, Math.min(this.conn.callTimeoutMs, Math.floor(this.intervalMs * 0.9)));
    const stream = await withTimeout(
      this.conn.client.leaseClient.leaseKeepAlive(),
      deadline,
      'keepalive stream',
    );
    try {
      const ttl = await withTimeout(
        new Promise<number>((resolve, reject) => {
          stream.on('data', (r) => resolve(Number(r.TTL)));
          stream.on('error', reject);
          stream.write({ ID: this.lease });
        }),
        deadline,
        'keepalive',
      );
      if (this.st !== 'ready') return;
      if (ttl <= 0) this.fence();
      else this.confirm(sentAt, ttl * 1000);
    } finally {
      stream.cancel();
    }
  }

  private async rejoin(): Promise<void> {
    const old = this.lease;
    await withTimeout(
      this.conn.client.leaseClient.leaseRevoke({ ID: old }),
      this.conn.callTimeoutMs,
      'revoke',
    ).catch(() => undefined);
    await this.grant();
    if (this.st === 'closed') return;
    if (this.now() >= fenceDeadline(this.clock)) {
      // The grant was answered too late (sent while still cut off): by the fence clock the new
      // lease may already be close to expiry, so becoming ready would only fence again at once.
      clearTimeout(this.fenceTimer);
      const late = this.lease;
      await withTimeout(
        this.conn.client.leaseClient.leaseRevoke({ ID: late }),
        this.conn.callTimeoutMs,
        'revoke',
      ).catch(() => undefined);
      throw new Error('lease grant answered too late; granting again');
    }
    this.st = 'ready';
    const lease = this.lease;
    // every listener runs even if another fails; a failing listener retries on its own
    await Promise.all(
      [...this.rejoinListeners].map(async (fn) => fn(lease)).map((p) => p.catch(() => undefined)),
    );
  }
}
