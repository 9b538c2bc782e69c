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
      const c = new StreamCountController({ initial, min, max }, { gain: 0.05, warmup: 0 });
      const seen: number[] = [];
      for (let i = 0; i < 30; i++) seen.push(c.observe(goodput(c.count)));
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

  it('returns to the best count after an unprofitable probe, and backs off before the next', () => {
    const c = new StreamCountController(
      { initial: 4, min: 1, max: 16 },
      { gain: 0.05, probeEvery: 5, warmup: 1, settle: 1, probeSamples: 2 },
    );
    assert.equal(c.observe(50), 4); // warm-up sample ignored
    assert.equal(c.observe(100), 6); // first sample: probe up
    assert.equal(c.observe(300), 6); // settling: the sample right after the change is ignored
    assert.equal(c.observe(101), 6); // first of two probe samples
    assert.equal(c.observe(102), 4); // mean +1.5 %: not worth it, back to 4
    assert.equal(c.observe(100), 4); // settling after the step back
    for (let i = 0; i < 9; i++) assert.equal(c.observe(100), 4); // hold twice as long as before
    assert.equal(c.observe(100), 6); // periodic probe
  });

  it('keeps a probe whose mean gain is clear, even if one sample is low', () => {
    const c = new StreamCountController(
      { initial: 2, min: 1, max: 16 },
      { gain: 0.1, warmup: 0, settle: 0, probeSamples: 2 },
    );
    assert.equal(c.observe(100), 3);
    assert.equal(c.observe(105), 3);
    assert.equal(c.observe(150), 5); // mean 127.5 > 110: keep 3, probe 5
  });

  it('ignores one noisy high sample when the mean does not pay', () => {
    const c = new StreamCountController(
      { initial: 4, min: 1, max: 16 },
      { gain: 0.1, warmup: 0, settle: 0, probeSamples: 2 },
    );
    assert.equal(c.observe(100), 6);
    assert.equal(c.observe(130), 6);
    assert.equal(c.observe(80), 4); // mean 105: back to 4
  });

  it('without probeAtStart holds for probeEvery samples before the first probe', () => {
    const c = new StreamCountController(
      { initial: 2, min: 1, max: 16 },
      { warmup: 0, settle: 0, probeEvery: 3, probeAtStart: false },
    );
    assert.equal(c.observe(100), 2);
    assert.equal(c.observe(100), 2);
    assert.equal(c.observe(100), 3);
  });
});
