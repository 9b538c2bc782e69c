import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seriesFromSamples } from './db-samples.js';

test('samples become per-link series, split at gaps of more than 3 median steps, in time order', () => {
  const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
  const rows = [
    { id: 1, at: at(0), sourceNode: 'a', targetNode: 'b', bytesPerSecond: 10 },
    { id: 3, at: at(2), sourceNode: 'a', targetNode: 'b', bytesPerSecond: 12 },
    { id: 2, at: at(1), sourceNode: 'a', targetNode: 'b', bytesPerSecond: 11 },
    { id: 4, at: at(30), sourceNode: 'a', targetNode: 'b', bytesPerSecond: 20 }, // gap
    { id: 5, at: at(31), sourceNode: 'a', targetNode: 'b', bytesPerSecond: 21 },
    { id: 6, at: at(0), sourceNode: 'b', targetNode: 'a', bytesPerSecond: 5 },
    { id: 7, at: 'not a time', sourceNode: 'b', targetNode: 'a', bytesPerSecond: 5 },
    { id: 8, at: at(1), sourceNode: 'b', targetNode: 'a', bytesPerSecond: Number.NaN },
  ];
  assert.deepEqual(seriesFromSamples(rows), [
    { id: 'a->b#0', samples: [10, 11, 12] },
    { id: 'a->b#1', samples: [20, 21] },
    { id: 'b->a#0', samples: [5] },
  ]);
});
