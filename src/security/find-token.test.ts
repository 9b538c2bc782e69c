import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findAdminToken } from './find-token.js';

test('findAdminToken: --token, then NOVACRON_TOKEN, then <data_dir>/admin.token, else a clear error', async () => {
  const d = mkdtempSync(join(tmpdir(), 'nc-find-'));
  const config = { system: { data_dir: d } } as Parameters<typeof findAdminToken>[0];
  await assert.rejects(findAdminToken(config, { env: {} }), /no API token: .*admin\.token does not exist/);
  writeFileSync(join(d, 'admin.token'), 'from-file\n', { mode: 0o600 });
  assert.deepEqual(await findAdminToken(config, { env: {} }), {
    token: 'from-file',
    source: join(d, 'admin.token'),
  });
  assert.deepEqual(await findAdminToken(config, { env: { NOVACRON_TOKEN: 'from-env' } }), {
    token: 'from-env',
    source: 'NOVACRON_TOKEN',
  });
  assert.deepEqual(await findAdminToken(config, { flag: 'from-flag', env: { NOVACRON_TOKEN: 'from-env' } }), {
    token: 'from-flag',
    source: '--token',
  });
});
