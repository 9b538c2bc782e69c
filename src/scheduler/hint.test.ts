// The ML hint hook: hints steer placement when they arrive in time; a hanging, throwing or
// malformed provider falls back silently to the local scorers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PlacementHintProvider } from './hint.js';
import { placeVmsWithHints } from './hint.js';
import { placeVms } from './scheduler.js';
import { mockCluster, mockRequest } from './testing/harness.js';

const snapshot = mockCluster(4);
const reqs = [mockRequest('vm-1'), mockRequest('vm-2')];
const options = { strategy: 'spread', seed: 1 };
const local = placeVms(snapshot, reqs, options);

describe('placeVmsWithHints', () => {
  it('uses hints that arrive in time', async () => {
    const provider: PlacementHintProvider = {
      scoreNodes: (_req, nodes) =>
        Promise.resolve(new Map(nodes.map((n) => [n.id, n.id === 'node-3' ? 100 : 0]))),
    };
    const d = await placeVmsWithHints(snapshot, reqs.slice(0, 1), options, {
      provider,
      deadlineMs: 1000,
      weight: 10,
    });
    assert.deepEqual(d.hinted, ['vm-1']);
    assert.equal(d.placements[0]!.nodeId, 'node-3');
    assert.ok(d.placements[0]!.sources.some((c) => c.scorer === 'ml-hint'));
  });

  it('falls back when the provider hangs past the deadline', async () => {
    const fallbacks: string[] = [];
    const provider: PlacementHintProvider = { scoreNodes: () => new Promise(() => {}) };
    const d = await placeVmsWithHints(snapshot, reqs, options, {
      provider,
      deadlineMs: 20,
      onFallback: (id, why) => fallbacks.push(`${id}:${why}`),
    });
    assert.deepEqual(d.hinted, []);
    assert.deepEqual(d.placements, local.placements);
    assert.deepEqual(fallbacks.sort(), ['vm-1:timeout', 'vm-2:timeout']);
  });

  it('falls back when the provider throws, synchronously or not', async () => {
    const sync: PlacementHintProvider = {
      scoreNodes: () => {
        throw new Error('bridge down');
      },
    };
    const async: PlacementHintProvider = { scoreNodes: () => Promise.reject(new Error('bridge down')) };
    for (const provider of [sync, async]) {
      const why: string[] = [];
      const d = await placeVmsWithHints(snapshot, reqs, options, {
        provider,
        deadlineMs: 1000,
        onFallback: (_id, w) => why.push(w),
      });
      assert.deepEqual(d.placements, local.placements);
      assert.deepEqual(why, ['error', 'error']);
    }
  });

  it('ignores a malformed answer', async () => {
    const provider = { scoreNodes: () => Promise.resolve({} as Map<string, number>) };
    const d = await placeVmsWithHints(snapshot, reqs, options, { provider, deadlineMs: 1000 });
    assert.deepEqual(d.placements, local.placements);
  });
});
