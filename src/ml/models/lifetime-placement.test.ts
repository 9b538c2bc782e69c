import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EMPTY_HOST_ALIGNMENT, lifetimeAlignment, scoreNodesByLifetime } from './lifetime-placement.js';
import { fallbackBandwidth, fallbackPlacement, fits } from '../fallback.js';

const node = (id: string, ends: number[] | undefined, cpu = 8, mem = 32) => ({
  nodeId: id,
  cpuAvailable: cpu,
  memoryAvailable: mem,
  cpuCapacity: 16,
  memoryCapacity: 64,
  ...(ends === undefined ? {} : { residentEndTimesS: ends }),
});

test('alignment: ending just before the host frees beats outliving it, which beats an empty host', () => {
  const now = 1000;
  const justBefore = lifetimeAlignment(node('a', [now + 3700]), now, 3600);
  const farBefore = lifetimeAlignment(node('b', [now + 100000]), now, 3600);
  const outlives = lifetimeAlignment(node('c', [now + 60]), now, 3600);
  const empty = lifetimeAlignment(node('d', []), now, 3600);
  const unknown = lifetimeAlignment(node('e', undefined), now, 3600);
  assert.ok(justBefore > farBefore && farBefore >= 0.5, `${justBefore} ${farBefore}`);
  assert.ok(farBefore > outlives && outlives > empty, `${outlives} ${empty}`);
  assert.equal(unknown, 0.5);
  assert.equal(
    lifetimeAlignment(node('f', [now - 5]), now, 3600),
    0.5,
    'residents already past their end: unknown',
  );
});

test('scores only nodes that fit, best first; a short VM goes to the host whose residents end soon', () => {
  const nodes = [
    node('long', [1000 + 10 * 86400]),
    node('short', [1000 + 1800]),
    node('full', [1000 + 1800], 1, 1),
    node('empty', []),
  ];
  const s = scoreNodesByLifetime(nodes, { cpu: 2, memory: 4 }, 1000, 1200);
  assert.deepEqual(s.map((x) => x.nodeId).sort(), ['empty', 'long', 'short']);
  assert.equal(s[0]!.nodeId, 'short');
  for (let i = 1; i < s.length; i++) assert.ok(s[i - 1]!.score >= s[i]!.score);
});

test('fallbacks: moving average with a bounded confidence, best fit placement', () => {
  const b = fallbackBandwidth([10, 10, 10, 10]);
  assert.equal(b.predicted, 10);
  assert.equal(b.confidence, 1);
  assert.equal(b.source, 'fallback');
  assert.equal(fallbackBandwidth([], 5).predicted, 5);
  assert.equal(fallbackBandwidth([Number.NaN, -1]).predicted, 0);
  const p = fallbackPlacement([node('roomy', [], 16, 64), node('tight', [], 3, 6), node('tiny', [], 1, 1)], {
    cpu: 2,
    memory: 4,
  });
  assert.equal(p.selectedNodeId, 'tight');
  assert.equal(p.scores.length, 2);
  assert.equal(fallbackPlacement([node('tiny', [], 1, 1)], { cpu: 2, memory: 4 }).selectedNodeId, '');
  assert.equal(fits(node('n', [], 2, 4), { cpu: 2, memory: 4 }), true);
});

test('alignment: the one-pass release time gives exactly the reference formula (filter, then max)', () => {
  const reference = (ends: number[] | undefined, nowS: number, lifetimeS: number): number => {
    if (ends === undefined) return 0.5;
    const live = ends.filter((e) => Number.isFinite(e) && e > nowS);
    if (live.length === 0) return ends.length === 0 ? EMPTY_HOST_ALIGNMENT : 0.5;
    const release = Math.max(...live);
    const life = Math.max(lifetimeS, 1);
    const end = nowS + life;
    if (end <= release) return 1 - (0.5 * (release - end)) / Math.max(release - nowS, 1);
    return 0.5 * Math.exp(-(end - release) / life);
  };
  const t = fc.oneof(fc.double({ min: -1e7, max: 1e7 }), fc.constantFrom(NaN, Infinity, -Infinity, 0, 1000));
  fc.assert(
    fc.property(
      fc.option(fc.array(t, { maxLength: 12 }), { nil: undefined }),
      t,
      fc.double({ min: 0, max: 1e7 }),
      (ends, now, life) => {
        if (!Number.isFinite(now)) return;
        assert.equal(lifetimeAlignment(node('n', ends), now, life), reference(ends, now, life));
      },
    ),
    { numRuns: 2000 },
  );
});
