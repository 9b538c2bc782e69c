// Cache against a real redis-server: fallback to memory at boot and at run time, recovery, no stale
// reads after the switch back, fatal without fallback, requests never failing, metrics.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { Redis } from 'ioredis';
import type { ComponentHealth } from '../../src/boot/component.js';
import { createCache, FallbackCache, MemoryCache } from '../../src/cache/index.js';
import { RedisCache } from '../../src/cache/redis-cache.js';
import { defaultConfig } from '../../src/config/defaults.js';
import { freePort, missing } from '../store/fixtures.js';
import { redisServerBinary, TcpProxy, ThrowawayRedis } from './fixtures.js';

const skip = redisServerBinary() === undefined ? missing('redis-server') : false;

function cacheConfig(address: string, fallback: boolean) {
  const c = defaultConfig();
  return {
    cache: { ...c.cache, type: 'redis' as const, address, fallback_to_memory: fallback, max_entries: 100 },
  };
}

/** Resolves when the cache's health satisfies `pred` (now or at a later change); rejects after `ms`. */
function waitForHealth(
  cache: FallbackCache,
  pred: (h: ComponentHealth) => boolean,
  ms = 10_000,
): Promise<ComponentHealth> {
  const now = cache.health();
  if (pred(now)) return Promise.resolve(now);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`health never matched; last: ${JSON.stringify(cache.health())}`));
    }, ms);
    const off = cache.onChange((h) => {
      if (pred(h)) {
        clearTimeout(timer);
        off();
        resolve(h);
      }
    });
  });
}

const isUp = (h: ComponentHealth) => h.status === 'up' && h.detail.startsWith('redis');
const isMemory = (h: ComponentHealth) => h.status === 'degraded' && h.detail.includes('memory');

async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

