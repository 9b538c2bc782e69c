// etcd over TLS and with etcd's own auth, on a real one-member etcd serving https with --client-cert-auth:
// a real node boots and registers over mutual TLS; a wrong CA, a missing client certificate and a wrong
// password each fail the boot by themselves with a message naming the endpoint and the cause; the right
// password works through the same config path (loadEtcdSecurity → connectEtcd). A second etcd serves
// server-verified TLS only: a CA alone is enough.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Etcd3 } from 'etcd3';
import { Membership, Session, connectEtcd, loadEtcdSecurity } from '../../src/cluster/index.js';
import type { EtcdConfig } from '../../src/cluster/index.js';
import { freePort } from '../helpers/ports.js';
import { runCli, type CliProcess } from '../helpers/cli.js';
import { EtcdCluster, etcdAvailable, makeTestPki, type TestPki } from './etcd-harness.js';

const haveEtcd = etcdAvailable();
const INIT_TIMEOUT_S = 40;

async function startNode(
  id: string,
  dataDir: string,
  endpoint: string,
  extra: readonly string[],
): Promise<CliProcess> {
  const set = (kv: string) => ['--set', kv];
  return runCli([
    'start',
    '--data-dir',
    dataDir,
    ...set(`api.rest_port=${await freePort()}`),
    ...set(`api.grpc_port=${await freePort()}`),
    ...set(`dwcp.listen_port=${await freePort()}`),
    ...set('vm.driver=sim'),
    ...set('ml.enabled=false'),
    ...set(`system.node_id=${id}`),
    ...set('system.cluster_id=region-tls'),
    ...set('cluster.mode=etcd'),
    ...set(`cluster.etcd.endpoints=${endpoint}`),
    ...set(`cluster.etcd.prefix=/tls-test-${process.pid}`),
    ...set(`initialization.timeout_seconds=${INIT_TIMEOUT_S}`),
    ...extra.flatMap(set),
  ]);
}

