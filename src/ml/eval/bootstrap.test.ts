import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bootstrapMaeRatio, crossValidateBandwidth, crossValidatedSeriesErrors } from './bandwidth-eval.js';

test('bootstrap over series: known ratios, a CI that brackets them, deterministic by seed', () => {
  const same = Array.from({ length: 10 }, () => ({ n: 10, absModel: 5, absBest: 5 }));
  assert.deepEqual(bootstrapMaeRatio(same, 200), { ratio: 1, lo: 1, hi: 1, notBetter: 1 });
  const better = Array.from({ length: 10 }, (_, i) => ({ n: 10, absModel: 8 + (i % 2), absBest: 10 }));
  const b = bootstrapMaeRatio(better, 500, 7);
  assert.equal(b.ratio, 0.85);
  assert.ok(b.lo >= 0.8 && b.hi <= 0.9 && b.lo <= b.ratio && b.ratio <= b.hi, JSON.stringify(b));
  assert.equal(b.notBetter, 0);
  assert.deepEqual(bootstrapMaeRatio(better, 500, 7), b, 'same seed, same answer');
  // One series much better, the rest slightly worse: the pooled ratio is < 1 but often is not.
  const mixed = [
    { n: 10, absModel: 1, absBest: 10 },
    ...Array.from({ length: 9 }, () => ({ n: 10, absModel: 10.5, absBest: 10 })),
  ];
  const m = bootstrapMaeRatio(mixed, 1000, 3);
  assert.ok(m.ratio < 1 && m.hi > 1 && m.notBetter > 0.2, JSON.stringify(m));
  assert.throws(() => bootstrapMaeRatio([]), /at least one series/);
});

test('per-series cross-validated errors add up to the pooled figures', () => {
  // 10 series of a noisy random walk: enough rows (>= 50) to train in every fold.
  let x = 50;
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const series = Array.from({ length: 10 }, (_, k) => ({
    id: `s${k}`,
    samples: Array.from({ length: 60 }, () => (x = Math.max(1, x + (rnd() - 0.5) * 10))),
  }));
  const errs = crossValidatedSeriesErrors({ name: 'toy', series }, 'last', 5);
  assert.equal(errs.length, 10);
  assert.ok(errs.every((e) => e.n === 55 && e.absModel >= 0 && e.absBest > 0));
  const pooled = crossValidateBandwidth({ name: 'toy', series }, 5).report;
  const n = errs.reduce((a, e) => a + e.n, 0);
  const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));
  assert.ok(close(errs.reduce((a, e) => a + e.absModel, 0) / n, pooled.model.mae));
  assert.ok(close(errs.reduce((a, e) => a + e.absBest, 0) / n, pooled.baselines.last.mae));
});
