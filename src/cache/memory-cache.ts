// A bounded in-memory LRU with per-entry TTL: the embedded cache, and the fallback while Redis is
// unreachable. Entries are kept as JSON text so that callers get copies, as they would from Redis.
import type { ComponentHealth } from '../boot/component.js';
import type { Cache, CacheBackend, CacheSetOptions } from './cache.js';
import { encodeValue, requireKey } from './codec.js';
import type { CacheMetrics } from './metrics.js';

interface Entry {
  readonly json: string;
  readonly expiresAt: number;
}

export interface MemoryCacheOptions {
  /** Most entries kept; the least recently used goes first. */
  readonly maxEntries: number;
  readonly defaultTtlSeconds: number;
  /** Milliseconds clock (injected for tests). */
  readonly now?: () => number;
  readonly metrics?: CacheMetrics;
  /** Health detail when used on its own. */
  readonly detail?: string;
}

export class MemoryCache implements Cache {
  readonly #entries = new Map<string, Entry>();
  readonly #max: number;
  readonly #ttl: number;
  readonly #now: () => number;
  readonly #metrics: CacheMetrics | undefined;
  readonly #detail: string;

  constructor(options: MemoryCacheOptions) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1) {
      throw new RangeError(`maxEntries must be a positive integer, got ${options.maxEntries}`);
    }
    this.#max = options.maxEntries;
    this.#ttl = options.defaultTtlSeconds;
    this.#now = options.now ?? Date.now;
    this.#metrics = options.metrics;
    this.#detail = options.detail ?? `memory (LRU, at most ${options.maxEntries} entries)`;
    this.#metrics?.setBackend('memory');
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Synchronous core of get (used by FallbackCache); undefined on a miss. Counts no metrics. */
  peekJson(key: string): string | undefined {
    const e = this.#entries.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    // Re-insert: Map keeps insertion order, so the first key is always the least recently used.
    this.#entries.delete(key);
    this.#entries.set(key, e);
    return e.json;
  }

  putJson(key: string, json: string, ttlSeconds: number): void {
    this.#entries.delete(key);
    this.#entries.set(key, { json, expiresAt: this.#now() + ttlSeconds * 1000 });
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
  }

  remove(key: string): boolean {
    return this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    requireKey(key);
    const json = this.peekJson(key);
    this.#metrics?.count(json !== undefined, 'memory');
    return json === undefined ? undefined : (JSON.parse(json) as T);
  }

  async set(key: string, value: unknown, options: CacheSetOptions = {}): Promise<void> {
    requireKey(key);
    this.putJson(key, encodeValue(value), options.ttlSeconds ?? this.#ttl);
  }

  async delete(key: string): Promise<boolean> {
    requireKey(key);
    return this.remove(key);
  }

  async getOrSet<T>(key: string, load: () => Promise<T>, options: CacheSetOptions = {}): Promise<T> {
    const hit = await this.get<T>(key);
    if (hit !== undefined) return hit;
    const value = await load();
    await this.set(key, value, options);
    return value;
  }

  backend(): CacheBackend {
    return 'memory';
  }

  health(): ComponentHealth {
    return { status: 'up', detail: this.#detail };
  }

  async close(): Promise<void> {
    this.clear();
  }
}
