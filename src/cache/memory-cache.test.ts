import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { ValidationError } from '../errors.js';
import { parseRedisAddress } from './codec.js';
import { MemoryCache } from './memory-cache.js';
import { cacheMetrics } from './metrics.js';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('MemoryCache', () => {
  it('evicts the least recently used entry beyond its bound', async () => {
    const c = new MemoryCache({ maxEntries: 3, defaultTtlSeconds: 60 });
    await c.set('a', 1);
    await c.set('b', 2);
    await c.set('c', 3);
    assert.equal(await c.get('a'), 1); // a is now the most recent
    await c.set('d', 4);
    assert.equal(await c.get('b'), undefined);
    assert.deepEqual([await c.get('a'), await c.get('c'), await c.get('d')], [1, 3, 4]);
    assert.equal(c.size, 3);
  });

  it('expires entries after their TTL (injected clock)', async () => {
    const k = clock();
    const c = new MemoryCache({ maxEntries: 10, defaultTtlSeconds: 10, now: k.now });
    await c.set('short', 'x', { ttlSeconds: 1 });
    await c.set('long', 'y');
    k.advance(999);
    assert.equal(await c.get('short'), 'x');
    k.advance(1);
    assert.equal(await c.get('short'), undefined);
    assert.equal(await c.get('long'), 'y');
    k.advance(9000);
    assert.equal(await c.get('long'), undefined);
  });

  it('returns copies, rejects undefined values and empty keys', async () => {
    const c = new MemoryCache({ maxEntries: 10, defaultTtlSeconds: 10 });
    const v = { list: [1, 2] };
    await c.set('v', v);
    v.list.push(3);
    const got = await c.get<{ list: number[] }>('v');
    assert.deepEqual(got, { list: [1, 2] });
    got?.list.push(9);
    assert.deepEqual(await c.get('v'), { list: [1, 2] });
    await assert.rejects(c.set('u', undefined), ValidationError);
    await assert.rejects(c.get(''), ValidationError);
    assert.equal(await c.delete('v'), true);
    assert.equal(await c.delete('v'), false);
  });

  it('never holds more than maxEntries, whatever the operations (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.tuple(fc.constantFrom('set', 'get', 'delete'), fc.integer({ min: 0, max: 20 }))),
        async (max, ops) => {
          const c = new MemoryCache({ maxEntries: max, defaultTtlSeconds: 60 });
          const model = new Map<string, number>();
          for (const [op, n] of ops) {
            const key = `k${n}`;
            if (op === 'set') {
              await c.set(key, n);
              model.delete(key);
              model.set(key, n);
              while (model.size > max) model.delete(model.keys().next().value as string);
            } else if (op === 'get') {
              const want = model.get(key);
              assert.equal(await c.get(key), want);
              if (want !== undefined) {
                model.delete(key);
                model.set(key, want);
              }
            } else {
              assert.equal(await c.delete(key), model.delete(key));
            }
            assert.ok(c.size <= max);
          }
        },
      ),
    );
  });

  it('counts hits and misses with the memory label', async () => {
    const registry = new Registry();
    const c = new MemoryCache({ maxEntries: 2, defaultTtlSeconds: 60, metrics: cacheMetrics(registry) });
    await c.set('a', 1);
    await c.get('a');
    await c.get('b');
    const text = await registry.metrics();
    assert.match(text, /novacron_cache_hits_total\{backend="memory"\} 1/);
    assert.match(text, /novacron_cache_misses_total\{backend="memory"\} 1/);
    assert.match(text, /novacron_cache_backend\{backend="memory"\} 1/);
    // A second cache on the same registry reuses the metrics instead of failing to register.
    assert.doesNotThrow(() => cacheMetrics(registry));
  });
});

describe('parseRedisAddress', () => {
  const table: [string, { host: string; port: number } | 'error'][] = [
    ['127.0.0.1:6379', { host: '127.0.0.1', port: 6379 }],
    ['redis.local', { host: 'redis.local', port: 6379 }],
    ['[::1]:7000', { host: '::1', port: 7000 }],
    [':6379', 'error'],
    ['host:99999', 'error'],
  ];
  for (const [input, want] of table) {
    it(input, () => {
      if (want === 'error') assert.throws(() => parseRedisAddress(input), ValidationError);
      else assert.deepEqual(parseRedisAddress(input), want);
    });
  }
});