describe('FallbackCache on a real redis-server', { skip }, () => {
  let redis: ThrowawayRedis;
  before(async () => {
    redis = await ThrowawayRedis.create();
  });
  after(async () => {
    await redis.kill();
  });

  it('serves from redis when it is up, with hit/miss/backend metrics', async () => {
    const registry = new Registry();
    const cache = await createCache(cacheConfig(redis.address, true), { registry });
    assert.ok(cache instanceof FallbackCache);
    try {
      assert.deepEqual(cache.health(), { status: 'up', detail: `redis ${redis.address}` });
      await cache.set('vm:1', { name: 'web1', cpus: 2 });
      assert.deepEqual(await cache.get('vm:1'), { name: 'web1', cpus: 2 });
      assert.equal(await cache.get('vm:none'), undefined);
      assert.equal(await cache.delete('vm:1'), true);
      assert.equal(await cache.get('vm:1'), undefined);
      assert.equal(await cache.getOrSet('lazy', async () => 42), 42);
      assert.equal(await cache.getOrSet('lazy', async () => 43), 42);
      // The value really is in Redis, under the namespace, with the default TTL.
      const side = new Redis({ port: redis.port, host: '127.0.0.1' });
      assert.equal(await side.get('novacron:cache:lazy'), '42');
      const ttl = await side.ttl('novacron:cache:lazy');
      assert.ok(ttl > 3500 && ttl <= 3600, `ttl ${ttl}`);
      await cache.set('short', 1, { ttlSeconds: 5 });
      assert.ok((await side.ttl('novacron:cache:short')) <= 5);
      side.disconnect();
      assert.equal(await metricValue(registry, 'novacron_cache_hits_total', { backend: 'redis' }), 2);
      assert.equal(await metricValue(registry, 'novacron_cache_misses_total', { backend: 'redis' }), 3);
      assert.equal(await metricValue(registry, 'novacron_cache_backend', { backend: 'redis' }), 1);
      assert.equal(await metricValue(registry, 'novacron_cache_backend', { backend: 'memory' }), 0);
    } finally {
      await cache.close();
    }
  });

  it('starts in memory when redis is down at boot, then switches to redis when it comes up', async () => {
    const port = await freePort();
    let late: ThrowawayRedis | undefined;
    const registry = new Registry();
    const cache = await createCache(cacheConfig(`127.0.0.1:${port}`, true), { registry });
    assert.ok(cache instanceof FallbackCache);
    try {
      const h = cache.health();
      assert.equal(h.status, 'degraded');
      assert.match(h.detail, /^memory/);
      assert.equal(cache.backend(), 'memory');
      await cache.set('k', 'from-memory');
      assert.equal(await cache.get('k'), 'from-memory');
      assert.equal(await metricValue(registry, 'novacron_cache_backend', { backend: 'memory' }), 1);
      late = await ThrowawayRedis.onPort(port);
      await waitForHealth(cache, isUp);
      assert.equal(cache.backend(), 'redis');
      // The memory copy was dropped and the key invalidated: a miss, never a value from the other side.
      assert.equal(await cache.get('k'), undefined);
      await cache.set('k', 'from-redis');
      assert.equal(await cache.get('k'), 'from-redis');
    } finally {
      await cache.close();
      await late?.kill();
    }
  });

  it('never fails a request while redis is killed and restarted, and recovers without a restart', async () => {
    const r = await ThrowawayRedis.create();
    const cache = (await createCache(cacheConfig(r.address, true))) as FallbackCache;
    try {
      await waitForHealth(cache, isUp);
      let stop = false;
      let ops = 0;
      const load = (async () => {
        for (let i = 0; !stop; i++) {
          await cache.set(`load:${i % 50}`, { i });
          await cache.get(`load:${(i * 7) % 50}`);
          if (i % 10 === 0) await cache.delete(`load:${i % 50}`);
          ops++;
          await new Promise((res) => setImmediate(res));
        }
      })();
      await r.kill();
      const degraded = await waitForHealth(cache, isMemory);
      assert.match(degraded.detail, /reconnecting/);
      await cache.set('during', 'outage');
      assert.equal(await cache.get('during'), 'outage');
      await r.start();
      await waitForHealth(cache, isUp);
      stop = true;
      await load; // would reject if any request had failed
      assert.ok(ops > 0);
      assert.equal(await cache.get('during'), undefined);
      await cache.set('after', 1);
      assert.equal(await cache.get('after'), 1);
    } finally {
      await cache.close();
      await r.kill();
    }
  });

  it('treats a hung redis (SIGSTOP) like a dead one, and returns to it when it answers again', async () => {
    const r = await ThrowawayRedis.create();
    const cache = (await createCache(cacheConfig(r.address, true))) as FallbackCache;
    try {
      await cache.set('h', 'before');
      r.pause();
      // The command times out (500 ms), the cache switches to memory: a miss, not an error or a hang.
      assert.equal(await cache.get('h'), undefined);
      assert.ok(isMemory(cache.health()));
      await cache.set('h', 'during');
      assert.equal(await cache.get('h'), 'during');
      r.resume();
      await waitForHealth(cache, isUp);
      assert.equal(await cache.get('h'), undefined); // 'before' was invalidated
    } finally {
      await cache.close();
      await r.kill();
    }
  });

  it('does not serve entries made stale during a partition when it switches back', async () => {
    const proxy = await TcpProxy.create(redis.port);
    const side = new Redis({ port: redis.port, host: '127.0.0.1' });
    const cache = (await createCache(cacheConfig(proxy.address, true))) as FallbackCache;
    try {
      await cache.set('p:changed', 'old');
      await cache.set('p:deleted', 'old');
      await cache.set('p:untouched', 'kept');
      proxy.cut();
      await waitForHealth(cache, isMemory);
      await cache.set('p:changed', 'new');
      assert.equal(await cache.delete('p:deleted'), false);
      assert.equal(await cache.get('p:changed'), 'new');
      assert.equal(await cache.get('p:deleted'), undefined);
      // Redis itself still holds the pre-partition values: these would be stale reads.
      assert.equal(await side.get('novacron:cache:p:changed'), '"old"');
      proxy.heal();
      await waitForHealth(cache, isUp);
      assert.equal(await cache.get('p:changed'), undefined);
      assert.equal(await cache.get('p:deleted'), undefined);
      assert.equal(await cache.get('p:untouched'), 'kept');
      assert.equal(await side.get('novacron:cache:p:changed'), null);
    } finally {
      await cache.close();
      side.disconnect();
      await proxy.close();
    }
  });

  it('flushes its namespace when redis restarted during the outage (it may hold older data)', async () => {
    const r = await ThrowawayRedis.create();
    const proxy = await TcpProxy.create(r.port);
    const cache = (await createCache(cacheConfig(proxy.address, true))) as FallbackCache;
    try {
      await cache.set('snap:a', 'latest');
      proxy.cut();
      await waitForHealth(cache, isMemory);
      await r.kill();
      await r.start();
      // Stand-in for a snapshot reloaded by the restarted server: an older value of a key that
      // the memory period never touched, so only the restart detection can catch it.
      const side = new Redis({ port: r.port, host: '127.0.0.1' });
      await side.set('novacron:cache:snap:a', '"older"');
      await side.set('other:app:key', 'not ours');
      proxy.heal();
      await waitForHealth(cache, isUp);
      assert.equal(await cache.get('snap:a'), undefined);
      assert.equal(await side.get('other:app:key'), 'not ours');
      side.disconnect();
    } finally {
      await cache.close();
      await proxy.close();
      await r.kill();
    }
  });

  it('falls back to a hard miss without memory when fallback_to_memory is false and redis dies later', async () => {
    const r = await ThrowawayRedis.create();
    const cache = (await createCache(cacheConfig(r.address, false))) as FallbackCache;
    try {
      await cache.set('x', 1);
      await r.kill();
      const h = await waitForHealth(cache, (x) => x.status === 'down');
      assert.match(h.detail, /fallback_to_memory is false/);
      await cache.set('x', 2); // dropped, but does not fail
      assert.equal(await cache.get('x'), undefined);
      assert.equal(cache.backend(), undefined);
      await r.start();
      await waitForHealth(cache, isUp);
      assert.equal(await cache.get('x'), undefined);
    } finally {
      await cache.close();
      await r.kill();
    }
  });

  it('is fatal at boot without fallback, with a message naming the address', async () => {
    const port = await freePort();
    await assert.rejects(createCache(cacheConfig(`127.0.0.1:${port}`, false)), (err: Error) => {
      assert.match(
        err.message,
        new RegExp(`^cache unavailable: redis 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`),
      );
      assert.match(err.message, /cache\.fallback_to_memory is false/);
      return true;
    });
  });

  it('a bare RedisCache rejects with UnavailableError when redis is down', async () => {
    const port = await freePort();
    const rc = new RedisCache({ address: `127.0.0.1:${port}`, defaultTtlSeconds: 60 });
    await assert.rejects(rc.connect(), /cache unavailable: redis/);
    await assert.rejects(rc.get('a'), /cache unavailable: redis/);
    await rc.close();
  });

  it('memory type needs no redis', async () => {
    const c = defaultConfig();
    const cache = await createCache({ cache: { ...c.cache, type: 'memory' } });
    assert.ok(cache instanceof MemoryCache);
    assert.equal(cache.health().status, 'up');
    await cache.close();
  });
});
