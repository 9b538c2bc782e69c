// Adaptive stream count: grows while goodput grows, steps back when more streams do not pay, probes again later.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StreamCountController } from './stream-count.js';

/** A link whose goodput saturates at `knee` streams. */
const link = (knee: number) => (n: number) => 100 * Math.min(n, knee);

describe('StreamCountController', () => {
  const cases: [string, number, number, number, (n: number) => number, number][] = [
    ['single stream fills the link (BBR)', 4, 1, 16, () => 100, 4],
    ['cubic-like: more streams pay up to 12', 2, 1, 64, link(12), 12],
    ['capped by max', 2, 1, 6, link(50), 6],
  ];
  for (const [name, initial, min, max, goodput, expectNear] of cases) {
    it(name, () => {
      const c = new StreamCountController({ initial, min, max }, 0.05, 5, 0);
      const seen: number[] = [];
      for (let i = 0; i < 12; i++) seen.push(c.observe(goodput(c.count)));
      const settled = seen.slice(-3);
      for (const n of settled) {
        assert.ok(
          n >= Math.min(expectNear, max) && n <= Math.ceil(expectNear * 1.5) + 1,
          `${name}: ${seen.join(',')}`,
        );
      }
      for (const n of seen) assert.ok(n >= min && n <= max);
    });
  }

  it('returns to the best count after an unprofitable probe', () => {
    const c = new StreamCountController({ initial: 4, min: 1, max: 16 }, 0.05, 5, 1);
    assert.equal(c.observe(50), 4); // warm-up sample ignored
    assert.equal(c.observe(100), 6); // first sample: probe up
    assert.equal(c.observe(101), 4); // +1 %: not worth it, back to 4
    for (let i = 0; i < 4; i++) assert.equal(c.observe(100), 4);
    assert.equal(c.observe(100), 6); // periodic probe
  });
});
