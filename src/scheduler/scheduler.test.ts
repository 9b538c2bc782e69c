// The scheduler as a whole: reasons, scores, batches, determinism, errors, and properties
// (never beyond capacity; a feasible single request is always placed).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { defaultConfig } from '../config/defaults.js';
import { NovaCronError, ValidationError } from '../errors.js';
import { STRATEGIES } from './registry.js';
import {
  nodeScores,
  placeVm,
  placeVms,
  schedulerOptionsFromConfig,
  unschedulableError,
} from './scheduler.js';
import { Harness, mockCluster, mockNode, mockRequest, res } from './testing/harness.js';
import type { ClusterSnapshot, NodeSnapshot, PlacementRequest } from './types.js';

const opts = { strategy: 'balanced', seed: 0 };

describe('placeVms', () => {
  it('records a reason for every rejected node and a score for every kept node', () => {
    const snapshot: ClusterSnapshot = {
      nodes: [
        mockNode('down', { status: 'down' }),
        mockNode('sim', { drivers: ['sim'] }),
        mockNode('full', { allocated: res(15, 0, 0) }),
        mockNode('ok-a'),
        mockNode('ok-b', { allocated: res(8, 8192, 0) }),
      ],
    };
    const d = placeVms(snapshot, [mockRequest('vm', { driver: 'qemu' })], opts);
    const p = d.placements[0]!;
    assert.equal(p.nodeId, 'ok-b', 'binpack prefers the fuller node');
    assert.deepEqual(
      p.rejections.map((r) => [r.nodeId, r.filter]),
      [
        ['down', 'node-status'],
        ['sim', 'driver-capability'],
        ['full', 'capacity'],
      ],
    );
    assert.deepEqual(p.scores.nodeIds, ['ok-a', 'ok-b']);
    assert.deepEqual(
      nodeScores(p).map((s) => s.nodeId),
      ['ok-b', 'ok-a'],
      'nodeScores sorts best first',
    );
    assert.deepEqual(
      p.sources.map((c) => c.scorer),
      ['anchor', 'binpack'],
    );
    for (const s of nodeScores(p)) {
      const w = p.sources.reduce((a, c) => a + c.weight, 0);
      const sum = p.sources.reduce((a, c, k) => a + c.weight * s.components[k]!, 0);
      assert.ok(Math.abs(s.total - sum / w) < 1e-9);
    }
  });

  it('returns an unschedulable outcome with per-node reasons, not an exception', () => {
    const snapshot = {
      nodes: [mockNode('a', { status: 'draining' }), mockNode('b', { allocated: res(16, 0, 0) })],
    };
    const out = placeVm(snapshot, mockRequest('vm'), opts);
    assert.equal(out.status, 'unschedulable');
    if (out.status !== 'unschedulable') return;
    assert.deepEqual(out.byFilter, { 'node-status': 1, capacity: 1 });
    const err = unschedulableError(out);
    assert.ok(err instanceof NovaCronError);
    assert.equal(err.code, 'conflict');
    const details = err.details as { reasons: { nodeId: string; reason: string }[] };
    assert.deepEqual(
      details.reasons.map((r) => r.nodeId),
      ['a', 'b'],
    );
    assert.match(details.reasons[1]!.reason, /insufficient cpu/);
  });

  it('capacity-only rejections map to resource_exhausted; an empty cluster too', () => {
    const full = placeVm(mockCluster(2, { allocated: res(16, 0, 0) }), mockRequest('vm'), opts);
    assert.equal(full.status, 'unschedulable');
    if (full.status === 'unschedulable') assert.equal(unschedulableError(full).code, 'resource_exhausted');
    const none = placeVm({ nodes: [] }, mockRequest('vm'), opts);
    assert.equal(none.status, 'unschedulable');
    if (none.status === 'unschedulable') assert.equal(unschedulableError(none).code, 'resource_exhausted');
  });

  it('places a batch, each VM seeing the ones before it', () => {
    const snapshot = mockCluster(3, { capacity: res(4, 8192, 100) });
    const batch = Array.from({ length: 6 }, (_, i) =>
      mockRequest(`vm-${i}`, { resources: res(2, 1024, 10) }),
    );
    const d = placeVms(snapshot, batch, opts);
    assert.equal(d.placements.length, 6);
    const perNode = new Map<string, number>();
    for (const p of d.placements) perNode.set(p.nodeId, (perNode.get(p.nodeId) ?? 0) + 1);
    assert.deepEqual([...perNode.values()], [2, 2, 2]);
    assert.equal(snapshot.nodes[0]!.allocated.cpus, 0, 'the input snapshot is not mutated');
  });

  it('batch: the VMs that do not fit are unschedulable, the others placed', () => {
    const d = placeVms(
      mockCluster(1, { capacity: res(4, 8192, 100) }),
      [1, 2, 3].map((i) => mockRequest(`vm-${i}`, { resources: res(2, 1024, 1) })),
      opts,
    );
    assert.deepEqual(
      d.placements.map((p) => p.requestId),
      ['vm-1', 'vm-2'],
    );
    assert.deepEqual(
      d.unschedulable.map((u) => u.requestId),
      ['vm-3'],
    );
  });

  it('anti-affinity within a batch puts each VM on its own node', () => {
    const d = placeVms(
      mockCluster(3),
      [1, 2, 3, 4].map((i) => mockRequest(`db-${i}`, { antiAffinityGroup: 'db' })),
      opts,
    );
    assert.equal(new Set(d.placements.map((p) => p.nodeId)).size, 3);
    assert.deepEqual(d.unschedulable[0]?.byFilter, { 'anti-affinity': 3 });
  });

  it('spread keeps the skew within maxSkew even under binpack', () => {
    const reqs = Array.from({ length: 9 }, (_, i) =>
      mockRequest(`web-${i}`, { spread: { group: 'web', maxSkew: 1 } }),
    );
    const d = placeVms(mockCluster(3), reqs, opts);
    const counts = new Map<string, number>();
    for (const p of d.placements) counts.set(p.nodeId, (counts.get(p.nodeId) ?? 0) + 1);
    assert.deepEqual([...counts.values()], [3, 3, 3]);
  });

  it('label selector and live migration requirements', () => {
    const snapshot = {
      nodes: [
        mockNode('a', { labels: { zone: 'x' } }),
        mockNode('b', { labels: { zone: 'y' }, liveMigration: false }),
      ],
    };
    const p1 = placeVm(snapshot, mockRequest('vm', { nodeSelector: { zone: 'y' } }), opts);
    assert.equal(p1.status === 'placed' && p1.nodeId, 'b');
    const p2 = placeVm(
      snapshot,
      mockRequest('vm', { nodeSelector: { zone: 'y' }, requireLiveMigration: true }),
      opts,
    );
    assert.equal(p2.status, 'unschedulable');
  });

  it('is deterministic for the same input and seed, and the seed moves ties', () => {
    const snapshot = mockCluster(50);
    const reqs = Array.from({ length: 20 }, (_, i) => mockRequest(`vm-${i}`));
    for (const strategy of STRATEGIES.keys()) {
      const a = placeVms(snapshot, reqs, { strategy, seed: 7 });
      const b = placeVms(snapshot, reqs, { strategy, seed: 7 });
      assert.deepEqual(a, b, strategy);
    }
    const firsts = new Set(
      [1, 2, 3, 4, 5].map(
        (seed) => placeVms(snapshot, reqs.slice(0, 1), { strategy: 'spread', seed }).placements[0]!.nodeId,
      ),
    );
    assert.ok(firsts.size > 1, 'seeded tie-break picks different nodes for different seeds');
  });

  it('spread strategy spreads, first-fit takes snapshot order', () => {
    const reqs = [1, 2, 3].map((i) => mockRequest(`vm-${i}`));
    const spread = placeVms(mockCluster(3), reqs, { strategy: 'spread' });
    assert.equal(new Set(spread.placements.map((p) => p.nodeId)).size, 3);
    const ff = placeVms(mockCluster(3), reqs, { strategy: 'first-fit' });
    assert.deepEqual(
      ff.placements.map((p) => p.nodeId),
      ['node-0', 'node-0', 'node-0'],
    );
  });

  it('config weights override the strategy; 0 drops a scorer', () => {
    const snapshot = { nodes: [mockNode('empty'), mockNode('busy', { allocated: res(8, 8192, 0) })] };
    const pack = placeVm(snapshot, mockRequest('vm'), { strategy: 'balanced' });
    assert.equal(pack.status === 'placed' && pack.nodeId, 'busy');
    const flipped = placeVm(snapshot, mockRequest('vm'), {
      strategy: 'balanced',
      weights: { binpack: 0, spread: 1 },
    });
    assert.equal(flipped.status === 'placed' && flipped.nodeId, 'empty');
    assert.deepEqual(schedulerOptionsFromConfig({ strategy: 'binpack', weights: { spread: 2 }, seed: 3 }), {
      strategy: 'binpack',
      weights: { spread: 2 },
      seed: 3,
    });
  });

  it('the default config selects a strategy that exists and places with it', () => {
    const options = schedulerOptionsFromConfig(defaultConfig().scheduler);
    assert.ok(STRATEGIES.has(options.strategy));
    assert.equal(placeVm(mockCluster(2), mockRequest('vm'), options).status, 'placed');
  });

  it('anchor steers new VMs to hosts running a long-lived VM', () => {
    const snapshot = {
      nodes: [
        mockNode('young', { allocated: res(8, 8192, 0), longRunning: 0 }),
        mockNode('anchored', { allocated: res(4, 4096, 0), longRunning: 1 }),
      ],
    };
    const balanced = placeVm(snapshot, mockRequest('vm'), { strategy: 'balanced' });
    assert.equal(balanced.status === 'placed' && balanced.nodeId, 'anchored');
    const bestFit = placeVm(snapshot, mockRequest('vm'), { strategy: 'best-fit' });
    assert.equal(bestFit.status === 'placed' && bestFit.nodeId, 'young');
  });

  it('rejects malformed input with ValidationError', () => {
    const s = mockCluster(1);
    assert.throws(
      () => placeVms(s, [], { strategy: 'nope' }),
      (e) => e instanceof ValidationError && e.key === 'scheduler.strategy',
    );
    assert.throws(() => placeVms(s, [], { strategy: 'balanced', weights: { nope: 1 } }), ValidationError);
    assert.throws(() => placeVms(s, [], { strategy: 'balanced', weights: { binpack: -1 } }), ValidationError);
    assert.throws(() => placeVms(s, [mockRequest('a'), mockRequest('a')], opts), /duplicate/);
    assert.throws(() => placeVms(s, [mockRequest('a', { resources: res(-1, 0, 0) })], opts), ValidationError);
  });

  it('Harness applies placements between batches', () => {
    const h = new Harness(mockCluster(2, { capacity: res(4, 8192, 100) }), { strategy: 'balanced' });
    h.place([mockRequest('a', { resources: res(3, 1, 1) })]);
    const d = h.place([mockRequest('b', { resources: res(3, 1, 1) })]);
    assert.notEqual(d.placements[0]!.nodeId, h.decisions[0]!.placements[0]!.nodeId);
  });
});

