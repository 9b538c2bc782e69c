// Prometheus metrics of the cache: hits and misses by backend, and which backend is serving.
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import type { CacheBackend } from './cache.js';

export const CACHE_METRIC_NAMES = {
  hits: 'novacron_cache_hits_total',
  misses: 'novacron_cache_misses_total',
  backend: 'novacron_cache_backend',
} as const;

export interface CacheMetrics {
  count(hit: boolean, backend: CacheBackend | 'none'): void;
  /** Marks the serving backend with 1, the others with 0 (undefined: none serves). */
  setBackend(backend: CacheBackend | undefined): void;
}

/** Registers (or reuses, when already in `registry`) the cache metrics. */
export function cacheMetrics(registry: Registry): CacheMetrics {
  const existing = <M>(name: string): M | undefined => registry.getSingleMetric(name) as M | undefined;
  const hits =
    existing<Counter<'backend'>>(CACHE_METRIC_NAMES.hits) ??
    new Counter({
      name: CACHE_METRIC_NAMES.hits,
      help: 'Cache lookups that found a value',
      labelNames: ['backend'],
      registers: [registry],
    });
  const misses =
    existing<Counter<'backend'>>(CACHE_METRIC_NAMES.misses) ??
    new Counter({
      name: CACHE_METRIC_NAMES.misses,
      help: 'Cache lookups that found nothing',
      labelNames: ['backend'],
      registers: [registry],
    });
  const backend =
    existing<Gauge<'backend'>>(CACHE_METRIC_NAMES.backend) ??
    new Gauge({
      name: CACHE_METRIC_NAMES.backend,
      help: 'Backend serving the cache (1 = serving): redis, or memory while Redis is unreachable',
      labelNames: ['backend'],
      registers: [registry],
    });
  return {
    count(hit, b) {
      (hit ? hits : misses).inc({ backend: b });
    },
    setBackend(b) {
      backend.set({ backend: 'redis' }, b === 'redis' ? 1 : 0);
      backend.set({ backend: 'memory' }, b === 'memory' ? 1 : 0);
    },
  };
}
