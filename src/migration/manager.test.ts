import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { joinTokenAuthorizer, parsePeerUrl } from '../api/grpc/migration-service.js';
import { validateMigrateRequest } from './manager.js';

test('a migrate request needs a target; bad fields are named', () => {
  assert.deepEqual(validateMigrateRequest({ target: 'n2' }), { target: 'n2' });
  assert.deepEqual(validateMigrateRequest({ target: 'n2', live: false, maxDowntimeMs: 500 }), {
    target: 'n2',
    live: false,
    maxDowntimeMs: 500,
  });
  const bad: [unknown, RegExp][] = [
    [null, /expected an object/],
    [[], /expected an object/],
    [{}, /target must be the name of a peer node/],
    [{ target: '' }, /target/],
    [{ target: 'n2', live: 'yes' }, /live must be a boolean/],
    [{ target: 'n2', maxDowntimeMs: 0 }, /maxDowntimeMs must be an integer from 1 to 600000/],
    [{ target: 'n2', maxDowntimeMs: 1.5 }, /maxDowntimeMs/],
    [{ target: 'n2', speed: 1 }, /unknown field speed/],
  ];
  for (const [body, re] of bad)
    assert.throws(
      () => validateMigrateRequest(body),
      (e: Error & { code?: string }) => e.code === 'validation' && re.test(e.message),
      JSON.stringify(body),
    );
});

test('peer urls: host, port and TLS; a bad url names the peer', () => {
  assert.deepEqual(parsePeerUrl({ name: 'n2', url: 'http://127.0.0.1:18081' }), {
    host: '127.0.0.1',
    port: 18081,
    tls: false,
  });
  assert.deepEqual(parsePeerUrl({ name: 'n3', url: 'https://[::1]:9090' }), {
    host: '::1',
    port: 9090,
    tls: true,
  });
  assert.throws(() => parsePeerUrl({ name: 'n4', url: 'not a url' }), /peer n4 has an invalid url not a url/);
});

test('peers authenticate with the join token only', async () => {
  const auth = joinTokenAuthorizer('s3cret');
  const meta = (v?: string): grpc.Metadata => {
    const m = new grpc.Metadata();
    if (v !== undefined) m.set('authorization', v);
    return m;
  };
  await auth(meta('Bearer s3cret'));
  await assert.rejects(auth(meta('Bearer wrong')), /join token does not match cluster\.join_token/);
  await assert.rejects(auth(meta()), /no join token/);
  await assert.rejects(joinTokenAuthorizer('')(meta('Bearer ')), /no cluster\.join_token/);
});
