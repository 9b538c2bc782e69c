// Trace parsers (good and bad inputs) and the binned simulator, which must place exactly as the
// scheduler itself does on the same hosts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ValidationError } from '../../errors.js';
import { STRATEGIES, resolveStrategy } from '../registry.js';
import { ANCHOR_AGE_SECONDS } from '../scorers/anchor.js';
import { placeVms } from '../scheduler.js';
import { mockNode, res } from '../testing/harness.js';
import type { NodeSnapshot } from '../types.js';
import { parseOpenbNodes, parseOpenbPods } from './alibaba.js';
import { parseAzureTrace, parseFlavorMap, parseIntervalMap } from './azure.js';
import { MinHeap, simulate } from './engine.js';
import { traceFromRows } from './trace.js';

const FLAV = '1,0.75 a\n2,3.5 g\n8,56 o\n';

describe('azure parser', () => {
  const flavors = parseFlavorMap(FLAV);
  it('reads flavors in milli-cores and MiB', () =>
    assert.deepEqual(flavors.get('g'), { cpuMilli: 2000, memoryMib: 3584 }));
  it('takes the lower bound of each duration bin', () => {
    const m = parseIntervalMap('0 0\n300 1\n600 2\n900 2\n');
    assert.equal(m.get(2), 600);
  });
  it('parses arrivals, batches, U and C durations', () => {
    const trace = parseAzureTrace('x', '300 a,|,g,g,|,\n600 o,|,\n', flavors, {
      text: '300 U1,|,C0,U0,|,\n600 U2,|,\n',
      censorTime: 900,
      lowerBoundByBin: parseIntervalMap('0 0\n300 1\n600 2\n'),
    });
    assert.equal(trace.count, 4);
    assert.deepEqual([...trace.arrival], [300, 300, 300, 600]);
    assert.deepEqual([...trace.departure], [600, Infinity, 300, 1200]);
    assert.deepEqual([...trace.cpuMilli], [1000, 2000, 2000, 8000]);
    assert.deepEqual([...trace.lifetime], [2, 2, 2, 2]);
  });
  it('classifies VMs of big batches as short-lived', () => {
    const trace = parseAzureTrace('x', `300 ${'a,'.repeat(11)}|,a,|,\n`, flavors);
    assert.deepEqual([...trace.lifetime], [...Array(11).fill(1), 2]);
  });
  const bad: [string, () => unknown][] = [
    ['bad flavor map line', () => parseFlavorMap('1 a\n')],
    ['unknown flavor', () => parseAzureTrace('x', '300 z,|,\n', flavors)],
    ['decreasing time', () => parseAzureTrace('x', '600 a,|,\n300 a,|,\n', flavors)],
    [
      'duration count mismatch',
      () =>
        parseAzureTrace('x', '300 a,a,|,\n', flavors, {
          text: '300 U0,|,\n',
          censorTime: 1,
          lowerBoundByBin: new Map([[0, 0]]),
        }),
    ],
    [
      'unknown bin',
      () =>
        parseAzureTrace('x', '300 a,|,\n', flavors, {
          text: '300 U9,|,\n',
          censorTime: 1,
          lowerBoundByBin: new Map([[0, 0]]),
        }),
    ],
  ];
  for (const [name, fn] of bad) it(`rejects ${name}`, () => assert.throws(fn, ValidationError));
});

