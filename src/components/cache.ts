// Boot component "cache": builds the configured cache (memory, or Redis with an optional memory
// fallback), publishes `services.cache`, and reports which backend serves. Logic lives in src/cache.
import type { BootContext, Component, ComponentHealth } from '../boot/component.js';
import { FallbackCache, createCache, type Cache } from '../cache/index.js';

/**
 * Critical, phase core, no dependencies. With `cache.fallback_to_memory: true` (the default) the
 * start never fails on Redis: the cache comes up `degraded` (detail `memory: …`) and switches to
 * Redis (`up`, detail `redis …`) when it answers; each switch is published as a `cache.backend`
 * event. With `fallback_to_memory: false`, Redis unreachable at boot fails the start — and, the
 * component being critical, the boot — with `cache unavailable: redis <address>: <cause> …`.
 */
export function cacheComponent(options: { readonly dependsOn?: readonly string[] } = {}): Component {
  let cache: Cache | undefined;
  let unsubscribe: (() => void) | undefined;
  return {
    name: 'cache',
    phase: 'core',
    dependsOn: options.dependsOn ?? [],
    critical: true,
    async start(ctx: BootContext): Promise<void> {
      const created = await createCache(ctx.config, { registry: ctx.metrics, logger: ctx.logger });
      if (ctx.signal.aborted) {
        await created.close();
        return;
      }
      cache = created;
      ctx.services.cache = created;
      if (created instanceof FallbackCache) {
        unsubscribe = created.onChange((h) =>
          ctx.events.publish('cache.backend', {
            status: h.status,
            detail: h.detail,
            backend: created.backend() ?? 'none',
          }),
        );
      }
      const h = created.health();
      ctx.logger.info(
        { backend: created.backend() ?? 'none', status: h.status, detail: h.detail },
        'cache ready',
      );
    },
    async stop(ctx: BootContext): Promise<void> {
      const c = cache;
      cache = undefined;
      unsubscribe?.();
      unsubscribe = undefined;
      if (ctx.services.cache === c) delete ctx.services.cache;
      await c?.close();
    },
    health(): ComponentHealth {
      return cache === undefined ? { status: 'down', detail: 'cache not started' } : cache.health();
    },
  };
}