describe('properties', () => {
  const arbNode = (i: number): fc.Arbitrary<NodeSnapshot> =>
    fc
      .record({
        cap: fc.record({
          cpus: fc.integer({ min: 1, max: 64 }),
          mem: fc.integer({ min: 1, max: 1 << 18 }),
          disk: fc.integer({ min: 0, max: 2000 }),
        }),
        frac: fc.tuple(
          fc.double({ min: 0, max: 1, noNaN: true }),
          fc.double({ min: 0, max: 1, noNaN: true }),
          fc.double({ min: 0, max: 1, noNaN: true }),
        ),
        status: fc.constantFrom(
          'ready',
          'ready',
          'ready',
          'down',
          'draining',
          'cordoned',
          'partitioned' as const,
        ),
      })
      .map(({ cap, frac, status }) =>
        mockNode(`n${i}`, {
          status,
          capacity: res(cap.cpus, cap.mem, cap.disk),
          allocated: res(
            Math.floor(cap.cpus * frac[0]),
            Math.floor(cap.mem * frac[1]),
            Math.floor(cap.disk * frac[2]),
          ),
        }),
      );
  const arbCluster = fc
    .integer({ min: 0, max: 12 })
    .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => arbNode(i))))
    .map((nodes): ClusterSnapshot => ({ nodes }));
  const arbRequests = fc
    .array(
      fc.record({
        cpus: fc.integer({ min: 0, max: 32 }),
        mem: fc.integer({ min: 0, max: 1 << 17 }),
        disk: fc.integer({ min: 0, max: 500 }),
      }),
      { minLength: 1, maxLength: 15 },
    )
    .map((rs): PlacementRequest[] =>
      rs.map((r, i) => mockRequest(`vm-${i}`, { resources: res(r.cpus, r.mem, r.disk) })),
    );
  const arbStrategy = fc.constantFrom(...STRATEGIES.keys());

  it('never places beyond capacity, only on ready nodes', () => {
    fc.assert(
      fc.property(arbCluster, arbRequests, arbStrategy, fc.integer(), (snapshot, reqs, strategy, seed) => {
        const d = placeVms(snapshot, reqs, { strategy, seed });
        const used = new Map(snapshot.nodes.map((n) => [n.id, { ...n.allocated }]));
        const byId = new Map(reqs.map((r) => [r.id, r]));
        for (const p of d.placements) {
          const u = used.get(p.nodeId)!;
          const r = byId.get(p.requestId)!.resources;
          u.cpus += r.cpus;
          u.memoryMib += r.memoryMib;
          u.diskGib += r.diskGib;
        }
        for (const n of snapshot.nodes) {
          const u = used.get(n.id)!;
          const changed = d.placements.some((p) => p.nodeId === n.id);
          if (!changed) continue;
          assert.equal(n.status, 'ready');
          assert.ok(
            u.cpus <= n.capacity.cpus &&
              u.memoryMib <= n.capacity.memoryMib &&
              u.diskGib <= n.capacity.diskGib,
          );
        }
        assert.equal(d.placements.length + d.unschedulable.length, reqs.length);
      }),
      { numRuns: 300 },
    );
  });

  it('a feasible single request is always placed; an infeasible one has a reason per node', () => {
    fc.assert(
      fc.property(arbCluster, arbRequests, arbStrategy, (snapshot, reqs, strategy) => {
        const req = reqs[0]!;
        const feasible = snapshot.nodes.some(
          (n) =>
            n.status === 'ready' &&
            n.allocated.cpus + req.resources.cpus <= n.capacity.cpus &&
            n.allocated.memoryMib + req.resources.memoryMib <= n.capacity.memoryMib &&
            n.allocated.diskGib + req.resources.diskGib <= n.capacity.diskGib,
        );
        const out = placeVm(snapshot, req, { strategy });
        assert.equal(out.status, feasible ? 'placed' : 'unschedulable');
        if (out.status === 'unschedulable') assert.equal(out.reasons.length, snapshot.nodes.length);
        else assert.equal(out.rejections.length + out.scores.nodeIds.length, snapshot.nodes.length);
      }),
      { numRuns: 300 },
    );
  });
});
