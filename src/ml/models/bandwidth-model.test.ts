import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  predictNext,
  trainBandwidthModel,
  validateBandwidthParams,
  windowFeatures,
  fitQuantile,
  trainingRows,
  CALIBRATION_SAFETY,
} from './bandwidth-model.js';
import { NovaCronError } from '../../errors.js';

/** A deterministic noisy series (LCG), so training is reproducible. */
function series(seed: number, n: number, level: number): number[] {
  let s = seed;
  const rnd = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  const out: number[] = [];
  let x = level;
  for (let i = 0; i < n; i++) {
    x = Math.max(0.05 * level, x + (rnd() - 0.5) * 0.3 * level + 0.1 * (level - x));
    out.push(x);
  }
  return out;
}

const model = trainBandwidthModel([[series(1, 300, 5), series(2, 300, 5), series(3, 300, 50)]], {
  bins: 2,
  margin: 0,
});

test('trained parameters validate and have one bin per regime', () => {
  assert.equal(validateBandwidthParams(JSON.parse(JSON.stringify(model))).bins.length, 2);
  assert.throws(() => validateBandwidthParams({ kind: 'nope' }), NovaCronError);
  assert.throws(
    () => validateBandwidthParams({ ...model, bins: [{ ...model.bins[0], point: [1, 2] }] }),
    NovaCronError,
  );
});

test('predictions are scale-free: scaling the history scales the answer', () => {
  fc.assert(
    fc.property(
      fc.array(fc.double({ min: 0.1, max: 1000, noNaN: true }), { minLength: 1, maxLength: 30 }),
      fc.double({ min: 0.01, max: 100, noNaN: true }),
      (h, k) => {
        const a = predictNext(model, h);
        const b = predictNext(
          model,
          h.map((v) => v * k),
        );
        assert.ok(Math.abs(b.predicted - k * a.predicted) <= 1e-6 * Math.max(1, k * a.predicted));
        assert.ok(a.lower <= a.predicted && a.predicted <= a.upper);
        assert.ok(a.confidence >= 0 && a.confidence <= 1);
      },
    ),
  );
});

test('idle links and empty histories predict 0; a flat link predicts close to its level', () => {
  assert.equal(predictNext(model, []).predicted, 0);
  assert.equal(predictNext(model, [0, 0, 0]).predicted, 0);
  const flat = predictNext(model, new Array<number>(20).fill(7));
  // Cautious by design: near the level, not above it by more than noise.
  assert.ok(flat.predicted > 0.85 * 7 && flat.predicted < 7.2, `flat 7 -> ${flat.predicted}`);
});

test('window features pad short histories and read only the last 20 samples', () => {
  assert.deepEqual(windowFeatures([2]).f, windowFeatures([2, 2, 2, 2, 2]).f);
  const long = [...new Array<number>(50).fill(100), ...new Array<number>(20).fill(3)];
  assert.deepEqual(windowFeatures(long).f, windowFeatures(long.slice(-20)).f);
});

test('quantile regression recovers the quantile of a known distribution', () => {
  // y = 1 + u with u uniform on {0, 0.1, ..., 0.9}: the 0.3 quantile of y is about 1.25 with bias only.
  const rows = Array.from({ length: 1000 }, (_, i) => ({
    f: [1, ...new Array<number>(14).fill(0)],
    y: 1 + (i % 10) / 10,
    w: 1,
    cv: 0,
    harmonicOver: false,
    last: 1,
  }));
  const beta = fitQuantile(rows, 0.3);
  assert.ok(beta[0]! >= 1.2 - 1e-3 && beta[0]! <= 1.3 + 1e-3, `bias ${beta[0]}`);
});

test("calibration raises a bin's quantile level towards its target, never past it on the training rows", () => {
  // Quantised samples (steps of 0.5) tie with the last value often, so the snapped predictions
  // over-estimate less often than the quantile level says: calibration has room to act.
  const q = (xs: number[]) => xs.map((x) => Math.round(x * 2) / 2);
  const data = [[q(series(1, 300, 5)), q(series(2, 300, 5)), q(series(3, 300, 50))]];
  const plain = trainBandwidthModel(data, { bins: 2, margin: 0.05 });
  const cal = trainBandwidthModel(data, { bins: 2, margin: 0.05, calibrate: 3 });
  const rows = trainingRows(data[0]!);
  assert.ok(
    cal.bins.some((b, i) => b.tau > plain.bins[i]!.tau),
    'some bin was raised',
  );
  for (let b = 0; b < 2; b++) {
    assert.ok(
      cal.bins[b]!.tau >= plain.bins[b]!.tau,
      `bin ${b}: ${cal.bins[b]!.tau} < ${plain.bins[b]!.tau}`,
    );
    // The bin's target: the harmonic mean's over-rate on its rows, minus margin and safety.
    const lo = b === 0 ? -Infinity : cal.bins[0]!.maxCv;
    const inBin = rows.filter((r) => r.cv > lo && r.cv <= cal.bins[b]!.maxCv);
    const part = inBin.length >= 50 ? inBin : rows;
    const target = part.filter((r) => r.harmonicOver).length / part.length - 0.05 - CALIBRATION_SAFETY;
    const over = (bin: (typeof cal.bins)[number]) =>
      part.filter((r) => {
        let p = Math.max(
          0,
          r.f.reduce((s, x, j) => s + x * (bin.point[j] ?? 0), 0),
        );
        if (Math.abs(p - r.last) <= bin.snap) p = r.last;
        return p > r.y;
      }).length / part.length;
    if (cal.bins[b]!.tau > plain.bins[b]!.tau) assert.ok(over(cal.bins[b]!) <= target + 1e-12);
  }
});
