// Pure parts of the WAN emulator: trace parsing and looping, option resolution, forwarder argv,
// namespace naming, stats and measurement parsing. No namespaces are created here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ValidationError } from '../../src/errors.js';
import {
  MIN_DEFAULT_QUEUE_BYTES,
  directionArgs,
  formatTraceForForwarder,
  idleRttMs,
  namespaceNames,
  namespaceOwner,
  normaliseTrace,
  parseBandwidthTrace,
  parseForwarderStats,
  resolveLink,
  type TracePoint,
} from '../../bench/wan/link-spec.js';
import { parsePingOutput, summariseRtt, summariseTransfer } from '../../bench/wan/measure.js';

const noTrace = (path: string): readonly TracePoint[] => {
  throw new Error(`unexpected trace load ${path}`);
};

test('parseBandwidthTrace reads Pensieve two-column files (tabs, spaces, comments)', () => {
  const pts = parseBandwidthTrace('# comment\n0\t1.5\n1.0 2.25\n\n2.5  0\n');
  assert.deepEqual(pts, [
    { timeS: 0, mbps: 1.5 },
    { timeS: 1, mbps: 2.25 },
    { timeS: 2.5, mbps: 0 },
  ]);
});

test('parseBandwidthTrace rejects bad lines, non-increasing time, negative rates and empty input', () => {
  for (const bad of ['0 1\n0 2\n', '0 x\n', '0 -1\n', '', '# only\n', '5\n']) {
    assert.throws(() => parseBandwidthTrace(bad, 'f'), ValidationError, JSON.stringify(bad));
  }
});

test('normaliseTrace: starts at 0, holds each rate until the next sample, last for the previous step', () => {
  const t = normaliseTrace(
    [
      { timeS: 10, mbps: 2 },
      { timeS: 11, mbps: 4 },
      { timeS: 13, mbps: 6 },
    ],
    1,
  );
  assert.deepEqual(t.segments, [
    { startNs: 0, bps: 2e6 },
    { startNs: 1e9, bps: 4e6 },
    { startNs: 3e9, bps: 6e6 },
  ]);
  assert.equal(t.periodNs, 5e9); // 3 s of samples + last step of 2 s
  assert.equal(t.meanMbit, (2 * 1 + 4 * 2 + 6 * 2) / 5);
  assert.equal(t.maxMbit, 6);
  assert.equal(formatTraceForForwarder(t), '5000000000\n0 2000000\n1000000000 4000000\n3000000000 6000000\n');
});

test('normaliseTrace scales rates and rejects an all-zero trace', () => {
  assert.equal(normaliseTrace([{ timeS: 0, mbps: 1.5 }], 10).maxMbit, 15);
  assert.throws(
    () =>
      normaliseTrace([
        { timeS: 0, mbps: 0 },
        { timeS: 1, mbps: 0 },
      ]),
    ValidationError,
  );
  assert.throws(() => normaliseTrace([{ timeS: 0, mbps: 1 }], 0), ValidationError);
});

test('normaliseTrace: the mean lies between min and max, segments start strictly increasing from 0', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(fc.double({ min: 0.01, max: 5, noNaN: true }), fc.double({ min: 0, max: 100, noNaN: true })),
        {
          minLength: 1,
          maxLength: 50,
        },
      ),
      (steps) => {
        let t = 0;
        const pts = steps.map(([dt, mbps]) => ({ timeS: (t += dt), mbps }));
        if (!pts.some((p) => p.mbps > 0)) return;
        const n = normaliseTrace(pts);
        assert.equal(n.segments[0]?.startNs, 0);
        for (let i = 1; i < n.segments.length; i++) {
          assert.ok((n.segments[i]?.startNs ?? 0) > (n.segments[i - 1]?.startNs ?? 0));
        }
        assert.ok(n.segments.every((s) => s.startNs < n.periodNs));
        assert.ok(n.meanMbit <= n.maxMbit + 1e-9 && n.meanMbit >= 0);
      },
    ),
  );
});

test('resolveLink: shared fields apply to both directions, overrides to one', () => {
  const l = resolveLink(
    { rateMbit: 100, delayMs: 20, lossPct: 0.1, bToA: { delayMs: 5, lossPct: 0 } },
    noTrace,
  );
  assert.equal(l.aToB.rateBps, 100e6);
  assert.equal(l.aToB.delayNs, 20e6);
  assert.equal(l.aToB.loss, 0.001);
  assert.equal(l.bToA.rateBps, 100e6);
  assert.equal(l.bToA.delayNs, 5e6);
  assert.equal(l.bToA.loss, 0);
  assert.equal(l.seed, 1);
  assert.equal(l.mtu, 1500);
  assert.equal(l.congestionControl, undefined);
  assert.equal(l.realtime, true);
  assert.equal(resolveLink({ realtime: false }, noTrace).realtime, false);
  assert.equal(idleRttMs(l, 0), 25);
});

test('resolveLink: default queue is one path BDP, at least the minimum; explicit limits win; unlimited has none', () => {
  // 100 Mbit/s * 40 ms RTT = 500 kB
  assert.equal(resolveLink({ rateMbit: 100, delayMs: 20 }, noTrace).aToB.queueBytes, 500_000);
  // 1 Gbit/s * 2 ms = 250 kB; 10 Mbit/s * 2 ms is below the floor
  assert.equal(resolveLink({ rateMbit: 1000, delayMs: 1 }, noTrace).aToB.queueBytes, 250_000);
  assert.equal(resolveLink({ rateMbit: 10, delayMs: 1 }, noTrace).aToB.queueBytes, MIN_DEFAULT_QUEUE_BYTES);
  const ms = resolveLink({ rateMbit: 10, delayMs: 1, queueMs: 50 }, noTrace).aToB;
  assert.equal(ms.queueBytes, 0);
  assert.equal(ms.queueNs, 50e6);
  assert.equal(resolveLink({ rateMbit: 10, queueBytes: 3000 }, noTrace).aToB.queueBytes, 3000);
  assert.equal(resolveLink({ delayMs: 10 }, noTrace).aToB.queueBytes, 0);
});

