import { test } from 'node:test';
import assert from 'node:assert/strict';
import { replay, type ReplayTrace } from './lifetime-replay.js';

function trace(rows: readonly [arrival: number, departure: number, cpu: number][]): ReplayTrace {
  const n = rows.length;
  const t: ReplayTrace = {
    count: n,
    arrival: new Float64Array(n),
    departure: new Float64Array(n),
    cpu: new Float64Array(n),
    mem: new Float64Array(n),
  };
  rows.forEach(([a, d, c], i) => {
    t.arrival[i] = a;
    t.departure[i] = d;
    t.cpu[i] = c;
    t.mem[i] = c;
  });
  return t;
}

const host = { hostCpu: 4, hostMem: 4 };

test('replay: time-averaged hosts, lower bound, peak and emptied hosts on a known schedule', () => {
  // Two full-host VMs overlapping on [50, 100); a 0-size marker arrival closes the window at 150.
  const tr = trace([
    [0, 100, 4],
    [50, 300, 4],
    [150, 400, 0],
  ]);
  const r = replay(tr, { ...host, alignWeight: 0 });
  assert.ok(Math.abs(r.meanHosts - (50 * 1 + 50 * 2 + 50 * 1) / 150) < 1e-9, `${r.meanHosts}`);
  assert.ok(Math.abs(r.meanLowerBound - r.meanHosts) < 1e-9);
  assert.equal(r.peakHosts, 2);
  assert.equal(r.hostsEmptied, 1);
  assert.equal(r.strandedCpu, 0);
});

test('replay: true end times keep a long VM off a host about to empty; best fit does not', () => {
  // A (3 CPU) leaves at 100; B (2 CPU) runs long. C (1 CPU, long) fits both hosts: best fit fills
  // A's host, which then stays on until the end; end-time alignment puts C next to B instead.
  const tr = trace([
    [0, 100, 3],
    [0, 10_000, 2],
    [10, 10_010, 1],
    [5000, 20_000, 0],
  ]);
  const bestFit = replay(tr, { ...host, alignWeight: 0, from: 0, to: 5000 });
  assert.equal(bestFit.meanHosts, 2);
  const truth = { initial: (i: number) => tr.departure[i]! - tr.arrival[i]! };
  const aligned = replay(tr, { ...host, alignWeight: 0.6, ends: truth, from: 0, to: 5000 });
  assert.ok(Math.abs(aligned.meanHosts - (100 * 2 + 4900 * 1) / 5000) < 1e-9, `${aligned.meanHosts}`);
  assert.equal(aligned.hostsEmptied, 1);
  // Wrong end times (everything predicted to end at once) lose the gain.
  const blind = replay(tr, { ...host, alignWeight: 0.6, ends: { initial: () => 1000 }, from: 0, to: 5000 });
  assert.equal(blind.meanHosts, 2);
});

test("replay: re-prediction moves an overdue VM's end and is counted; bad options are refused", () => {
  const tr = trace([
    [0, 1000, 1],
    [500, 2000, 1],
    [1500, 3000, 0],
  ]);
  const calls: number[] = [];
  const r = replay(tr, {
    ...host,
    alignWeight: 0.5,
    ends: {
      initial: () => 100,
      remaining: (_i, age) => {
        calls.push(age);
        return age;
      },
    },
  });
  // Re-predicted remaining lifetimes are at least 300 s. VM 0 is overdue at 100 (age 100, next end
  // 400) and at 400 (next 800); VM 1 (arrived 500) at 600 (age 100); VM 0 again at 800 (age 800).
  assert.deepEqual(calls.slice(0, 4), [100, 400, 100, 800]);
  assert.ok(r.repredictions >= 4);
  assert.throws(() => replay(tr, { ...host, alignWeight: 0.5 }), /needs end times/);
});
