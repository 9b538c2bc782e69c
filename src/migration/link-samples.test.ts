// LinkSampler (pure): one sample per interval of wire goodput, with the link's facts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LinkSampler } from './link-samples.js';

test('LinkSampler: wire bytes per interval become bytes/s samples; short, backward and extra reports are not', () => {
  const s = new LinkSampler({ sourceNode: 'a', targetNode: 'b', rttMs: 40, streams: 2, maxSamples: 3 });
  const t0 = Date.parse('2026-11-25T04:00:00Z');
  s.observe(t0, 0);
  s.observe(t0 + 250, 1_000_000); // shorter than the interval: folded into the next sample
  s.observe(t0 + 1000, 12_500_000); // 12.5 MB in 1 s
  s.observe(t0 + 1500, 10_000_000); // bytes went back: ignored
  s.observe(t0 + 3000, 17_500_000); // 5 MB in 2 s
  s.observe(t0 + 4000, 17_500_000); // idle second: 0
  s.observe(t0 + 5000, 30_000_000); // over maxSamples: dropped
  assert.deepEqual(s.samples(), [
    {
      at: '2026-11-25T04:00:01.000Z',
      sourceNode: 'a',
      targetNode: 'b',
      bytesPerSecond: 12_500_000,
      rttMs: 40,
      streams: 2,
    },
    {
      at: '2026-11-25T04:00:03.000Z',
      sourceNode: 'a',
      targetNode: 'b',
      bytesPerSecond: 2_500_000,
      rttMs: 40,
      streams: 2,
    },
    {
      at: '2026-11-25T04:00:04.000Z',
      sourceNode: 'a',
      targetNode: 'b',
      bytesPerSecond: 0,
      rttMs: 40,
      streams: 2,
    },
  ]);
  const none = new LinkSampler({ sourceNode: 'a', targetNode: 'b' });
  none.observe(t0, 5);
  none.observe(Number.NaN, 10);
  assert.deepEqual(none.samples(), []);

  // finish: a tail of at least 200 ms becomes a sample; a shorter one does not
  const short = new LinkSampler({ sourceNode: 'a', targetNode: 'b' });
  short.observe(t0, 0);
  short.observe(t0 + 400, 4_000_000);
  short.finish(t0 + 500, 5_000_000);
  assert.deepEqual(
    short.samples().map((x) => x.bytesPerSecond),
    [10_000_000],
  );
  short.finish(t0 + 600, 6_000_000);
  assert.equal(short.samples().length, 1, 'a 100 ms tail is too short');
});
