// Node-to-node live migration between two real `novacron start` processes (own data dirs, ports,
// SQLite each), real QEMU (TCG) with the test guest dirtying memory and printing heartbeats:
// the migration over REST, its heartbeat continuing on the destination; bad requests; a wrong join
// token; cancel mid-transfer; each node SIGKILLed mid-transfer and restarted. After every case exactly
// one QEMU runs the VM and both databases agree.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MigrationPeerClient } from '../../src/api/grpc/migration-service.js';
import { findQemuPidsUnder } from '../../src/vm/drivers/qemu/process.js';
import { waitForSerialLine } from '../../src/vm/drivers/qemu/serial.js';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';
import { GUEST_READY_LINE, ensureTestGuest, qemuUnavailable, type TestGuest } from '../vm/guest.js';
import { api, openNodeStore, startNodeProcess, type NodeProcess } from '../vm-api/node-process.js';

const skip = await qemuUnavailable();
if (skip) console.log(`# skipping node-to-node migration tests: ${skip}`);

const TOKEN = 'node-migration-test-join-token';
const HEARTBEAT = /^NOVACRON-HEARTBEAT (\d+)/;

interface Migration {
  id: string;
  state: string;
  phase: string;
  bytesSent: number;
  bytesTotal: number | null;
  downtimeMs: number | null;
  totalMs: number | null;
  error: string | null;
  progress: Record<string, unknown>;
}
interface Vm {
  id: string;
  name: string;
  node: string | null;
  state: string;
  pid: number | null;
}

interface Side {
  name: 'n1' | 'n2';
  dataDir: string;
  ports: { rest: number; grpc: number; dwcp: number };
  node?: NodeProcess | undefined;
}

