import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  batchBucket,
  daySlot,
  lifetimeClassOf,
  lifetimeDistribution,
  lifetimeQuantileS,
  predictLifetime,
  trainLifetimeModel,
  validateLifetimeParams,
  type LifetimeExample,
} from './lifetime-model.js';
import { parseAzureVms, parseFlavorMap, parseIntervalMap } from '../eval/azure.js';
import { classifierMetrics, lifetimeExamples } from '../eval/lifetime-eval.js';
import { NovaCronError } from '../../errors.js';

const sizes = { a: [1, 0.75], b: [1, 1.75], m: [8, 14] } as const;

function ex(flavor: 'a' | 'b' | 'm', batchSize: number, cls: number, n: number): LifetimeExample[] {
  const [vcpus, memoryGb] = sizes[flavor];
  const life = [600, 7200, 200000][cls]!;
  return Array.from({ length: n }, () => ({
    vm: { vcpus, memoryGb, flavor, batchSize, arrivalTimeS: 3600 },
    cls,
    lifetimeS: life,
  }));
}

test('class bounds: short < 1 h <= medium <= 1 day < long', () => {
  assert.deepEqual([599, 3599, 3600, 86400, 86401].map(lifetimeClassOf), [0, 0, 1, 1, 2]);
  assert.deepEqual([1, 2, 3, 4, 10, 11, 50, 51].map(batchBucket), [
    '1',
    '2-3',
    '2-3',
    '4-10',
    '4-10',
    '11-50',
    '11-50',
    '51+',
  ]);
  assert.deepEqual([0, 14399, 14400, 86399, 86400 + 20000].map(daySlot), [0, 0, 1, 5, 1]);
});

