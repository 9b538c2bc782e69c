import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventFilter } from './events.js';

const ev = (type: string) => ({ type, at: '2026-01-01T00:00:00.000Z', data: {} });

test('eventFilter: no prefixes keeps everything; otherwise type equals or starts with a prefix', () => {
  assert.equal(eventFilter(undefined), null);
  assert.equal(eventFilter(' , '), null);
  const keep = eventFilter('boot.,node.ready')!;
  assert.equal(keep(ev('boot.component')), true);
  assert.equal(keep(ev('node.ready')), true);
  assert.equal(keep(ev('node.mode')), false);
  assert.equal(keep(ev('vm.state')), false);
});