describe('live migration between two nodes (real QEMU, TCG)', { skip: skip ?? false }, () => {
  let guest: TestGuest;
  const sides: Record<'n1' | 'n2', Side> = {
    n1: { name: 'n1', dataDir: '', ports: { rest: 0, grpc: 0, dwcp: 0 } },
    n2: { name: 'n2', dataDir: '', ports: { rest: 0, grpc: 0, dwcp: 0 } },
  };
  const other = (s: Side): Side => (s.name === 'n1' ? sides.n2 : sides.n1);

  /** n1 reaches n2's gRPC through this proxy, so a test can cut the control connection. */
  let proxy: { port: number; cut(): void; heal(): void; close(): void };

  function startProxy(target: () => number): Promise<typeof proxy> {
    const socks = new Set<Socket>();
    let refusing = false;
    const server = createServer((client) => {
      if (refusing) return client.destroy();
      const upstream = connect(target(), '127.0.0.1');
      socks.add(client).add(upstream);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
        socks.delete(client);
        socks.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream).pipe(client);
    });
    return new Promise((resolve) =>
      server.listen(0, '127.0.0.1', () =>
        resolve({
          port: (server.address() as AddressInfo).port,
          cut() {
            refusing = true;
            for (const c of socks) c.destroy();
          },
          heal() {
            refusing = false;
          },
          close() {
            for (const c of socks) c.destroy();
            server.close();
          },
        }),
      ),
    );
  }

  async function boot(s: Side): Promise<NodeProcess> {
    const peer = other(s);
    const peerPort = s.name === 'n1' ? proxy.port : peer.ports.grpc;
    s.node = await startNodeProcess(s.dataDir, {
      'system.node_id': s.name,
      'api.rest_port': s.ports.rest,
      'api.grpc_port': s.ports.grpc,
      'dwcp.listen_port': s.ports.dwcp,
      'cluster.join_token': TOKEN,
      'cluster.peers': JSON.stringify([{ name: peer.name, url: `http://127.0.0.1:${peerPort}` }]),
      'vm.driver': 'qemu',
      'vm.accel': 'tcg',
      'vm.stop_grace_seconds': 1,
      'node.capacity.cpus': 4,
      'node.capacity.memory_mib': 2048,
      'node.capacity.disk_gib': 1,
      'ml.enabled': 'false',
    });
    return s.node;
  }

  async function qemuPids(s: Side): Promise<number[]> {
    return [...(await findQemuPidsUnder(join(s.dataDir, 'vms'))).keys()];
  }

  async function createVm(name: string): Promise<Vm> {
    const r = await api(sides.n1.node!, 'POST', '/api/v1/vms', {
      name,
      cpus: 1,
      memoryMib: 128,
      kernel: guest.kernel,
      initrd: guest.initrd,
      // Keeps rewriting 16 MiB at 4 passes a second while it prints its heartbeat.
      cmdline: `${guest.cmdline} novacron.dirty_mib=16 novacron.dirty_rate=4`,
    });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    const vm = r.json as Vm;
    await waitForSerialLine(serialLog(sides.n1, vm.id), new RegExp(GUEST_READY_LINE), { timeoutMs: 90_000 });
    await waitForSerialLine(serialLog(sides.n1, vm.id), HEARTBEAT, { timeoutMs: 30_000 });
    return vm;
  }

  const serialLog = (s: Side, vmId: string): string => join(s.dataDir, 'vms', vmId, 'serial.log');
  function lastHeartbeat(path: string): number {
    const beats = readFileSync(path, 'utf8')
      .split('\n')
      .map((l) => HEARTBEAT.exec(l.trim())?.[1])
      .filter((x): x is string => x !== undefined);
    return Number(beats.at(-1) ?? -1);
  }
  async function nextHeartbeat(path: string): Promise<number> {
    const from = readFileSync(path).length;
    const line = await waitForSerialLine(path, HEARTBEAT, { timeoutMs: 30_000, fromOffset: from });
    return Number(HEARTBEAT.exec(line.trim())?.[1]);
  }

  async function migrate(vm: Vm, body: Record<string, unknown> = {}): Promise<Migration> {
    const r = await api(sides.n1.node!, 'POST', `/api/v1/vms/${vm.name}/migrate`, { target: 'n2', ...body });
    assert.equal(r.status, 202, JSON.stringify(r.json));
    return r.json as Migration;
  }
  async function poll(
    node: NodeProcess,
    id: string,
    until: (m: Migration) => boolean,
    timeoutMs = 120_000,
  ): Promise<Migration> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await api(node, 'GET', `/api/v1/migrations/${id}`);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      const m = r.json as Migration;
      if (until(m)) return m;
      if (Date.now() > deadline) throw new Error(`migration ${id} stuck: ${JSON.stringify(m)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }
  const ended = (m: Migration): boolean => ['completed', 'failed', 'cancelled'].includes(m.state);
  const midTransfer = (m: Migration): boolean => ended(m) || (m.phase === 'transfer' && m.bytesSent > 0);

  /** Both databases: the VM is on `where` and running; the other node has no running row of it. */
  async function assertDatabases(
    vmId: string,
    where: Side,
    migrationId: string,
    state: string,
  ): Promise<void> {
    const stores = await Promise.all([openNodeStore(sides.n1.dataDir), openNodeStore(sides.n2.dataDir)]);
    try {
      const [a, b] = stores;
      const onA = await a.vms.get(vmId);
      const onB = await b.vms.get(vmId);
      const here = where.name === 'n1' ? onA : onB;
      assert.equal(here?.state, 'running', `VM row on ${where.name} running`);
      assert.equal(here?.node, where.name);
      const there = where.name === 'n1' ? onB : onA;
      // The other node either has no row, or a row saying the VM runs on `where`.
      if (there) assert.equal(there.node, where.name, `the other node's row points at ${where.name}`);
      assert.equal((await a.migrations.get(migrationId))?.state, state, 'migration state on n1');
      assert.equal(
        (await a.allocations.list({ vmId }))?.length ?? 0,
        where.name === 'n1' ? 1 : 0,
        'n1 allocation',
      );
      assert.equal(
        (await b.allocations.list({ vmId }))?.length ?? 0,
        where.name === 'n2' ? 1 : 0,
        'n2 allocation',
      );
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  }

  /** Exactly one QEMU of the VM, under `where`'s data dir, and its heartbeat continues. */
  async function assertOneCopy(vmId: string, where: Side): Promise<void> {
    assert.equal((await qemuPids(where)).length, 1, `one QEMU under ${where.name}`);
    assert.equal((await qemuPids(other(where))).length, 0, `no QEMU under ${other(where).name}`);
    const log = serialLog(where, vmId);
    const last = lastHeartbeat(log);
    const next = await nextHeartbeat(log);
    assert.ok(next > last, `heartbeat continues on ${where.name}: ${next} after ${last}`);
  }

  before(async () => {
    guest = await ensureTestGuest();
    for (const s of Object.values(sides)) {
      s.dataDir = mkdtempSync(join(tmpdir(), `nc-mig-${s.name}-`));
      s.ports = { rest: await freePort(), grpc: await freePort(), dwcp: await freePort() };
    }
    proxy = await startProxy(() => sides.n2.ports.grpc);
    await Promise.all([boot(sides.n1), boot(sides.n2)]);
  });

  after(async () => {
    proxy?.close();
    for (const s of Object.values(sides)) {
      s.node?.cli.child.kill('SIGKILL');
      for (const pid of await qemuPids(s)) process.kill(pid, 'SIGKILL');
    }
    for (const s of Object.values(sides)) rmSync(s.dataDir, { recursive: true, force: true });
  });

  test('bad requests are 4xx naming what is wrong; a wrong join token is refused', async () => {
    const n1 = sides.n1.node!;
    const unknownVm = await api(n1, 'POST', '/api/v1/vms/nope/migrate', { target: 'n2' });
    assert.equal(unknownVm.status, 404);
    assert.match(JSON.stringify(unknownVm.json), /nope/);
    const badPeer = await api(n1, 'POST', '/api/v1/vms/nope/migrate', { target: 'n9' });
    assert.equal(badPeer.status, 400);
    assert.match(JSON.stringify(badPeer.json), /no peer named n9/);
    const noTarget = await api(n1, 'POST', '/api/v1/vms/nope/migrate', { live: true });
    assert.equal(noTarget.status, 400);
    assert.match(JSON.stringify(noTarget.json), /target/);
    assert.equal((await api(n1, 'GET', '/api/v1/migrations/0000')).status, 404);
    const intruder = new MigrationPeerClient(
      { name: 'n2', url: `http://127.0.0.1:${sides.n2.ports.grpc}` },
      'wrong',
    );
    try {
      await assert.rejects(intruder.get('x'), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'unauthenticated');
        assert.match(err.message, /join token does not match cluster\.join_token/);
        return true;
      });
    } finally {
      intruder.close();
    }
  });

  test('live migration: the heartbeat continues on the destination, one QEMU, both databases agree', async () => {
    const vm = await createVm('mig-live');
    const before = lastHeartbeat(serialLog(sides.n1, vm.id));
    const started = await migrate(vm, { maxDowntimeMs: 300 });
    assert.equal(started.state, 'pending');
    const m = await poll(sides.n1.node!, started.id, ended);
    assert.equal(m.state, 'completed', JSON.stringify(m));
    assert.ok(m.totalMs! > 0 && m.downtimeMs !== null && m.bytesSent > 0, JSON.stringify(m));
    const first = await nextHeartbeat(serialLog(sides.n2, vm.id));
    assert.ok(
      first > before && first <= lastHeartbeat(serialLog(sides.n1, vm.id)) + 3,
      `continues: ${first} after ${before}`,
    );
    const onB = (await api(sides.n2.node!, 'GET', `/api/v1/vms/${vm.name}`)).json as Vm;
    assert.equal(onB.state, 'running');
    assert.equal(onB.node, 'n2');
    const onA = (await api(sides.n1.node!, 'GET', `/api/v1/vms/${vm.name}`)).json as Vm;
    assert.equal(onA.node, 'n2');
    // n1's row of the VM points at n2: operations on it here are refused, naming n2.
    for (const [method, path] of [
      ['POST', `/api/v1/vms/${vm.name}/stop`],
      ['POST', `/api/v1/vms/${vm.name}/start`],
      ['DELETE', `/api/v1/vms/${vm.name}`],
    ] as const) {
      const r = await api(sides.n1.node!, method, path);
      assert.equal(r.status, 409, `${method} ${path}: ${JSON.stringify(r.json)}`);
      assert.match(JSON.stringify(r.json), /runs on node n2/);
    }
    assert.equal((await api(sides.n2.node!, 'GET', `/api/v1/migrations/${m.id}`)).json && true, true);
    await assertOneCopy(vm.id, sides.n2);
    await assertDatabases(vm.id, sides.n2, m.id, 'completed');
    // What the transfer measured of the link is in n1's bandwidth_samples (what `ml train --db` learns from).
    const n1Store = await openNodeStore(sides.n1.dataDir);
    try {
      const samples = await n1Store.bandwidth.list({ sourceNode: 'n1', targetNode: 'n2' });
      assert.ok(samples.length > 0, 'link samples recorded');
      assert.ok(
        samples.every((x) => x.bytesPerSecond >= 0 && x.rttMs !== null && x.rttMs > 0),
        JSON.stringify(samples),
      );
      assert.ok(
        samples.some((x) => x.bytesPerSecond > 0),
        JSON.stringify(samples),
      );
    } finally {
      await n1Store.close();
    }
    console.log(
      `# live migration: total ${m.totalMs} ms, downtime ${m.downtimeMs} ms, wire ${(m.bytesSent / 2 ** 20).toFixed(1)} MiB, ` +
        `stream ${(Number(m.progress['streamBytes']) / 2 ** 20).toFixed(1)} MiB, guest RAM ${(Number(m.progress['ramBytes']) / 2 ** 20).toFixed(0)} MiB`,
    );
    // Link history n2→n1 (as 20 earlier transfers would have left it): the way back asks the ML
    // bridge for the link's rate (here its moving-average fallback: ml.enabled is false).
    const n2Store = await openNodeStore(sides.n2.dataDir);
    try {
      const t0 = Date.now() - 60_000;
      await n2Store.bandwidth.append(
        Array.from({ length: 20 }, (_, i) => ({
          at: new Date(t0 + i * 1000).toISOString(),
          sourceNode: 'n2',
          targetNode: 'n1',
          bytesPerSecond: 50e6 + i * 1e5,
          rttMs: 1,
          streams: 2,
        })),
      );
    } finally {
      await n2Store.close();
    }
    // And back to n1 with the CLI (--watch -o json): n1's row of the VM (pointing at n2) is replaced.
    const cli = runCli([
      'vm',
      'migrate',
      vm.name,
      '--to',
      'n1',
      '--watch',
      '-o',
      'json',
      '--url',
      sides.n2.node!.url,
      '--token',
      sides.n2.node!.token,
    ]);
    assert.equal(await cli.exited, 0, cli.output());
    const back = JSON.parse(cli.output().slice(cli.output().indexOf('{'))) as Migration;
    assert.equal(back.state, 'completed');
    assert.match(
      sides.n2.node!.cli.output(),
      /"source":"fallback".*link to n1 predicted from 20 earlier samples/,
      'the link prediction was asked for',
    );
    await assertOneCopy(vm.id, sides.n1);
    assert.equal(((await api(sides.n1.node!, 'GET', `/api/v1/vms/${vm.name}`)).json as Vm).node, 'n1');
    assert.equal((await api(sides.n1.node!, 'DELETE', `/api/v1/vms/${vm.name}`)).status, 204);
  });

  test('cold migration of stopped VMs: disks move over DWCP, chunks the target holds are reused', async () => {
    const n1 = sides.n1.node!;
    const n2 = sides.n2.node!;
    const disk1 = join(sides.n1.dataDir, 'cold1.raw');
    const disk2 = join(sides.n1.dataDir, 'cold2.raw');
    const content = Buffer.concat([randomBytes(6 * 2 ** 20), Buffer.alloc(2 * 2 ** 20)]);
    writeFileSync(disk1, content);
    writeFileSync(disk2, content);
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    const ids: string[] = [];
    for (const [name, disk] of [
      ['mig-cold1', disk1],
      ['mig-cold2', disk2],
    ] as const) {
      const r = await api(n1, 'POST', '/api/v1/vms', {
        name,
        cpus: 1,
        memoryMib: 128,
        kernel: guest.kernel,
        initrd: guest.initrd,
        cmdline: guest.cmdline,
        disks: [{ path: disk, format: 'raw' }],
      });
      assert.equal(r.status, 201, JSON.stringify(r.json));
      ids.push((r.json as Vm).id);
      assert.equal((await api(n1, 'POST', `/api/v1/vms/${name}/stop`, { force: true })).status, 200);
      // Live migration of a stopped VM is refused with the reason.
      const live = await api(n1, 'POST', `/api/v1/vms/${name}/migrate`, { target: 'n2', live: true });
      assert.equal(live.status, 409, JSON.stringify(live.json));
      assert.match(JSON.stringify(live.json), /is stopped: live migration needs a running VM/);
    }
    const wire: number[] = [];
    for (const name of ['mig-cold1', 'mig-cold2']) {
      const started = (await api(n1, 'POST', `/api/v1/vms/${name}/migrate`, { target: 'n2' }))
        .json as Migration;
      const m = await poll(n1, started.id, ended);
      assert.equal(m.state, 'completed', JSON.stringify(m));
      wire.push(m.bytesSent);
      const onB = (await api(n2, 'GET', `/api/v1/vms/${name}`)).json as Vm & { disks: { path: string }[] };
      assert.equal(onB.state, 'stopped');
      assert.equal(onB.node, 'n2');
      assert.ok(onB.disks[0]!.path.startsWith(sides.n2.dataDir), onB.disks[0]!.path);
      assert.equal(sha(readFileSync(onB.disks[0]!.path)), sha(content), 'disk content identical on n2');
      assert.equal(((await api(n1, 'GET', `/api/v1/vms/${name}`)).json as Vm).node, 'n2');
    }
    // The second disk has the same content: its chunks were already on n2.
    assert.ok(
      wire[1]! < content.length / 4,
      `second disk reused chunks: ${wire[1]} wire bytes vs ${wire[0]}`,
    );
    // The moved VM starts on n2.
    const st = await api(n2, 'POST', '/api/v1/vms/mig-cold1/start');
    assert.equal(st.status, 200, JSON.stringify(st.json));
    await waitForSerialLine(serialLog(sides.n2, ids[0]!), new RegExp(GUEST_READY_LINE), {
      timeoutMs: 90_000,
    });
    assert.equal((await qemuPids(sides.n1)).length, 0);
    for (const name of ['mig-cold1', 'mig-cold2'])
      assert.equal((await api(n2, 'DELETE', `/api/v1/vms/${name}`)).status, 204);
    console.log(
      `# cold migration of 8 MiB disks: wire ${wire[0]} bytes, then ${wire[1]} bytes for the same content`,
    );
  });

  test('cancel mid-transfer: cancelled, the source runs on, the destination has nothing', async () => {
    const vm = await createVm('mig-cancel');
    const started = await migrate(vm);
    const mid = await poll(sides.n1.node!, started.id, midTransfer);
    assert.equal(mid.state, 'running', `still running when cancelled: ${JSON.stringify(mid)}`);
    const r = await api(sides.n1.node!, 'DELETE', `/api/v1/migrations/${started.id}`);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal((r.json as Migration).state, 'cancelled');
    assert.equal((await api(sides.n1.node!, 'DELETE', `/api/v1/migrations/${started.id}`)).status, 409);
    assert.equal((await api(sides.n2.node!, 'GET', `/api/v1/vms/${vm.name}`)).status, 404);
    await assertOneCopy(vm.id, sides.n1);
    await assertDatabases(vm.id, sides.n1, started.id, 'cancelled');
    assert.equal((await api(sides.n1.node!, 'DELETE', `/api/v1/vms/${vm.name}`)).status, 204);
  });

  test('control connection cut mid-transfer: both sides roll back on their own', async () => {
    const vm = await createVm('mig-cut');
    const started = await migrate(vm);
    await poll(sides.n1.node!, started.id, midTransfer);
    proxy.cut();
    try {
      const m = await poll(sides.n1.node!, started.id, ended);
      assert.equal(m.state, 'failed', JSON.stringify(m));
      // n2 gives up by itself: at once when the source's AwaitLoaded call breaks, or — when the cut
      // came after the state was loaded (a slow machine) — once its resume watchdog (60 s) fires.
      // Either way: no VM row, no QEMU.
      const deadline = Date.now() + 90_000;
      const n2Gone = async (): Promise<boolean> =>
        (await qemuPids(sides.n2)).length === 0 &&
        (await api(sides.n2.node!, 'GET', `/api/v1/vms/${vm.name}`)).status === 404;
      while (!(await n2Gone()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      assert.equal((await api(sides.n2.node!, 'GET', `/api/v1/vms/${vm.name}`)).status, 404);
    } finally {
      proxy.heal();
    }
    await assertOneCopy(vm.id, sides.n1);
    await assertDatabases(vm.id, sides.n1, started.id, 'failed');
    assert.equal((await api(sides.n1.node!, 'DELETE', `/api/v1/vms/${vm.name}`)).status, 204);
  });

  test('source node SIGKILLed mid-transfer: after its restart the source runs, the destination has nothing', async () => {
    const vm = await createVm('mig-kill-src');
    const started = await migrate(vm);
    await poll(sides.n1.node!, started.id, midTransfer);
    await sides.n1.node!.kill();
    // The destination gives up by itself once the source's control call broke.
    const deadline = Date.now() + 30_000;
    while ((await qemuPids(sides.n2)).length > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    assert.equal((await qemuPids(sides.n2)).length, 0, 'destination QEMU killed after the source died');
    const n1 = await boot(sides.n1);
    const m = await poll(n1, started.id, ended);
    assert.equal(m.state, 'failed', JSON.stringify(m));
    await assertOneCopy(vm.id, sides.n1);
    await assertDatabases(vm.id, sides.n1, started.id, 'failed');
    assert.equal((await api(n1, 'DELETE', `/api/v1/vms/${vm.name}`)).status, 204);
  });

  test('destination node SIGKILLed mid-transfer: the source rolls back; after its restart the destination has nothing', async () => {
    const vm = await createVm('mig-kill-dst');
    const started = await migrate(vm);
    await poll(sides.n1.node!, started.id, midTransfer);
    await sides.n2.node!.kill();
    const m = await poll(sides.n1.node!, started.id, ended);
    assert.equal(m.state, 'failed', JSON.stringify(m));
    await boot(sides.n2);
    await assertOneCopy(vm.id, sides.n1);
    await assertDatabases(vm.id, sides.n1, started.id, 'failed');
  });
});
