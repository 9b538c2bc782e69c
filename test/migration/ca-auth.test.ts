// Cold migration between two real `novacron start` processes whose DWCP streams authenticate with
// node certificates from one cluster CA (dwcp.auth: ca, security.tls.cert_file/key_file/ca_file):
// the disk arrives byte-identical, and a running VM moves live. The target's certificate must name it (SAN n2), so a migration
// to a node whose certificate names another node is refused with that cause.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { findQemuPidsUnder } from '../../src/vm/drivers/qemu/process.js';
import { issueCert, makeCa } from '../../src/security/test-pki.js';
import { freePort } from '../helpers/ports.js';
import { waitForSerialLine } from '../../src/vm/drivers/qemu/serial.js';
import { GUEST_READY_LINE, ensureTestGuest, qemuUnavailable, type TestGuest } from '../vm/guest.js';
import { api, startNodeProcess, type NodeProcess } from '../vm-api/node-process.js';

const skip = await qemuUnavailable();
if (skip) console.log(`# skipping CA-authenticated migration tests: ${skip}`);

interface Migration {
  id: string;
  state: string;
  error: string | null;
}

describe('cold migration with DWCP authenticated by the cluster CA', { skip: skip ?? false }, () => {
  let guest: TestGuest;
  const dirs: Record<string, string> = {};
  const ports: Record<string, { rest: number; grpc: number; dwcp: number }> = {};
  const nodes: Record<string, NodeProcess> = {};
  const pki = mkdtempSync(join(tmpdir(), 'nc-ca-pki-'));

  async function boot(name: 'n1' | 'n2', certName: string): Promise<void> {
    const peer = name === 'n1' ? 'n2' : 'n1';
    nodes[name] = await startNodeProcess(dirs[name]!, {
      'system.node_id': name,
      'api.rest_port': ports[name]!.rest,
      'api.grpc_port': ports[name]!.grpc,
      'dwcp.listen_port': ports[name]!.dwcp,
      // The gRPC migration service still authenticates by the join token; DWCP by certificates.
      'cluster.join_token': 'ca-migration-test-token',
      'cluster.peers': JSON.stringify([{ name: peer, url: `http://127.0.0.1:${ports[peer]!.grpc}` }]),
      'dwcp.auth': 'ca',
      'security.tls.ca_file': join(pki, 'ca.pem'),
      'security.tls.cert_file': join(pki, `${certName}.pem`),
      'security.tls.key_file': join(pki, `${certName}.key`),
      'vm.driver': 'qemu',
      'vm.accel': 'tcg',
      'vm.stop_grace_seconds': 1,
      'node.capacity.cpus': 4,
      'node.capacity.memory_mib': 2048,
      'node.capacity.disk_gib': 1,
      'ml.enabled': 'false',
    });
  }

  async function poll(node: NodeProcess, id: string): Promise<Migration> {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const m = (await api(node, 'GET', `/api/v1/migrations/${id}`)).json as Migration;
      if (['completed', 'failed', 'cancelled'].includes(m.state)) return m;
      if (Date.now() > deadline) throw new Error(`migration ${id} stuck: ${JSON.stringify(m)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  before(async () => {
    guest = await ensureTestGuest();
    const ca = makeCa('Migration cluster CA');
    writeFileSync(join(pki, 'ca.pem'), ca.cert);
    // n1 and n2 as they should be; n2-wrong is a valid CA certificate that names another node.
    for (const [file, cn] of [
      ['n1', 'n1'],
      ['n2', 'n2'],
      ['n2-wrong', 'n9'],
    ] as const) {
      const c = issueCert(ca, { cn, dns: [cn] });
      writeFileSync(join(pki, `${file}.pem`), c.chainPem);
      writeFileSync(join(pki, `${file}.key`), c.key);
    }
    for (const n of ['n1', 'n2']) {
      dirs[n] = mkdtempSync(join(tmpdir(), `nc-ca-${n}-`));
      ports[n] = { rest: await freePort(), grpc: await freePort(), dwcp: await freePort() };
    }
    await Promise.all([boot('n1', 'n1'), boot('n2', 'n2')]);
  });

  after(async () => {
    for (const n of Object.keys(nodes)) {
      nodes[n]!.cli.child.kill('SIGKILL');
      for (const pid of (await findQemuPidsUnder(join(dirs[n]!, 'vms'))).keys()) process.kill(pid, 'SIGKILL');
    }
    for (const d of [...Object.values(dirs), pki]) rmSync(d, { recursive: true, force: true });
  });

  test('a stopped VM moves with its disk byte-identical, a running one live; a target certificate naming another node is refused', async () => {
    const n1 = nodes.n1!;
    const disk = join(dirs.n1!, 'ca-cold.raw');
    const content = Buffer.concat([randomBytes(3 * 2 ** 20), Buffer.alloc(2 ** 20)]);
    writeFileSync(disk, content);
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    const mk = async (name: string, path: string) => {
      const r = await api(n1, 'POST', '/api/v1/vms', {
        name,
        cpus: 1,
        memoryMib: 128,
        kernel: guest.kernel,
        initrd: guest.initrd,
        cmdline: guest.cmdline,
        disks: [{ path, format: 'raw' }],
      });
      assert.equal(r.status, 201, JSON.stringify(r.json));
      assert.equal((await api(n1, 'POST', `/api/v1/vms/${name}/stop`, { force: true })).status, 200);
    };
    await mk('ca-cold', disk);
    const started = (await api(n1, 'POST', '/api/v1/vms/ca-cold/migrate', { target: 'n2' }))
      .json as Migration;
    const m = await poll(n1, started.id);
    assert.equal(m.state, 'completed', JSON.stringify(m));
    const onB = (await api(nodes.n2!, 'GET', '/api/v1/vms/ca-cold')).json as {
      node: string;
      disks: { path: string }[];
    };
    assert.equal(onB.node, 'n2');
    assert.equal(sha(readFileSync(onB.disks[0]!.path)), sha(content), 'disk content identical on n2');

    // A running VM moves live over the same certificate-authenticated streams.
    const created = await api(n1, 'POST', '/api/v1/vms', {
      name: 'ca-live',
      cpus: 1,
      memoryMib: 128,
      kernel: guest.kernel,
      initrd: guest.initrd,
      cmdline: guest.cmdline,
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const liveId = (created.json as { id: string }).id;
    await waitForSerialLine(join(dirs.n1!, 'vms', liveId, 'serial.log'), new RegExp(GUEST_READY_LINE), {
      timeoutMs: 90_000,
    });
    const live = (await api(n1, 'POST', '/api/v1/vms/ca-live/migrate', { target: 'n2', live: true }))
      .json as Migration;
    const lm = await poll(n1, live.id);
    assert.equal(lm.state, 'completed', JSON.stringify(lm));
    const liveOnB = (await api(nodes.n2!, 'GET', '/api/v1/vms/ca-live')).json as {
      node: string;
      state: string;
    };
    assert.equal(liveOnB.node, 'n2');
    assert.equal(liveOnB.state, 'running');
    assert.equal((await api(nodes.n2!, 'DELETE', '/api/v1/vms/ca-live')).status, 204);

    // n2 restarts with a certificate for "n9": n1 refuses it as the target n2.
    await nodes.n2!.kill();
    await boot('n2', 'n2-wrong');
    const disk2 = join(dirs.n1!, 'ca-cold2.raw');
    writeFileSync(disk2, content);
    await mk('ca-cold2', disk2);
    const again = (await api(n1, 'POST', '/api/v1/vms/ca-cold2/migrate', { target: 'n2' })).json as Migration;
    const refused = await poll(n1, again.id);
    assert.equal(refused.state, 'failed', JSON.stringify(refused));
    assert.match(refused.error ?? '', /DWCP receiver certificate names DNS:n9, not n2 or 127\.0\.0\.1/);
    const stillA = (await api(n1, 'GET', '/api/v1/vms/ca-cold2')).json as { node: string };
    assert.equal(stillA.node, 'n1', 'the VM stays on n1');
  });
});
