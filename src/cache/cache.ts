// The one cache interface NovaCron code uses, whatever the backend (Redis, in-memory LRU, or Redis
// with an in-memory fallback). Values are stored as JSON: what you get back is a fresh copy.
import type { ComponentHealth } from '../boot/component.js';

export const CacheBackend = { Redis: 'redis', Memory: 'memory' } as const;
export type CacheBackend = (typeof CacheBackend)[keyof typeof CacheBackend];

export interface CacheSetOptions {
  /** Lifetime of the entry; defaults to the cache's `cache.ttl_seconds`. */
  readonly ttlSeconds?: number;
}

/**
 * Contracts: MemoryCache and FallbackCache (what NovaCron wires) never reject because a backend is
 * down (a get misses, a set lands in memory or is dropped); a bare RedisCache does reject, with
 * UnavailableError, and is meant to be used behind FallbackCache. Values must survive JSON.stringify (undefined and functions are not values: a set of
 * `undefined` is a ValidationError); keys are non-empty strings.
 */
export interface Cache {
  /** The value, or undefined on a miss (absent, expired, or backend unreachable). The type
   *  parameter is a promise by the caller about what it stored under this key, not a check. */
  get<T = unknown>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown, options?: CacheSetOptions): Promise<void>;
  /** True when an entry was removed. */
  delete(key: string): Promise<boolean>;
  /** Returns the cached value, or loads, stores and returns it. Loader errors propagate. */
  getOrSet<T>(key: string, load: () => Promise<T>, options?: CacheSetOptions): Promise<T>;
  /** The backend serving requests right now; undefined when none is (Redis down, no fallback). */
  backend(): CacheBackend | undefined;
  health(): ComponentHealth;
  close(): Promise<void>;
}