describe('alibaba parser', () => {
  it('reads nodes and pods sorted by creation time', () => {
    const pool = parseOpenbNodes(
      'sn,cpu_milli,memory_mib,gpu,model\nn0,32000,262144,0,\nn1,96000,393216,8,V100\n',
    );
    assert.equal(pool.kind, 'list');
    if (pool.kind === 'list') assert.deepEqual([...pool.cpuMilli], [32000, 96000]);
    const pods = parseOpenbPods(
      'p',
      'name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n' +
        'a,1000,100,0,0,,LS,Running,50,80,50\nb,2000,200,0,0,,LS,Running,10,,10\n',
    );
    assert.deepEqual([...pods.arrival], [10, 50]);
    assert.deepEqual([...pods.departure], [Infinity, 80]);
    assert.deepEqual([...pods.cpuMilli], [2000, 1000]);
  });
  it('multigpu lists without times arrive in file order and stay', () => {
    const pods = parseOpenbPods('p', 'name,cpu_milli,memory_mib,num_gpu,gpu_milli\na,1,2,0,0\nb,3,4,0,0\n');
    assert.deepEqual([...pods.arrival], [0, 1]);
    assert.deepEqual([...pods.departure], [Infinity, Infinity]);
  });
  it('rejects a missing column and a bad number', () => {
    assert.throws(() => parseOpenbNodes('sn,cpu\nx,1\n'), ValidationError);
    assert.throws(() => parseOpenbPods('p', 'name,cpu_milli,memory_mib\na,x,1\n'), ValidationError);
  });
});

