// Redis with an in-memory fallback: serves from Redis while it answers, from a bounded LRU while it
// does not (at boot or later), and goes back to Redis when it returns — after removing from Redis
// every entry that the memory period made stale. No request ever fails because Redis is down.
//
//   redis ──(op fails / link closes)──> outage: memory serves, keys written or deleted are tracked
//     ^                                    │ ioredis reconnects ('ready')
//     └──(tracked keys UNLINKed, or the ─ reconcile
//         whole namespace flushed; memory dropped)
//
// Staleness rule (docs/cache.md): an entry Redis held before the outage is stale if the memory
// period wrote or deleted its key. Before switching back, those keys are deleted from Redis. If more
// keys were touched than the tracking bound, or Redis restarted meanwhile (its run_id changed, so it
// may have reloaded a snapshot older than our last writes), the whole NovaCron namespace is flushed
// instead. Memory entries are not copied to Redis: they are dropped, so the first reads after the
// switch miss and reload from the source of truth.
import type { Logger } from 'pino';
import type { ComponentHealth } from '../boot/component.js';
import { UnavailableError, errorMessage } from '../errors.js';
import type { Cache, CacheBackend, CacheSetOptions } from './cache.js';
import { decodeValue, encodeValue, requireKey } from './codec.js';
import type { MemoryCache } from './memory-cache.js';
import type { CacheMetrics } from './metrics.js';
import type { RedisCache } from './redis-cache.js';

export interface FallbackCacheOptions {
  readonly redis: RedisCache;
  /** The fallback; undefined when `cache.fallback_to_memory` is false (requests then miss while
   *  Redis is down, and a Redis that is down at boot is fatal). */
  readonly memory?: MemoryCache;
  readonly defaultTtlSeconds: number;
  /** Most keys tracked during an outage before falling back to a namespace flush. Default 10 000. */
  readonly maxTrackedKeys?: number;
  readonly metrics?: CacheMetrics;
  readonly logger?: Pick<Logger, 'info' | 'warn'>;
  /** Pause before retrying a failed reconciliation while Redis is connected. Default 1000 ms. */
  readonly reconcileRetryMs?: number;
}

type Mode = 'redis' | 'outage';
const MAX_RECONCILE_ROUNDS = 3;

export class FallbackCache implements Cache {
  readonly #redis: RedisCache;
  readonly #memory: MemoryCache | undefined;
  readonly #ttl: number;
  readonly #maxTracked: number;
  readonly #metrics: CacheMetrics | undefined;
  readonly #logger: Pick<Logger, 'info' | 'warn'> | undefined;
  readonly #retryMs: number;
  readonly #listeners = new Set<(h: ComponentHealth) => void>();
  #mode: Mode = 'outage';
  #cause = 'not connected yet';
  /** Keys written or deleted during the outage, with the sequence number of their last change. */
  readonly #dirty = new Map<string, number>();
  #seq = 0;
  #overflow = false;
  /** Keys whose Redis copy may still be stale right after a switch back (their UNLINK is in
   *  flight): reads miss until it completes; a write through Redis makes them fresh again. */
  readonly #pending = new Set<string>();
  /** run_id of the Redis server we last served from. */
  #runId: string | undefined;
  #reconciling: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  #started = false;
  #closed = false;

  constructor(options: FallbackCacheOptions) {
    this.#redis = options.redis;
    this.#memory = options.memory;
    this.#ttl = options.defaultTtlSeconds;
    this.#maxTracked = options.maxTrackedKeys ?? 10_000;
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    this.#retryMs = options.reconcileRetryMs ?? 1000;
  }

