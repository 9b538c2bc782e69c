// dwcp.auth to ConnectionSecurity: which material each setting needs, and errors naming the key
// (or CLI flag) that is missing or wrong.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig } from '../../config/defaults.js';
import type { NovaCronConfig } from '../../config/schema.js';
import { ConfigError } from '../../errors.js';
import { issueCert, makeCa } from '../../security/test-pki.js';
import { dwcpSecurity } from './auth-config.js';

describe('dwcpSecurity (dwcp.auth)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dwcp-auth-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const ca = makeCa('Config CA');
  const node = issueCert(ca, { cn: 'node-1', dns: ['node-1'] });
  const other = issueCert(ca, { cn: 'node-2' });
  const f = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const files = {
    ca_file: f('ca.pem', ca.cert),
    cert_file: f('node.pem', node.chainPem),
    key_file: f('node.key', node.key),
  };
  const cfg = (auth: NovaCronConfig['dwcp']['auth'], token: string, tls: Partial<typeof files> = {}) => {
    const c = defaultConfig();
    return {
      ...c,
      dwcp: { ...c.dwcp, auth },
      cluster: { ...c.cluster, join_token: token },
      security: { ...c.security, tls: { ...c.security.tls, ...tls } },
    } as NovaCronConfig;
  };
  const configError = (key: string, re: RegExp) => (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.key, key);
    assert.match(e.message, re);
    return true;
  };

  it('token: needs cluster.join_token, ignores certificates', async () => {
    const s = await dwcpSecurity(cfg('token', 'tok', files), { encrypt: true });
    assert.equal(s.token, 'tok');
    assert.equal(s.certificate, undefined);
    await assert.rejects(
      dwcpSecurity(cfg('token', ''), { encrypt: true }),
      configError('cluster.join_token', /empty/),
    );
  });

  it('ca: needs the three files, a key that matches, and no token', async () => {
    const s = await dwcpSecurity(cfg('ca', 'tok', files), { encrypt: true, peerNames: ['node-2'] });
    assert.equal(s.token, undefined);
    assert.equal(s.certificate?.chain.length, 1);
    assert.equal(s.certificate?.trusted.length, 1);
    assert.deepEqual(s.peerNames, ['node-2']);
    await assert.rejects(
      dwcpSecurity(cfg('ca', '', { ...files, ca_file: '' }), { encrypt: true }),
      configError('security.tls.ca_file', /empty/),
    );
    await assert.rejects(
      dwcpSecurity(cfg('ca', '', { ...files, cert_file: join(dir, 'nope.pem') }), { encrypt: true }),
      configError('security.tls.cert_file', /cannot read .*ENOENT/),
    );
    await assert.rejects(
      dwcpSecurity(cfg('ca', '', { ...files, key_file: f('other.key', other.key) }), { encrypt: true }),
      configError('security.tls.key_file', /not the private key of the certificate/),
    );
    await assert.rejects(
      dwcpSecurity(cfg('ca', '', { ...files, ca_file: f('junk.pem', 'not a cert') }), { encrypt: true }),
      configError('security.tls.ca_file', /no PEM certificate/),
    );
    // CLI flags override the files and name themselves in errors.
    await assert.rejects(
      dwcpSecurity(cfg('ca', '', files), {
        encrypt: true,
        files: { key: { path: join(dir, 'x'), label: '--key' } },
      }),
      configError('--key', /cannot read --key/),
    );
  });

  it('token_or_ca: whatever is configured, at least one', async () => {
    const both = await dwcpSecurity(cfg('token_or_ca', 'tok', files), { encrypt: false });
    assert.ok(both.token && both.certificate);
    assert.equal(both.encrypt, false);
    const onlyToken = await dwcpSecurity(cfg('token_or_ca', 'tok'), { encrypt: true });
    assert.ok(onlyToken.token && !onlyToken.certificate);
    const onlyCa = await dwcpSecurity(cfg('token_or_ca', '', files), { encrypt: true });
    assert.ok(!onlyCa.token && onlyCa.certificate);
    await assert.rejects(
      dwcpSecurity(cfg('token_or_ca', ''), { encrypt: true }),
      configError('dwcp.auth', /neither/),
    );
  });
});