describe('simulate', () => {
  it('counts hosts against the lower bound with departures', () => {
    const trace = traceFromRows('t', [
      { arrival: 0, departure: 10, cpuMilli: 3000, memoryMib: 10 },
      { arrival: 0, cpuMilli: 3000, memoryMib: 10 },
      { arrival: 5, departure: 10, cpuMilli: 1000, memoryMib: 10 },
      { arrival: 20, cpuMilli: 1000, memoryMib: 10 },
    ]);
    const r = simulate(
      trace,
      { kind: 'uniform', cpuMilli: 4000, memoryMib: 1000 },
      resolveStrategy({ strategy: 'best-fit' }),
    );
    assert.equal(r.placed, 4);
    assert.equal(r.peakHosts, 2);
    // 0..5: 2 hosts, LB 2; 5..10: 2 hosts, LB 2; 10..20: 1 host, LB 1.
    assert.equal(r.meanHostsOverLowerBound, 1);
    assert.equal(r.hostOf[3], r.hostOf[1], 'the last VM joins the host still in use');
  });

  it('rejects on a fixed pool when nothing fits', () => {
    const trace = traceFromRows(
      't',
      [0, 0, 0].map((a) => ({ arrival: a, cpuMilli: 3000, memoryMib: 1 })),
    );
    const r = simulate(
      trace,
      { kind: 'uniform', cpuMilli: 4000, memoryMib: 1000, limit: 2 },
      resolveStrategy({ strategy: 'balanced' }),
    );
    assert.equal(r.rejected, 1);
    assert.ok(Math.abs(r.rejectionRate - 1 / 3) < 1e-12);
  });

  it('places exactly as placeVms does on the same hosts, for every strategy, with departures and aging', () => {
    const arb = fc.record({
      // Either a few random hosts, or many identical ones so that bins hold many hosts and the
      // tie-break heaps are exercised.
      hosts: fc.oneof(
        fc.array(fc.record({ c: fc.integer({ min: 1, max: 16 }), m: fc.integer({ min: 1, max: 64 }) }), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.integer({ min: 8, max: 30 }).map((n) => Array.from({ length: n }, () => ({ c: 4, m: 16 }))),
      ),
      vms: fc.array(
        fc.record({
          c: fc.integer({ min: 1, max: 4 }),
          m: fc.integer({ min: 1, max: 16 }),
          l: fc.constantFrom(undefined, 'short' as const, 'long' as const),
          // Lifetime in 10-minute steps (0 = leaves at its arrival instant), or never leaves.
          life: fc.option(fc.integer({ min: 0, max: 12 }), { nil: undefined }),
        }),
        { minLength: 1, maxLength: 60 },
      ),
      strategy: fc.constantFrom(...STRATEGIES.keys()),
      seed: fc.integer({ min: 0, max: 1000 }),
    });
    fc.assert(
      fc.property(arb, ({ hosts, vms, strategy, seed }) => {
        // Arrivals 20 minutes apart, so that VMs cross the one-hour anchor age during the replay.
        const at = (i: number): number => i * 1200;
        const departure = (i: number): number => {
          const life = vms[i]!.life;
          return life === undefined ? Infinity : at(i) + life * 600;
        };
        const trace = traceFromRows(
          't',
          vms.map((v, i) => ({
            arrival: at(i),
            departure: departure(i),
            cpuMilli: v.c * 1000,
            memoryMib: v.m,
            ...(v.l ? { lifetime: v.l } : {}),
          })),
        );
        const pool = {
          kind: 'list' as const,
          cpuMilli: Int32Array.from(hosts, (h) => h.c * 1000),
          memoryMib: Int32Array.from(hosts, (h) => h.m),
        };
        const sim = simulate(trace, pool, resolveStrategy({ strategy, seed }));
        // Replay with the scheduler itself, rebuilding each node from the VMs present at `now`
        // (departures at or before `now` are gone, as in the simulator).
        const placed: { node: number; vm: number }[] = [];
        vms.forEach((v, i) => {
          const now = at(i);
          const present = placed.filter((p) => departure(p.vm) > now);
          const nodes: NodeSnapshot[] = hosts.map((h, k) => {
            const here = present.filter((p) => p.node === k).map((p) => vms[p.vm]!);
            const mine = present.filter((p) => p.node === k);
            return mockNode(`host-${k}`, {
              capacity: res(h.c, h.m, 0),
              allocated: res(
                here.reduce((a, x) => a + x.c, 0),
                here.reduce((a, x) => a + x.m, 0),
                0,
              ),
              lifetimes: {
                short: here.filter((x) => x.l === 'short').length,
                long: here.filter((x) => x.l === 'long').length,
              },
              longRunning: mine.filter((p) => now - at(p.vm) >= ANCHOR_AGE_SECONDS).length,
            });
          });
          const out = placeVms(
            { nodes },
            [{ id: `vm-${i}`, resources: res(v.c, v.m, 0), ...(v.l ? { lifetime: v.l } : {}) }],
            { strategy, seed },
          );
          const p = out.placements[0];
          assert.equal(sim.hostOf[i], p ? Number(p.nodeId.slice(5)) : -1, `vm ${i}`);
          if (p) placed.push({ node: Number(p.nodeId.slice(5)), vm: i });
        });
      }),
      { numRuns: 300 },
    );
  });
});

describe('MinHeap (tie-break order within a bin)', () => {
  it('always tops the lowest rank under random pushes and removals', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 60 }),
        fc.array(fc.tuple(fc.boolean(), fc.nat()), { maxLength: 200 }),
        (ranks, ops) => {
          const pos: number[] = ranks.map(() => -1);
          const heap = new MinHeap(ranks, pos);
          const model = new Set<number>();
          for (const [push, k] of ops) {
            const h = k % ranks.length;
            if (push && !model.has(h)) {
              heap.push(h);
              model.add(h);
            } else if (!push && model.has(h)) {
              heap.remove(h);
              model.delete(h);
            }
            assert.equal(heap.size, model.size);
            if (model.size > 0) {
              const min = Math.min(...[...model].map((x) => ranks[x]!));
              assert.equal(ranks[heap.top()], min);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

it('MinHeap restores order upwards after removing from the middle', () => {
  // Removing host 3 moves the last leaf (rank 4) under rank 10: it must rise.
  const ranks = [1, 10, 2, 11, 12, 3, 4];
  const heap = new MinHeap(
    ranks,
    ranks.map(() => -1),
  );
  ranks.forEach((_, h) => heap.push(h));
  heap.remove(3);
  const order: number[] = [];
  while (heap.size > 0) {
    const h = heap.top();
    order.push(ranks[h]!);
    heap.remove(h);
  }
  assert.deepEqual(order, [1, 2, 3, 4, 10, 12]);
});