test('resolveLink loads traces through the callback and sizes the queue by the peak rate', () => {
  const seen: string[] = [];
  const l = resolveLink({ delayMs: 10, trace: '/x/trace', traceScale: 2 }, (p) => {
    seen.push(p);
    return [
      { timeS: 0, mbps: 1 },
      { timeS: 1, mbps: 3 },
    ];
  });
  assert.deepEqual(seen, ['/x/trace', '/x/trace']);
  assert.equal(l.aToB.rateBps, 4e6); // mean of 2 and 6
  assert.equal(l.aToB.trace?.maxMbit, 6);
  assert.equal(l.aToB.queueBytes, MIN_DEFAULT_QUEUE_BYTES);
  assert.deepEqual(directionArgs('a2b', l.aToB, '/tmp/t'), [
    '--dir',
    'a2b',
    '--trace',
    '/tmp/t',
    '--delay-ns',
    '10000000',
    '--loss',
    '0',
    '--queue-bytes',
    String(MIN_DEFAULT_QUEUE_BYTES),
    '--queue-ns',
    '0',
  ]);
  assert.throws(() => directionArgs('a2b', l.aToB, undefined), ValidationError);
});

test('resolveLink rejects out-of-range options with the offending key', () => {
  const cases: [Parameters<typeof resolveLink>[0], string][] = [
    [{ rateMbit: -1 }, 'rateMbit'],
    [{ lossPct: 101 }, 'lossPct'],
    [{ delayMs: Number.NaN }, 'delayMs'],
    [{ seed: 1.5 }, 'seed'],
    [{ mtu: 9000 }, 'mtu'],
    [{ aToB: { queueMs: -3 } }, 'queueMs'],
  ];
  for (const [opts, key] of cases) {
    assert.throws(
      () => resolveLink(opts, noTrace),
      (err: unknown) => err instanceof ValidationError && err.key === key,
      key,
    );
  }
});

test('directionArgs for a fixed rate', () => {
  const l = resolveLink({ rateMbit: 20, delayMs: 75, lossPct: 1, queueBytes: 1000, seed: 9 }, noTrace);
  assert.deepEqual(directionArgs('b2a', l.bToA, undefined), [
    '--dir',
    'b2a',
    '--rate-bps',
    '20000000',
    '--delay-ns',
    '75000000',
    '--loss',
    '0.01',
    '--queue-bytes',
    '1000',
    '--queue-ns',
    '0',
  ]);
});

test('namespace names carry the owner pid; others are not ours', () => {
  const n = namespaceNames(1234, 7);
  assert.deepEqual(n, { id: '1234-7', nsA: 'nc-wan-a-1234-7', nsB: 'nc-wan-b-1234-7' });
  assert.equal(namespaceOwner(n.nsA), 1234);
  assert.equal(namespaceOwner(n.nsB), 1234);
  assert.equal(namespaceOwner('nc-wan-c-1-1'), undefined);
  assert.equal(namespaceOwner('other'), undefined);
});

test('parseForwarderStats reads the forwarder stats line and rejects others', () => {
  const dir = {
    rxPackets: 3,
    rxBytes: 300,
    lossDrops: 1,
    queueDrops: 0,
    overflowDrops: 0,
    txPackets: 2,
    txBytes: 200,
    writeErrors: 0,
    inFlight: 0,
    maxQueueDelayNs: 5,
  };
  const s = parseForwarderStats(JSON.stringify({ type: 'stats', uptimeNs: 9, a2b: dir, b2a: dir }));
  assert.equal(s.uptimeNs, 9);
  assert.deepEqual(s.aToB, dir);
  assert.throws(() => parseForwarderStats('{"type":"ok"}'), ValidationError);
  assert.throws(
    () => parseForwarderStats(JSON.stringify({ type: 'stats', uptimeNs: 1, a2b: dir })),
    ValidationError,
  );
});

test('measurement parsing: ping output, RTT quantiles, transfer goodput', () => {
  const out =
    '64 bytes from 10.77.0.2: icmp_seq=1 ttl=64 time=40.3 ms\n64 bytes: icmp_seq=2 ttl=64 time=41 ms\n';
  assert.deepEqual(parsePingOutput(out), [40.3, 41]);
  const r = summariseRtt([5, 1, 3, 2, 4], 6);
  assert.equal(r.minMs, 1);
  assert.equal(r.medianMs, 3);
  assert.equal(r.maxMs, 5);
  assert.equal(r.received, 5);
  assert.equal(r.sent, 6);
  // 4 samples of 250 ms: 0.25, 0.5, 0.75, 1.0 MB cumulative -> 1 MB/s over the second half
  const t = summariseTransfer(1_000_000, 0, 1000, 250, [250_000, 500_000, 750_000, 1_000_000], 40);
  assert.equal(t.goodputMbit, 8);
  assert.equal(t.steadyMbit, 8);
  assert.equal(t.connectMs, 40);
});