test('learns what separates classes, recognises a flavor by size, backs off for unseen keys', () => {
  const params = trainLifetimeModel(
    [...ex('b', 1, 2, 300), ...ex('b', 20, 0, 300), ...ex('m', 1, 1, 300)],
    sizes,
    10,
  );
  validateLifetimeParams(JSON.parse(JSON.stringify(params)));
  assert.equal(
    predictLifetime(params, { vcpus: 1, memoryGb: 1.75, flavor: 'b', batchSize: 1, arrivalTimeS: 0 }).cls,
    2,
  );
  assert.equal(
    predictLifetime(params, { vcpus: 1, memoryGb: 1.75, batchSize: 30, arrivalTimeS: 0 }).cls,
    0,
    'flavor from size',
  );
  assert.equal(predictLifetime(params, { vcpus: 8, memoryGb: 14, batchSize: 1, arrivalTimeS: 0 }).cls, 1);
  const unseen = predictLifetime(params, { vcpus: 3, memoryGb: 3, batchSize: 100, arrivalTimeS: 0 });
  assert.ok(Math.abs(unseen.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-9);
  assert.ok(unseen.expectedLifetimeS > 0);
  assert.throws(() => validateLifetimeParams({ ...params, prior: [1] }), NovaCronError);
});

test('Azure flavor and duration traces join token for token; censored VMs kept only when surely long', () => {
  const flavors = parseFlavorMap('1,0.75 a\n8,14 m\n');
  const intervals = parseIntervalMap('0 0\n300 1\n3600 12\n86400 35\n86700 36\n90000 36\n');
  const vms = parseAzureVms('300 a,|,m,m,|\n600 a,|\n', '300 U1,|,U12,C36,|\n600 C1,|\n', flavors);
  assert.deepEqual(
    vms.map((v) => [v.arrival, v.flavor, v.batchSize, v.durationBin, v.censored]),
    [
      [300, 'a', 1, 1, false],
      [300, 'm', 2, 12, false],
      [300, 'm', 2, 36, true],
      [600, 'a', 1, 1, true],
    ],
  );
  const { examples, dropped } = lifetimeExamples(vms, intervals);
  assert.deepEqual(
    examples.map((e) => e.cls),
    [0, 1, 2],
  );
  assert.equal(dropped, 1);
  assert.throws(() => parseAzureVms('300 a,|\n', '300 U1,U2,|\n', flavors), NovaCronError);
});

test('classifier metrics on a fixed confusion', () => {
  // labels 0,0,1,2 predicted 0,1,1,1: accuracy 0.5; F1 class0 = 2/3, class1 = 2/4, class2 = 0
  const m = classifierMetrics([0, 0, 1, 2], [0, 1, 1, 1]);
  assert.equal(m.accuracy, 0.5);
  assert.ok(Math.abs(m.macroF1 - (2 / 3 + 0.5 + 0) / 3) < 1e-12);
  assert.equal(m.shortAccuracy, 0.75);
  assert.equal(m.logLoss, undefined);
  const p = classifierMetrics(
    [0, 1],
    [
      [0.5, 0.25, 0.25],
      [0.5, 0.25, 0.25],
    ],
  );
  assert.ok(Math.abs(p.logLoss! - (Math.log(2) + Math.log(4)) / 2) < 1e-12);
});

test('lifetime histogram: quantiles within log-uniform bins, conditional on age; trained and validated', () => {
  const edges = [600, 1200, 3600];
  // All mass in [600, 1200): the median is the geometric middle; given an age of 1000 s, the
  // median of what is left, [1000, 1200).
  const one = [0, 1, 0, 0];
  assert.ok(Math.abs(lifetimeQuantileS(edges, one, 0.5) - Math.sqrt(600 * 1200)) < 1e-6);
  assert.ok(Math.abs(lifetimeQuantileS(edges, one, 0.5, 1000) - Math.sqrt(1000 * 1200)) < 1e-6);
  // Half in [300, 600), half in [1200, 3600): the median is the edge between the halves' mass, and
  // once the VM is 900 s old only the upper half is left, whose median is sqrt(1200 * 3600).
  const two = [0.5, 0, 0.5, 0];
  const m = lifetimeQuantileS(edges, two, 0.5);
  assert.ok(m >= 600 - 1e-6 && m <= 1200 + 1e-6, `${m}`);
  assert.ok(Math.abs(lifetimeQuantileS(edges, two, 0.5, 900) - Math.sqrt(1200 * 3600)) < 1e-6);
  assert.ok(lifetimeQuantileS(edges, two, 0.9) > lifetimeQuantileS(edges, two, 0.5));

  const params = trainLifetimeModel([...ex('b', 1, 2, 300), ...ex('b', 20, 0, 300)], sizes, 10);
  const h = params.histogram!;
  assert.equal(h.prior.length, h.edgesS.length + 1);
  assert.ok(Math.abs(h.prior.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  validateLifetimeParams(JSON.parse(JSON.stringify(params)));
  const long = lifetimeDistribution(params, { vcpus: 1, memoryGb: 1.75, batchSize: 1, arrivalTimeS: 3600 });
  const short = lifetimeDistribution(params, { vcpus: 1, memoryGb: 1.75, batchSize: 20, arrivalTimeS: 3600 });
  assert.ok(
    lifetimeQuantileS(h.edgesS, long, 0.5) > 20 * lifetimeQuantileS(h.edgesS, short, 0.5),
    'batch-1 VMs (200,000 s) against batch-20 VMs (600 s)',
  );
  assert.throws(
    () => validateLifetimeParams({ ...params, histogram: { ...h, edgesS: [600, 300] } }),
    NovaCronError,
  );
  assert.throws(
    () => validateLifetimeParams({ ...params, histogram: { ...h, prior: [1, 0] } }),
    NovaCronError,
  );
  const { histogram: _omit, ...noHist } = params;
  validateLifetimeParams(noHist);
  assert.throws(
    () => lifetimeDistribution(noHist, { vcpus: 1, memoryGb: 1, batchSize: 1, arrivalTimeS: 0 }),
    /histogram/,
  );
});
