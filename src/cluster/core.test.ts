// Unit tests of the self-fencing clock, the key layout, the status rules and the term-history invariant.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { checkTermHistory } from './election.js';
import { defaultMarginMs, fenceDeadline, recordKeepalive } from './fencing.js';
import { Keys, childName, isValidId, normalisePrefix } from './keys.js';
import type { NodeInfo } from './membership.js';
import { buildClusterView } from './status.js';

test('fence deadline is strictly before the earliest expiry, for any keepalive history', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 600 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 600 })), {
        maxLength: 20,
      }),
      (ttlS, confirmations) => {
        const ttlMs = ttlS * 1000;
        let clock = { lastOkSentAt: 0, ttlMs, marginMs: defaultMarginMs(ttlMs) };
        for (const [sentAt, ttl] of confirmations) clock = recordKeepalive(clock, sentAt, ttl * 1000);
        assert.ok(fenceDeadline(clock) < clock.lastOkSentAt + clock.ttlMs);
        const latest = Math.max(0, ...confirmations.map(([s]) => s));
        assert.equal(clock.lastOkSentAt, latest);
      },
    ),
  );
});

test('default margin: a third of the TTL, at least 1 s, at most half', () => {
  assert.equal(defaultMarginMs(2000), 1000);
  assert.equal(defaultMarginMs(10_000), 3333);
  assert.equal(defaultMarginMs(600_000), 200_000);
});

test('key layout', () => {
  assert.equal(normalisePrefix('/novacron'), '/novacron/');
  assert.equal(normalisePrefix('/novacron//'), '/novacron/');
  assert.equal(Keys.assignment('n1', 'vm-1'), 'assignments/n1/vm-1');
  assert.equal(childName('members/n1', Keys.membersPrefix), 'n1');
  assert.equal(childName('members/n1/x', Keys.membersPrefix), undefined);
  assert.equal(childName('nodes/n1', Keys.membersPrefix), undefined);
  assert.equal(childName('members/', Keys.membersPrefix), undefined);
  for (const bad of ['', 'a/b', 'a b', 'x'.repeat(129)]) assert.equal(isValidId(bad), false, bad);
  assert.equal(isValidId('node-1.eu:a_b'), true);
});

const node = (id: string, draining = false): NodeInfo => ({
  id,
  addresses: [`${id}:8090`],
  capacity: { cpus: 1, memoryMiB: 1 },
  labels: {},
  driver: 'sim',
  ...(draining ? { draining: true } : {}),
});

test('status: ready, draining, down, partitioned self', () => {
  const known = [node('c'), node('a'), node('b'), node('d')];
  const live = [node('a'), node('b', true), node('d')];
  assert.deepEqual(buildClusterView({ known, live, leader: 'a' }), {
    leader: 'a',
    nodes: [
      { id: 'a', status: 'ready', address: 'a:8090' },
      { id: 'b', status: 'draining', address: 'b:8090' },
      { id: 'c', status: 'down', address: 'c:8090' },
      { id: 'd', status: 'ready', address: 'd:8090' },
    ],
  });
  const cut = buildClusterView({ known, live, leader: 'a', self: { id: 'd', partitioned: true } });
  assert.equal(cut.leader, null);
  assert.equal(cut.nodes.find((n) => n.id === 'd')?.status, 'partitioned');
});

test('term history: sequential terms pass, overlaps and replacements are reported', () => {
  assert.deepEqual(
    checkTermHistory([
      { leader: 'a', revision: 5, endRevision: 9 },
      { leader: 'b', revision: 10, endRevision: 12 },
      { leader: 'a', revision: 13 },
    ]),
    [],
  );
  assert.equal(
    checkTermHistory([
      { leader: 'a', revision: 5 },
      { leader: 'b', revision: 10 },
    ]).length,
    1,
  );
  assert.equal(
    checkTermHistory([
      { leader: 'a', revision: 5, endRevision: 10, replaced: true },
      { leader: 'b', revision: 10 },
    ]).length,
    1,
  );
  assert.equal(
    checkTermHistory([
      { leader: 'a', revision: 5, endRevision: 6 },
      { leader: 'b', revision: 4 },
    ]).length,
    2,
  );
});
