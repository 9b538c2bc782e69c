// Table tests for every scorer plugin, each alone: the score of a demand on a node, and the
// ordering the scorer induces between two nodes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mockNode, mockRequest, res } from '../testing/harness.js';
import type { NodeUsage } from '../types.js';
import { alignmentScore } from './alignment.js';
import { anchorScore, anchorScorer } from './anchor.js';
import { balancedAllocationScore } from './balanced-allocation.js';
import { binpackScore } from './binpack.js';
import { dominantScore } from './dominant.js';
import { leastAllocatedScore, mostAllocatedScore } from './kube-allocated.js';
import { lifetimeFromBatchSize, lifetimeScore, lifetimeScorer } from './lifetime.js';
import { clampHint, mlHintScorer } from './ml-hint.js';
import { spreadScore } from './spread.js';

const node = (cpus: number, mem: number, capCpus = 10, capMem = 1000): NodeUsage => ({
  capacity: res(capCpus, capMem),
  allocated: res(cpus, mem),
});
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);

describe('binpack', () => {
  const cases: [string, NodeUsage, number][] = [
    ['empty node', node(0, 0), 50 * (0.2 + 0.2)],
    ['half full', node(5, 500), 50 * (0.7 + 0.7)],
    ['filled exactly', node(8, 800), 100],
  ];
  for (const [name, n, want] of cases) it(name, () => close(binpackScore(res(2, 200), n), want));
  it('prefers the fuller node', () =>
    assert.ok(binpackScore(res(1, 1), node(6, 0)) > binpackScore(res(1, 1), node(2, 0))));
});

describe('dominant', () => {
  it('uses the scarcer resource', () => close(dominantScore(res(1, 0), node(4, 900)), 90));
  it('cpu-bound', () => close(dominantScore(res(2, 0), node(7, 100)), 90));
});

describe('spread', () => {
  it('empty node scores highest', () => close(spreadScore(res(2, 200), node(0, 0)), 80));
  it('prefers the emptier node', () =>
    assert.ok(spreadScore(res(1, 1), node(2, 0)) > spreadScore(res(1, 1), node(6, 0))));
});

describe('most-allocated / least-allocated (Kubernetes integer arithmetic)', () => {
  const cases: [string, NodeUsage, number, number][] = [
    ['empty', node(0, 0, 3, 3), 33, 66],
    ['one third used', node(1, 1, 3, 3), 66, 33],
    ['full after', node(2, 2, 3, 3), 100, 0],
  ];
  for (const [name, n, most, least] of cases)
    it(name, () => {
      assert.equal(mostAllocatedScore(res(1, 1), n), most);
      assert.equal(leastAllocatedScore(res(1, 1), n), least);
    });
  it('overcommitted resource scores 0', () =>
    assert.equal(mostAllocatedScore(res(5, 0), node(0, 0, 3, 3)), 0));
});

describe('alignment (Tetris)', () => {
  it('free shape equal to demand shape scores 100', () =>
    close(alignmentScore(res(1, 100), node(5, 500)), 100));
  it('cpu-heavy demand prefers the node with cpu left', () => {
    const cpuLeft = node(0, 900);
    const memLeft = node(9, 0);
    assert.ok(alignmentScore(res(1, 10), cpuLeft) > alignmentScore(res(1, 10), memLeft));
  });
  it('zero demand scores 0', () => close(alignmentScore(res(0, 0), node(0, 0)), 0));
});

describe('balanced-allocation', () => {
  it('equal utilisation scores 100', () => close(balancedAllocationScore(res(1, 100), node(4, 400)), 100));
  it('skewed utilisation scores lower', () => close(balancedAllocationScore(res(0, 0), node(10, 0)), 50));
});

describe('lifetime', () => {
  const withVms = (short: number, long: number): NodeUsage => ({ ...node(1, 1), lifetimes: { short, long } });
  const cases: [string, 'short' | 'long' | undefined, NodeUsage, number][] = [
    ['unknown class', undefined, withVms(3, 3), 50],
    ['empty node', 'short', withVms(0, 0), 50],
    ['no lifetimes field', 'long', node(1, 1), 50],
    ['same class only', 'short', withVms(2, 0), 100],
    ['other class present', 'short', withVms(2, 1), 0],
    ['long on long', 'long', withVms(0, 4), 100],
  ];
  for (const [name, cls, n, want] of cases) it(name, () => assert.equal(lifetimeScore(cls, n), want));
  it('plugin reads the request class', () =>
    assert.equal(
      lifetimeScorer.score(
        mockRequest('a', { lifetime: 'long' }),
        mockNode('n', { lifetimes: { short: 1, long: 0 } }),
        { hints: undefined },
      ),
      0,
    ));
  it('batch size classifies', () => {
    assert.equal(lifetimeFromBatchSize(1), 'long');
    assert.equal(lifetimeFromBatchSize(10), 'long');
    assert.equal(lifetimeFromBatchSize(11), 'short');
  });
});

describe('ml-hint', () => {
  it('reads the hint for the node', () =>
    assert.equal(mlHintScorer.score(mockRequest('a'), mockNode('n'), { hints: new Map([['n', 70]]) }), 70));
  it('no hints scores 0', () =>
    assert.equal(mlHintScorer.score(mockRequest('a'), mockNode('n'), { hints: undefined }), 0));
  const clamp: [number | undefined, number][] = [
    [undefined, 0],
    [Number.NaN, 0],
    [-5, 0],
    [250, 100],
    [42, 42],
  ];
  for (const [v, want] of clamp) it(`clamps ${v}`, () => assert.equal(clampHint(v), want));
});

describe('anchor', () => {
  const cases: [string, NodeUsage, number][] = [
    ['no field', node(1, 1), 0],
    ['no long-running VM', { ...node(1, 1), longRunning: 0 }, 0],
    ['one long-running VM', { ...node(1, 1), longRunning: 1 }, 100],
  ];
  for (const [name, n, want] of cases) it(name, () => assert.equal(anchorScore(n), want));
  it('plugin and usage agree', () => {
    const n = mockNode('n', { longRunning: 2 });
    assert.equal(
      anchorScorer.score(mockRequest('a'), n, { hints: undefined }),
      anchorScorer.usage!(mockRequest('a'), n),
    );
  });
});
