import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTraceparent } from './tracing.js';

test('parseTraceparent accepts version 00 headers and rejects malformed or all-zero ids', () => {
  assert.deepEqual(parseTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'), {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: 1,
  });
  for (const bad of [
    undefined,
    '',
    '01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    '00-00000000000000000000000000000000-b7ad6b7169203331-01',
    '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01',
    '00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01',
    'garbage',
  ]) {
    assert.equal(parseTraceparent(bad), null, String(bad));
  }
});
