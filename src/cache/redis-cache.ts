// Redis behind the Cache interface, strict: an operation on an unreachable Redis rejects with
// UnavailableError at once (no offline queue, bounded command time) so that FallbackCache can
// switch to memory without stalling requests. ioredis keeps reconnecting in the background.
import { Redis } from 'ioredis';
import type { ComponentHealth } from '../boot/component.js';
import { UnavailableError, errorMessage } from '../errors.js';
import type { Cache, CacheBackend, CacheSetOptions } from './cache.js';
import { decodeValue, encodeValue, parseRedisAddress, requireKey } from './codec.js';
import type { CacheMetrics } from './metrics.js';

export interface RedisCacheOptions {
  /** `host:port` (cache.address). */
  readonly address: string;
  readonly password?: string;
  readonly defaultTtlSeconds: number;
  /** Prepended to every key, so NovaCron's entries can be found and flushed. Default `novacron:cache:`. */
  readonly prefix?: string;
  /** Default 1000 ms. */
  readonly connectTimeoutMs?: number;
  /** A command without an answer after this long fails (a hung Redis). Default 500 ms. */
  readonly commandTimeoutMs?: number;
  /** Longest pause between reconnection attempts. Default 1000 ms. */
  readonly maxReconnectDelayMs?: number;
  readonly metrics?: CacheMetrics;
}

export type RedisLinkEvent = { readonly type: 'ready' } | { readonly type: 'down'; readonly cause: string };

const UNLINK_CHUNK = 500;

export class RedisCache implements Cache {
  readonly address: string;
  readonly prefix: string;
  readonly client: Redis;
  readonly #ttl: number;
  readonly #metrics: CacheMetrics | undefined;
  readonly #listeners = new Set<(e: RedisLinkEvent) => void>();
  #lastError = 'not connected yet';
  /** Last connection-level error (refused, reset, auth …): the useful cause while the link is down. */
  #linkError: string | undefined;
  #closed = false;

  constructor(options: RedisCacheOptions) {
    const { host, port } = parseRedisAddress(options.address);
    this.address = `${host}:${port}`;
    this.prefix = options.prefix ?? 'novacron:cache:';
    this.#ttl = options.defaultTtlSeconds;
    this.#metrics = options.metrics;
    const maxDelay = options.maxReconnectDelayMs ?? 1000;
    this.client = new Redis({
      host,
      port,
      ...(options.password === undefined || options.password === '' ? {} : { password: options.password }),
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: options.connectTimeoutMs ?? 1000,
      commandTimeout: options.commandTimeoutMs ?? 500,
      // Never give up: a cache that comes back must be used again without a restart.
      retryStrategy: (attempt: number) => Math.min(50 * attempt, maxDelay),
    });
    this.client.on('error', (err: unknown) => {
      this.#lastError = errorMessage(err);
      this.#linkError = this.#lastError;
    });
    this.client.on('ready', () => {
      this.#linkError = undefined;
      this.#emit({ type: 'ready' });
    });
    this.client.on('close', () => {
      if (!this.#closed) this.#emit({ type: 'down', cause: this.#linkError ?? 'connection closed' });
    });
  }

  /** Subscribes to link changes (ready / down); returns the unsubscribe function. */
  onLink(listener: (e: RedisLinkEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(e: RedisLinkEvent): void {
    for (const l of this.#listeners) l(e);
  }

  get lastError(): string {
    return this.#lastError;
  }

  get isReady(): boolean {
    return this.client.status === 'ready';
  }

  /** Drops the connection and reconnects at once: used when commands time out on a link that still
   *  looks open (a hung server), so that recovery is signalled by a fresh 'ready'. */
  reconnect(): void {
    if (!this.#closed) this.client.disconnect(true);
  }

  /** First connection; rejects with UnavailableError (ioredis goes on reconnecting regardless). */
  async connect(): Promise<void> {
    try {
      await this.client.connect();
    } catch (err) {
      throw this.#unavailable(err);
    }
  }

  #unavailable(err: unknown): UnavailableError {
    // While the link is down, "Connection is closed" says less than the connection error behind it.
    this.#lastError = !this.isReady && this.#linkError !== undefined ? this.#linkError : errorMessage(err);
    return new UnavailableError(`cache unavailable: redis ${this.address}: ${this.#lastError}`, {
      cause: err,
      key: 'cache.address',
    });
  }

  async #run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.#unavailable(err);
    }
  }

  async getJson(key: string): Promise<string | null> {
    return this.#run(() => this.client.get(this.prefix + key));
  }

  async setJson(key: string, json: string, ttlSeconds: number): Promise<void> {
    await this.#run(() => this.client.set(this.prefix + key, json, 'EX', Math.max(1, Math.ceil(ttlSeconds))));
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    requireKey(key);
    const value = decodeValue<T>(await this.getJson(key));
    this.#metrics?.count(value !== undefined, 'redis');
    return value;
  }

  async set(key: string, value: unknown, options: CacheSetOptions = {}): Promise<void> {
    requireKey(key);
    await this.setJson(key, encodeValue(value), options.ttlSeconds ?? this.#ttl);
  }

  async delete(key: string): Promise<boolean> {
    requireKey(key);
    return (await this.#run(() => this.client.unlink(this.prefix + key))) > 0;
  }

  /** Removes these keys (chunked UNLINK); returns how many existed. */
  async deleteMany(keys: readonly string[]): Promise<number> {
    let n = 0;
    for (let i = 0; i < keys.length; i += UNLINK_CHUNK) {
      const chunk = keys.slice(i, i + UNLINK_CHUNK).map((k) => this.prefix + k);
      if (chunk.length > 0) n += await this.#run(() => this.client.unlink(...chunk));
    }
    return n;
  }

  /** Removes every NovaCron cache entry (SCAN over the prefix, then UNLINK); returns how many. */
  async flushNamespace(): Promise<number> {
    let cursor = '0';
    let n = 0;
    do {
      const [next, keys] = await this.#run(() =>
        this.client.scan(cursor, 'MATCH', `${this.prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 1000),
      );
      cursor = next;
      if (keys.length > 0) n += await this.#run(() => this.client.unlink(...keys));
    } while (cursor !== '0');
    return n;
  }

  /** The server's run_id: it changes when Redis restarts (and may have reloaded older data). */
  async runId(): Promise<string> {
    const info = await this.#run(() => this.client.info('server'));
    return /run_id:([0-9a-f]+)/.exec(info)?.[1] ?? '';
  }

  async getOrSet<T>(key: string, load: () => Promise<T>, options: CacheSetOptions = {}): Promise<T> {
    const hit = await this.get<T>(key);
    if (hit !== undefined) return hit;
    const value = await load();
    await this.set(key, value, options);
    return value;
  }

  backend(): CacheBackend | undefined {
    return this.isReady ? 'redis' : undefined;
  }

  health(): ComponentHealth {
    return this.isReady
      ? { status: 'up', detail: `redis ${this.address}` }
      : { status: 'down', detail: `redis ${this.address} unreachable: ${this.#lastError}` };
  }

  /** Stops reconnecting and closes the connection. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    if (this.client.status === 'ready') {
      try {
        await this.client.quit();
        return;
      } catch {
        // fall through to a hard disconnect
      }
    }
    this.client.disconnect();
  }
}
