import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorAccumulator, evaluateSliding } from './metrics.js';
import { BASELINES, ewma, harmonicMean, lastValue, movingAverage } from '../models/baselines.js';

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

test('baselines on a fixed window', () => {
  const h = [1, 2, 3, 4, 5];
  assert.equal(lastValue(h), 5);
  close(harmonicMean(h), 5 / (1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5));
  close(harmonicMean([9, 9, 1, 2, 4, 4, 4], 5), 5 / (1 + 1 / 2 + 3 / 4));
  assert.equal(harmonicMean([3, 0, 3]), 0, 'a stalled sample makes the harmonic mean 0');
  // EWMA with alpha 0.5 over [2, 4, 8]: 2 -> 3 -> 5.5
  close(ewma([2, 4, 8], 0.5), 5.5);
  close(movingAverage([1, 2, 3, 4], 2), 3.5);
  assert.equal(lastValue([]), 0);
});

test('accumulator: MAE, RMSE, MAPE over positive truths, over-estimation rate', () => {
  const a = new ErrorAccumulator();
  a.add(3, 1); // +2, 200 %
  a.add(1, 2); // -1, 50 %
  a.add(5, 0); // +5, no MAPE
  a.add(4, 4); // 0
  const m = a.metrics();
  close(m.mae, 2);
  close(m.rmse, Math.sqrt((4 + 1 + 25) / 4));
  close(m.mape, ((2 + 0.5 + 0) / 3) * 100);
  close(m.overRate, 0.5);
});

test('sliding evaluation predicts index >= minHistory from the window before it, never the future', () => {
  const series = [{ id: 's', samples: [1, 2, 3, 4, 5, 6, 7] }];
  const seen: number[][] = [];
  const r = evaluateSliding(
    series,
    {
      spy: (h) => {
        seen.push([...h]);
        return h[h.length - 1]!;
      },
      ...BASELINES,
    },
    { window: 3, minHistory: 5 },
  );
  assert.deepEqual(seen, [
    [3, 4, 5],
    [4, 5, 6],
  ]);
  // last value predicts 5 for 6 and 6 for 7: errors -1, -1.
  const last = r.last.metrics();
  close(last.mae, 1);
  close(last.rmse, 1);
  close(last.mape, ((1 / 6 + 1 / 7) / 2) * 100);
  assert.equal(last.overRate, 0);
  assert.equal(r.last.n, 2);
  // Harmonic mean of [3,4,5] for 6 and of [4,5,6] for 7.
  const h1 = 3 / (1 / 3 + 1 / 4 + 1 / 5);
  const h2 = 3 / (1 / 4 + 1 / 5 + 1 / 6);
  close(r.harmonic.metrics().mae, (6 - h1 + 7 - h2) / 2);
  // Normalised MAE divides by the series mean (4).
  close(r.last.normalizedMae(), 1 / 4);
});

test('series shorter than minHistory + 1 contribute nothing', () => {
  const r = evaluateSliding([{ id: 's', samples: [1, 2, 3] }], BASELINES, { window: 20, minHistory: 5 });
  assert.equal(r.last.n, 0);
  assert.equal(r.last.metrics().mae, 0);
});
