import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMemoryMib } from './vm.js';

test('--memory accepts MiB and unit suffixes, and rejects anything else with the value', () => {
  const ok: [string, number][] = [
    ['256', 256],
    ['256Mi', 256],
    ['256MiB', 256],
    ['512M', 512],
    ['1Gi', 1024],
    ['2G', 2048],
    ['1.5Gi', 1536],
  ];
  for (const [v, want] of ok) assert.equal(parseMemoryMib(v), want, v);
  for (const bad of ['', 'x', '12x', '-5', '0', '0.5', '1Ti']) {
    assert.throws(
      () => parseMemoryMib(bad),
      (e: unknown) => e instanceof Error && e.message.includes(`"${bad}"`),
      bad,
    );
  }
});
