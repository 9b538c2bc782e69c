import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, ErrorCode, NovaCronError, ensureNovaCronError } from './errors.js';

test('ensureNovaCronError keeps NovaCron errors and wraps others with their cause', () => {
  const own = new ConfigError('bad', [{ path: 'api.rest_port', value: -1, message: 'must be >= 1' }]);
  assert.equal(ensureNovaCronError(own), own);
  const plain = new Error('boom');
  const wrapped = ensureNovaCronError(plain);
  assert.equal(wrapped.code, ErrorCode.Internal);
  assert.equal(wrapped.cause, plain);
  assert.equal(ensureNovaCronError('text').message, 'text');
});

test('describe appends the hint', () => {
  const e = new NovaCronError(ErrorCode.PortInUse, 'port 8080 in use', { hint: 'set api.rest_port' });
  assert.match(e.describe(), /hint: set api.rest_port/);
});