/** Boots a node that must fail; returns its output and how long it took to exit by itself. */
async function failingBoot(
  id: string,
  root: string,
  endpoint: string,
  extra: readonly string[],
): Promise<{ out: string; code: number | string; seconds: number }> {
  const t0 = performance.now();
  const cli = await startNode(id, mkdtempSync(join(root, `${id}-`)), endpoint, extra);
  try {
    const code = await cli.exited;
    return { out: cli.output(), code, seconds: (performance.now() - t0) / 1000 };
  } finally {
    if (cli.child.exitCode === null) cli.child.kill('SIGKILL');
  }
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

test(
  'etcd over mutual TLS and etcd auth: boot and register, wrong CA / no client cert / wrong password fail clearly',
  { skip: !haveEtcd && 'etcd not installed (Debian package etcd-server)', timeout: 240_000 },
  async () => {
    const root = mkdtempSync(join(tmpdir(), 'nc-etcd-tls-'));
    const pki: TestPki = await makeTestPki(root);
    let etcd: EtcdCluster | undefined;
    let node: CliProcess | undefined;
    let admin: Etcd3 | undefined;
    try {
      etcd = await EtcdCluster.start(1, {
        tls: {
          certFile: pki.serverCertFile,
          keyFile: pki.serverKeyFile,
          caFile: pki.caFile,
          clientCertAuth: true,
        },
        // auth tokens expire after 2 s idle: the client must fetch a new one by itself
        extraArgs: ['--auth-token-ttl=2'],
      });
      const endpoint = etcd.endpoints[0]!;
      assert.match(endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
      const mtls = [
        `cluster.etcd.tls.ca_file=${pki.caFile}`,
        `cluster.etcd.tls.cert_file=${pki.clientCertFile}`,
        `cluster.etcd.tls.key_file=${pki.clientKeyFile}`,
      ];
      admin = new Etcd3({
        hosts: [endpoint],
        credentials: {
          rootCertificate: readFileSync(pki.caFile),
          certChain: readFileSync(pki.clientCertFile),
          privateKey: readFileSync(pki.clientKeyFile),
        },
      });
      const prefix = `/tls-test-${process.pid}/`;

      // 1. a real node boots and registers over mutual TLS
      const dataDir = mkdtempSync(join(root, 'n1-'));
      node = await startNode('n1', dataDir, endpoint, mtls);
      const ready = JSON.parse(await node.waitFor(/"msg":"ready in/, 90_000)) as { url: string };
      const token = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
      const res = await fetch(`${ready.url}/api/v1/cluster`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const view = (await res.json()) as { leader: string | null; nodes: { id: string; status: string }[] };
      assert.equal(res.status, 200);
      assert.deepEqual(
        view.nodes.map((n) => [n.id, n.status]),
        [['n1', 'ready']],
      );
      const member = await admin.get(`${prefix}members/n1`).string();
      assert.ok(member, 'members/n1 is in etcd (written over mutual TLS)');
      node.child.kill('SIGTERM');
      await node.exited;
      node = undefined;

      // 2. a CA that did not sign etcd's certificate: boot fails by itself, naming the endpoint and the cause
      const wrongCa = await failingBoot('n-wrong-ca', root, endpoint, [
        `cluster.etcd.tls.ca_file=${pki.otherCaFile}`,
        `cluster.etcd.tls.cert_file=${pki.clientCertFile}`,
        `cluster.etcd.tls.key_file=${pki.clientKeyFile}`,
      ]);
      assert.notEqual(wrongCa.code, 0);
      assert.match(
        wrongCa.out,
        new RegExp(
          `etcd unavailable: ${escape(endpoint)}: certificate signed by unknown authority: cluster\\.etcd\\.tls\\.ca_file`,
        ),
      );
      assert.ok(
        wrongCa.seconds < INIT_TIMEOUT_S,
        `failed within initialization.timeout_seconds (${wrongCa.seconds} s)`,
      );

      // 3. no client certificate while etcd requires one
      const noCert = await failingBoot('n-no-cert', root, endpoint, [
        `cluster.etcd.tls.ca_file=${pki.caFile}`,
      ]);
      assert.notEqual(noCert.code, 0);
      assert.match(
        noCert.out,
        new RegExp(
          `etcd unavailable: ${escape(endpoint)}: TLS handshake failed: etcd rejected the client certificate`,
        ),
      );

      // 4. a missing CA file: a config error naming the key and the path, before any connection
      const missing = join(root, 'absent-ca.pem');
      const noFile = await failingBoot('n-no-file', root, endpoint, [`cluster.etcd.tls.ca_file=${missing}`]);
      assert.notEqual(noFile.code, 0);
      assert.match(
        noFile.out,
        new RegExp(`cannot read cluster\\.etcd\\.tls\\.ca_file ${escape(missing)}: ENOENT`),
      );

      // 5. etcd auth: root user with a password, then auth enabled
      const password = `pw-${process.pid}-ok`;
      await admin.role('root').create();
      await admin.user('root').create(password);
      await admin.user('root').addRole('root');
      await admin.auth.authEnable();
      admin.close();
      admin = undefined;

      const wrongPassword = `pw-${process.pid}-WRONG`;
      const badAuth = await failingBoot('n-bad-pw', root, endpoint, [
        ...mtls,
        'cluster.etcd.username=root',
        `cluster.etcd.password=${wrongPassword}`,
      ]);
      assert.notEqual(badAuth.code, 0);
      assert.match(
        badAuth.out,
        new RegExp(
          `etcd unavailable: ${escape(endpoint)}: authentication failed: wrong cluster\\.etcd\\.username or cluster\\.etcd\\.password`,
        ),
      );
      assert.ok(!badAuth.out.includes(wrongPassword), 'the password is never printed');

      // the right password through the node's own config path: session, registration, read back
      const cfg: EtcdConfig = {
        endpoints: [endpoint],
        prefix,
        lease_ttl_seconds: 4,
        tls: { ca_file: pki.caFile, cert_file: pki.clientCertFile, key_file: pki.clientKeyFile },
        username: 'root',
        password,
      };
      const conn = connectEtcd({
        endpoints: cfg.endpoints,
        prefix: cfg.prefix,
        ...(await loadEtcdSecurity(cfg)),
      });
      try {
        const session = await Session.open(conn, { ttlSeconds: 4 });
        const m = await Membership.join(conn, session, {
          id: 'n-auth',
          addresses: ['127.0.0.1:1'],
          capacity: { cpus: 1, memoryMiB: 1024 },
          labels: {},
          driver: 'sim',
        });
        assert.ok(await conn.kv.get('members/n-auth').string());
        // past the token TTL without a unary call: the lease is still renewed and a write re-authenticates
        await new Promise((r) => setTimeout(r, 3500));
        assert.equal(session.state, 'ready');
        await conn.kv.put('probe').value('after-token-expiry');
        assert.equal(await conn.kv.get('probe').string(), 'after-token-expiry');
        await m.leave();
        await session.close();
      } finally {
        conn.close();
      }
      console.log(
        `# boot failure times: wrong CA ${wrongCa.seconds.toFixed(1)} s, no client cert ${noCert.seconds.toFixed(1)} s, wrong password ${badAuth.seconds.toFixed(1)} s`,
      );
    } finally {
      if (node && node.child.exitCode === null) node.child.kill('SIGKILL');
      admin?.close();
      await etcd?.stop();
      rmSync(root, { recursive: true, force: true });
    }
  },
);

test(
  'etcd over server-verified TLS only (a CA, no client certificate): session and a write',
  { skip: !haveEtcd && 'etcd not installed (Debian package etcd-server)', timeout: 120_000 },
  async () => {
    const root = mkdtempSync(join(tmpdir(), 'nc-etcd-tls1-'));
    let etcd: EtcdCluster | undefined;
    try {
      const pki = await makeTestPki(root);
      etcd = await EtcdCluster.start(1, {
        tls: {
          certFile: pki.serverCertFile,
          keyFile: pki.serverKeyFile,
          caFile: pki.caFile,
          clientCertAuth: false,
        },
      });
      const cfg: EtcdConfig = {
        endpoints: etcd.endpoints,
        prefix: `/tls1-test-${process.pid}`,
        lease_ttl_seconds: 4,
        tls: { ca_file: pki.caFile, cert_file: '', key_file: '' },
        username: '',
        password: '',
      };
      const security = await loadEtcdSecurity(cfg);
      assert.equal(security.tls?.cert, undefined);
      const conn = connectEtcd({ endpoints: cfg.endpoints, prefix: cfg.prefix, ...security });
      try {
        const session = await Session.open(conn, { ttlSeconds: 4 });
        await conn.kv.put('probe').value('server-tls');
        assert.equal(await conn.kv.get('probe').string(), 'server-tls');
        await session.close();
      } finally {
        conn.close();
      }
    } finally {
      await etcd?.stop();
      rmSync(root, { recursive: true, force: true });
    }
  },
);
