import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requiredScope } from './auth.js';

test('requiredScope: the route scope wins; else read for GET/HEAD and admin for the rest', () => {
  const table: [string, 'read' | 'admin' | undefined, 'read' | 'admin'][] = [
    ['GET', undefined, 'read'],
    ['HEAD', undefined, 'read'],
    ['POST', undefined, 'admin'],
    ['PUT', undefined, 'admin'],
    ['PATCH', undefined, 'admin'],
    ['DELETE', undefined, 'admin'],
    ['POST', 'read', 'read'],
    ['GET', 'admin', 'admin'],
  ];
  for (const [method, scope, want] of table)
    assert.equal(requiredScope(method, scope), want, `${method} ${scope}`);
});
