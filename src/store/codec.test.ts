import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConflictError, UnavailableError, ValidationError } from '../errors.js';
import {
  clampLimit,
  decodeCursor,
  encodeCursor,
  fromJsonLabels,
  fromJsonObject,
  mapDbError,
} from './codec.js';
import { classifyDbError } from './dialect.js';
import { firstShortfall } from './repositories/allocations.js';

describe('store codec', () => {
  it('round-trips cursors (property) and rejects garbage', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (createdAt, id) => {
        assert.deepEqual(decodeCursor(encodeCursor({ createdAt, id })), { createdAt, id });
      }),
    );
    for (const bad of [
      '',
      '!!!',
      Buffer.from('[1,2]').toString('base64url'),
      Buffer.from('{}').toString('base64url'),
    ]) {
      assert.throws(() => decodeCursor(bad), ValidationError);
    }
  });

  it('bounds limits', () => {
    assert.equal(clampLimit(undefined), 100);
    assert.equal(clampLimit(1000), 1000);
    for (const bad of [0, 1001, 1.5, -1]) assert.throws(() => clampLimit(bad), ValidationError);
  });

  it('reads JSON columns defensively', () => {
    assert.deepEqual(fromJsonObject('{"a":1}'), { a: 1 });
    assert.deepEqual(fromJsonObject('[1]'), {});
    assert.deepEqual(fromJsonObject(null), {});
    assert.deepEqual(fromJsonLabels('{"a":"x","b":2}'), { a: 'x' });
  });

  it('classifies driver errors of both dialects', () => {
    const e = (code: string, message = 'x') => Object.assign(new Error(message), { code });
    assert.equal(classifyDbError(e('23505')), 'unique');
    assert.equal(classifyDbError(e('SQLITE_CONSTRAINT_UNIQUE')), 'unique');
    assert.equal(classifyDbError(e('SQLITE_CONSTRAINT_PRIMARYKEY')), 'unique');
    assert.equal(classifyDbError(e('23503')), 'foreign_key');
    assert.equal(classifyDbError(e('SQLITE_CONSTRAINT_FOREIGNKEY')), 'foreign_key');
    assert.equal(classifyDbError(e('ECONNREFUSED')), 'connection');
    assert.equal(classifyDbError(e('57P01')), 'connection');
    assert.equal(classifyDbError(new Error('Connection terminated unexpectedly')), 'connection');
    assert.equal(classifyDbError(new AggregateError([e('ECONNREFUSED')])), 'connection');
    assert.equal(classifyDbError(e('42P01')), 'other');
    assert.ok(mapDbError(e('23505'), 'h:1', () => 'dup') instanceof ConflictError);
    const u = mapDbError(e('ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.1:5432'), '10.0.0.1:5432');
    assert.ok(u instanceof UnavailableError);
    assert.equal(u.message, 'database unavailable: 10.0.0.1:5432: connect ECONNREFUSED 10.0.0.1:5432');
  });
});

describe('firstShortfall', () => {
  const cap = { cpus: 4, memoryMib: 1024, diskMib: 100 };
  const used = (cpus: number, memoryMib: number, diskMib: number) => ({
    cpus,
    memoryMib,
    diskMib,
    allocations: 1,
  });
  const table: [
    string,
    ReturnType<typeof used>,
    { cpus: number; memoryMib: number; diskMib: number },
    unknown,
  ][] = [
    ['fits exactly', used(2, 512, 50), { cpus: 2, memoryMib: 512, diskMib: 50 }, undefined],
    [
      'cpus first',
      used(4, 1024, 100),
      { cpus: 1, memoryMib: 1, diskMib: 1 },
      { ok: false, what: 'cpus', requested: 1, free: 0 },
    ],
    [
      'memory',
      used(0, 1000, 0),
      { cpus: 1, memoryMib: 100, diskMib: 0 },
      { ok: false, what: 'memory_mib', requested: 100, free: 24 },
    ],
    [
      'disk',
      used(0, 0, 99),
      { cpus: 0, memoryMib: 0, diskMib: 2 },
      { ok: false, what: 'disk_mib', requested: 2, free: 1 },
    ],
    [
      'overcommitted node reports 0 free',
      used(6, 0, 0),
      { cpus: 1, memoryMib: 0, diskMib: 0 },
      { ok: false, what: 'cpus', requested: 1, free: 0 },
    ],
  ];
  for (const [name, usage, req, want] of table) {
    it(name, () => assert.deepEqual(firstShortfall(usage, cap, req), want));
  }
});
