import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { expandString, expandValues } from './expand.js';

test('${VAR} takes the variable, ${VAR:default} falls back, $${ is literal', () => {
  const env = { HOST: 'db.local', EMPTY: '' };
  assert.equal(expandString('${HOST}', env).value, 'db.local');
  assert.equal(expandString('${PORT:5432}', env).value, '5432');
  assert.equal(expandString('${REDIS:localhost:6379}', env).value, 'localhost:6379');
  assert.equal(expandString('http://${HOST}:${PORT:80}/x', env).value, 'http://db.local:80/x');
  assert.equal(expandString('${EMPTY:fallback}', env).value, 'fallback', 'empty counts as unset');
  assert.equal(expandString('${HOST:}', {}).value, '', 'empty default');
  assert.equal(expandString('cost $${HOST} and ${HOST}', env).value, 'cost ${HOST} and db.local');
  assert.equal(expandString('no vars $ { }', env).used, false);
});

test('a missing required variable is reported with the key path that uses it', () => {
  const r = expandValues(
    {
      database: { password: '${DB_PASSWORD}', host: '${DB_HOST:localhost}' },
      peers: [{ url: 'http://${PEER}' }],
    },
    { EMPTY: '' },
  );
  assert.deepEqual(r.missing, [
    { variable: 'DB_PASSWORD', path: 'database.password' },
    { variable: 'PEER', path: 'peers[0].url' },
  ]);
  assert.deepEqual([...r.expanded].sort(), ['database.host', 'database.password', 'peers[0].url']);
  assert.equal((r.value.database as { host: string }).host, 'localhost');
});

test('keys and non-string values are never expanded', () => {
  const r = expandValues({ '${K}': 1, n: 5, b: true, z: null }, { K: 'x' });
  assert.deepEqual(r.value, { '${K}': 1, n: 5, b: true, z: null });
  assert.equal(r.expanded.size, 0);
});

test('property: strings without "${" are unchanged; defined variables always substitute', () => {
  fc.assert(
    fc.property(
      fc.string().filter((s) => !s.includes('${')),
      (s) => expandString(s, {}).value === s,
    ),
  );
  fc.assert(
    fc.property(
      fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,8}$/),
      fc.string({ minLength: 1 }).filter((v) => !v.includes('$')),
      (name, value) => expandString(`<\${${name}:dflt}>`, { [name]: value }).value === `<${value}>`,
    ),
  );
});