  /**
   * Connects to Redis. Unreachable: with a memory fallback, resolves in memory mode and keeps
   * reconnecting; without, rejects with UnavailableError naming the address and the cause.
   */
  async start(): Promise<void> {
    this.#unsubscribe = this.#redis.onLink((e) => {
      if (!this.#started) return; // start() itself handles the first connection
      if (e.type === 'down') this.#enterOutage(e.cause);
      else if (this.#mode === 'outage') this.#startReconcile();
    });
    try {
      await this.#redis.connect();
      this.#runId = await this.#redis.runId();
      this.#started = true;
      this.#switchToRedis();
      // The link may have dropped while we asked for the run_id: the event was ignored, so check.
      if (!this.#redis.isReady) this.#enterOutage(this.#redis.lastError);
    } catch (err) {
      this.#started = true;
      this.#cause = this.#redis.lastError;
      if (this.#memory === undefined) {
        await this.close();
        throw new UnavailableError(
          `cache unavailable: redis ${this.#redis.address}: ${this.#cause} (cache.fallback_to_memory is false)`,
          {
            cause: err,
            key: 'cache.address',
            retryable: false,
            hint: 'start Redis, correct cache.address / cache.password, or set cache.fallback_to_memory: true',
          },
        );
      }
      this.#mode = 'redis'; // so that #enterOutage records the transition
      this.#enterOutage(this.#cause);
      // Redis may have come up since the failed attempt: its 'ready' was ignored, so check.
      if (this.#redis.isReady) this.#startReconcile();
    }
  }

  /** Subscribes to health changes (backend switches); returns the unsubscribe function. */
  onChange(listener: (h: ComponentHealth) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #notify(): void {
    const h = this.health();
    for (const l of this.#listeners) {
      try {
        l(h);
      } catch {
        // a listener's failure must not break the cache
      }
    }
  }

  #enterOutage(cause: string): void {
    if (this.#mode === 'outage' || this.#closed) return;
    this.#cause = cause;
    this.#mode = 'outage';
    this.#dirty.clear();
    this.#overflow = false;
    // Keys still awaiting invalidation from the last switch back stay owed.
    for (const k of this.#pending) this.#dirty.set(k, ++this.#seq);
    this.#pending.clear();
    this.#memory?.clear();
    this.#metrics?.setBackend(this.#memory === undefined ? undefined : 'memory');
    this.#logger?.warn(
      { address: this.#redis.address, cause },
      this.#memory === undefined
        ? 'redis unreachable; cache requests miss until it returns'
        : 'redis unreachable; cache serving from memory until it returns',
    );
    // Commands failed on a link that still looks open (a hung Redis): drop it, so that the server
    // answering again shows up as a fresh 'ready' and triggers the switch back.
    if (this.#redis.isReady) this.#redis.reconnect();
    this.#notify();
  }

  #switchToRedis(): void {
    this.#mode = 'redis';
    this.#memory?.clear();
    this.#metrics?.setBackend('redis');
    this.#notify();
  }

  #markDirty(key: string): void {
    if (this.#overflow) return;
    this.#dirty.set(key, ++this.#seq);
    if (this.#dirty.size > this.#maxTracked) {
      this.#overflow = true;
      this.#dirty.clear();
    }
  }

  #startReconcile(): void {
    if (this.#reconciling !== undefined || this.#closed) return;
    this.#reconciling = this.#reconcile().finally(() => {
      this.#reconciling = undefined;
    });
  }

  /** Makes Redis safe to serve from again (see the staleness rule at the top), then switches. */
  async #reconcile(): Promise<void> {
    try {
      const runId = await this.#redis.runId();
      if (this.#runId !== undefined && runId !== this.#runId) this.#overflow = true;
      let flushed = 0;
      let removed = 0;
      for (let round = 1; this.#mode === 'outage' && !this.#closed; round++) {
        if (this.#overflow) {
          this.#overflow = false;
          this.#dirty.clear();
          flushed += await this.#redis.flushNamespace();
        } else {
          const snapshot = [...this.#dirty.entries()];
          if (snapshot.length > 0) {
            removed += await this.#redis.deleteMany(snapshot.map(([k]) => k));
            for (const [k, seq] of snapshot) if (this.#dirty.get(k) === seq) this.#dirty.delete(k);
          }
        }
        if (!this.#redis.isReady) return;
        // Writes keep landing in memory while we await; under steady load the set never empties.
        // After a few rounds, switch anyway and treat the few keys left as pending (see #pending).
        // Synchronous from here: no cache operation can interleave between the check and the switch.
        if (!this.#overflow && (this.#dirty.size === 0 || round >= MAX_RECONCILE_ROUNDS)) {
          const residual = [...this.#dirty.keys()];
          this.#runId = runId;
          this.#dirty.clear();
          for (const k of residual) this.#pending.add(k);
          this.#switchToRedis();
          if (residual.length > 0) this.#drainPending(residual);
          this.#logger?.info(
            { address: this.#redis.address, invalidated: removed + residual.length, flushed },
            'redis is back; cache serving from redis again',
          );
        }
      }
    } catch (err) {
      this.#cause = errorMessage(err);
      if (this.#redis.isReady && !this.#closed) {
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          if (this.#mode === 'outage' && this.#redis.isReady) this.#startReconcile();
        }, this.#retryMs);
        this.#retryTimer.unref();
      }
    }
  }

  /** UNLINKs keys left over at the switch. Sent before any later command on the same connection,
   *  so a write issued after the switch is never undone by it out of order. */
  #drainPending(keys: readonly string[]): void {
    this.#redis.deleteMany(keys).then(
      () => {
        for (const k of keys) this.#pending.delete(k);
      },
      (err: unknown) => this.#enterOutage(errorMessage(err)),
    );
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    requireKey(key);
    if (this.#mode === 'redis' && this.#pending.has(key)) {
      this.#metrics?.count(false, 'redis');
      return undefined;
    }
    if (this.#mode === 'redis') {
      try {
        const value = decodeValue<T>(await this.#redis.getJson(key));
        this.#metrics?.count(value !== undefined, 'redis');
        return value;
      } catch (err) {
        this.#enterOutage(errorMessage(err));
      }
    }
    if (this.#memory === undefined) {
      this.#metrics?.count(false, 'none');
      return undefined;
    }
    const value = decodeValue<T>(this.#memory.peekJson(key));
    this.#metrics?.count(value !== undefined, 'memory');
    return value;
  }

  async set(key: string, value: unknown, options: CacheSetOptions = {}): Promise<void> {
    requireKey(key);
    const json = encodeValue(value);
    const ttl = options.ttlSeconds ?? this.#ttl;
    if (this.#mode === 'redis') {
      try {
        await this.#redis.setJson(key, json, ttl);
        this.#pending.delete(key);
        return;
      } catch (err) {
        // Redis may or may not have applied it: the key is tracked below either way.
        this.#enterOutage(errorMessage(err));
      }
    }
    this.#markDirty(key);
    this.#memory?.putJson(key, json, ttl);
  }

  async delete(key: string): Promise<boolean> {
    requireKey(key);
    if (this.#mode === 'redis') {
      try {
        const removed = await this.#redis.delete(key);
        this.#pending.delete(key);
        return removed;
      } catch (err) {
        this.#enterOutage(errorMessage(err));
      }
    }
    this.#markDirty(key);
    return this.#memory?.remove(key) ?? false;
  }

  async getOrSet<T>(key: string, load: () => Promise<T>, options: CacheSetOptions = {}): Promise<T> {
    const hit = await this.get<T>(key);
    if (hit !== undefined) return hit;
    const value = await load();
    await this.set(key, value, options);
    return value;
  }

  backend(): CacheBackend | undefined {
    if (this.#mode === 'redis') return 'redis';
    return this.#memory === undefined ? undefined : 'memory';
  }

  health(): ComponentHealth {
    const address = this.#redis.address;
    if (this.#closed) return { status: 'down', detail: `redis ${address}: closed` };
    if (this.#mode === 'redis') return { status: 'up', detail: `redis ${address}` };
    if (this.#memory !== undefined) {
      return {
        status: 'degraded',
        detail: `memory: redis ${address} unreachable (${this.#cause}); reconnecting`,
      };
    }
    return {
      status: 'down',
      detail: `redis ${address} unreachable (${this.#cause}); reconnecting; requests miss (cache.fallback_to_memory is false)`,
    };
  }

  /** Stops reconnecting, closes Redis, drops memory. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe?.();
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#listeners.clear();
    this.#memory?.clear();
    this.#metrics?.setBackend(undefined);
    await this.#redis.close();
  }
}
