// Public surface of the cache and the factory that builds the configured one. See docs/cache.md.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { NovaCronConfig } from '../config/schema.js';
import type { Cache } from './cache.js';
import { FallbackCache } from './fallback-cache.js';
import { MemoryCache } from './memory-cache.js';
import { cacheMetrics } from './metrics.js';

export type { Cache, CacheSetOptions } from './cache.js';
export { CacheBackend } from './cache.js';
export { MemoryCache } from './memory-cache.js';
export type { MemoryCacheOptions } from './memory-cache.js';
// RedisCache is imported from './redis-cache.js' directly: ioredis loads only when Redis is configured.
export type { RedisCacheOptions, RedisLinkEvent } from './redis-cache.js';
export { FallbackCache } from './fallback-cache.js';
export type { FallbackCacheOptions } from './fallback-cache.js';
export { cacheMetrics, CACHE_METRIC_NAMES } from './metrics.js';
export type { CacheMetrics } from './metrics.js';
export { parseRedisAddress } from './codec.js';

declare module '../boot/services.js' {
  interface Services {
    cache?: Cache;
  }
}

export interface CreateCacheOptions {
  readonly registry?: Registry;
  readonly logger?: Pick<Logger, 'info' | 'warn'>;
  /** Milliseconds clock for the memory LRU (tests). */
  readonly now?: () => number;
}

/**
 * Builds and starts the cache `config.cache` describes: a MemoryCache for `type: memory`, a
 * FallbackCache over Redis for `type: redis` (with a memory fallback when `fallback_to_memory`).
 * Rejects only when Redis is unreachable and `fallback_to_memory` is false.
 */
export async function createCache(
  config: Pick<NovaCronConfig, 'cache'>,
  options: CreateCacheOptions = {},
): Promise<MemoryCache | FallbackCache> {
  const c = config.cache;
  const metrics = options.registry === undefined ? undefined : cacheMetrics(options.registry);
  const memoryOptions = {
    maxEntries: c.max_entries,
    defaultTtlSeconds: c.ttl_seconds,
    ...(options.now === undefined ? {} : { now: options.now }),
  };
  if (c.type === 'memory') {
    return new MemoryCache({
      ...memoryOptions,
      ...(metrics === undefined ? {} : { metrics }),
      detail: `memory (configured; LRU, at most ${c.max_entries} entries)`,
    });
  }
  const { RedisCache } = await import('./redis-cache.js');
  const redis = new RedisCache({
    address: c.address,
    password: c.password,
    defaultTtlSeconds: c.ttl_seconds,
    ...(metrics === undefined ? {} : { metrics }),
  });
  const cache = new FallbackCache({
    redis,
    ...(c.fallback_to_memory ? { memory: new MemoryCache(memoryOptions) } : {}),
    defaultTtlSeconds: c.ttl_seconds,
    maxTrackedKeys: c.max_entries,
    ...(metrics === undefined ? {} : { metrics }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  await cache.start();
  return cache;
}
