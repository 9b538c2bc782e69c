// A region of three real `novacron start` nodes (sim driver) on a 3-member etcd and one shared
// PostgreSQL database: creates at any node are placed by the leader and run on the chosen node;
// a SIGKILLed node's HA VMs run elsewhere within 20 s; the leader's death gives a new leader within
// 5 s with no lost or duplicated placement; an etcd member's death changes nothing; a partitioned
// node fences its HA VMs, they restart elsewhere, and it rejoins. A watcher polling every node's
// driver view checks throughout that no VM ever runs on two nodes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { runCli } from '../helpers/cli.js';
import { etcdAvailable } from './etcd-harness.js';
import { DoubleRunWatcher, Region, type ClusterBody, type VmRow } from './region-harness.js';

const NODES = ['node-a', 'node-b', 'node-c'];
const CPUS = 8;

/** Every row with desired running placed exactly once: one allocation, on the row's node. */
async function assertPlacedOnce(region: Region): Promise<void> {
  const [rows, allocs] = await Promise.all([region.rows(), region.allocations()]);
  for (const r of rows) {
    if (r.node === null) continue;
    assert.deepEqual(
      allocs.get(r.id),
      [r.node],
      `vm ${r.name}: allocations ${JSON.stringify(allocs.get(r.id))}`,
    );
  }
  assert.equal(new Set(rows.map((r) => r.name)).size, rows.length, 'no duplicated VM rows');
}

const allRunning = (rows: VmRow[], n: number) =>
  rows.length === n && rows.every((r) => r.state === 'running' && r.node !== null);

test(
  'region on etcd + PostgreSQL: leader placement, HA after SIGKILL, leader failover, etcd member loss, partition and fencing',
  {
    skip: etcdAvailable() ? false : 'etcd is not installed (Debian package etcd-server)',
    timeout: 420_000,
  },
  async (t) => {
    const region = await Region.start({ etcdMembers: 3, nodes: NODES, cpus: CPUS });
    const watcher = new DoubleRunWatcher(region);
    const log = (msg: string) => t.diagnostic(msg);
    try {
      const leaderOf = async (via: string) =>
        (await region.getJson<ClusterBody>(via, '/api/v1/cluster')).leader;
      // every node sees all three ready and the same leader
      for (const id of NODES)
        await region.until(
          `${id} sees three ready nodes and a leader`,
          () => region.getJson<ClusterBody>(id, '/api/v1/cluster'),
          (c) => c.leader !== null && c.nodes.filter((n) => n.status === 'ready').length === 3,
        );
      const leader0 = (await leaderOf('node-a'))!;
      for (const id of NODES) assert.equal(await leaderOf(id), leader0);

      // creates at every node: recorded pending, placed by the leader, started by the chosen node
      let total = 0;
      for (const id of NODES)
        for (let i = 0; i < 2; i++) {
          const r = await region.createVm(id, `ha-${id}-${i}`, { restartPolicy: 'always' });
          assert.equal(r.status, 201, JSON.stringify(r.body));
          assert.equal(r.body.state, 'pending');
          assert.equal(r.body.node, null);
          total++;
        }
      let rows = await region.until(
        '6 VMs running',
        () => region.rows(),
        (r) => allRunning(r, total),
      );
      // the VM list of any node shows the region's VMs with their node
      const listed = await region.getJson<{ items: VmRow[] }>('node-b', '/api/v1/vms');
      assert.equal(listed.items.length, total);
      assert.deepEqual(
        listed.items.map((v) => [v.name, v.node]).sort(),
        rows.map((v) => [v.name, v.node]).sort(),
      );
      // each VM runs (driver view) on exactly the node its row names
      const driverView = async () => {
        const m = new Map<string, string>();
        for (const id of NODES) {
          const n = region.node(id);
          if (n.cli.child.exitCode !== null || n.cli.child.signalCode !== null) continue;
          for (const vm of (await region.getJson<{ vms: string[] }>(id, '/api/v1/cluster/self/vms')).vms)
            m.set(vm, id);
        }
        return m;
      };
      const view = await driverView();
      for (const r of rows) assert.equal(view.get(r.id), r.node, `vm ${r.name} runs on its node`);
      // an operation on a VM of another live node is refused with that node's address
      const foreign = rows.find((r) => r.node !== 'node-a')!;
      const refused = await fetch(`${region.node('node-a').url}/api/v1/vms/${foreign.id}/stop`, {
        method: 'POST',
        headers: region.node('node-a').auth(),
      });
      assert.equal(refused.status, 409);
      assert.match(
        ((await refused.json()) as { error: { message: string } }).error.message,
        /runs on node node-[bc] \(127\.0\.0\.1:\d+\): send this request to that node/,
      );
      await assertPlacedOnce(region);

      // 1. SIGKILL a node (not the leader) that runs VMs: its HA VMs run elsewhere within 20 s
      const victim = NODES.filter((n) => n !== leader0).sort(
        (x, y) => rows.filter((r) => r.node === y).length - rows.filter((r) => r.node === x).length,
      )[0]!;
      const lost = rows.filter((r) => r.node === victim).map((r) => r.id);
      assert.ok(lost.length > 0, `victim ${victim} runs VMs`);
      const killedAt = performance.now();
      region.kill(victim);
      rows = await region.until(
        `HA VMs of ${victim} running elsewhere`,
        () => region.rows(),
        (r) =>
          lost.every((id) =>
            r.some((x) => x.id === id && x.state === 'running' && x.node !== victim && x.node !== null),
          ),
        40_000,
      );
      const haMs = performance.now() - killedAt;
      log(`SIGKILL of ${victim} → its ${lost.length} HA VM(s) running elsewhere: ${Math.round(haMs)} ms`);
      // the 20 s bar is judged by bench/cluster on a quiet machine; here: never before the lease (4 s) and
      // the grace (2 s) have run out (that would risk two copies), and within the wait above
      assert.ok(haMs >= 6000, `HA restart after ${haMs} ms: before lease TTL + grace`);
      await assertPlacedOnce(region);
      const c1 = await region.getJson<ClusterBody>(leader0, '/api/v1/cluster');
      assert.equal(c1.nodes.find((n) => n.id === victim)?.status, 'down');
      await region.startNode(victim); // back, with the same id and data dir: it runs nothing of the moved VMs
      await region.until(
        'victim back ready',
        () => region.getJson<ClusterBody>(leader0, '/api/v1/cluster'),
        (c) => c.nodes.every((n) => n.status === 'ready'),
      );
      for (const id of lost) assert.notEqual((await driverView()).get(id), victim);

      // 2. kill the leader while creates arrive: new leader < 5 s, every create placed exactly once
      rows = await region.rows();
      const leaderLost = rows.filter((r) => r.node === leader0).map((r) => r.id);
      const survivor = NODES.find((n) => n !== leader0)!;
      const lKilledAt = performance.now();
      region.kill(leader0);
      const during = [];
      for (let i = 0; i < 3; i++) during.push(await region.createVm(survivor, `during-failover-${i}`));
      for (const r of during) assert.equal(r.status, 201, JSON.stringify(r.body));
      total += during.length;
      const leader1 = await region.until(
        'a new leader',
        () => leaderOf(survivor),
        (l) => l !== null && l !== leader0,
        15_000,
      );
      const failoverMs = performance.now() - lKilledAt;
      log(`SIGKILL of leader ${leader0} → new leader ${leader1}: ${Math.round(failoverMs)} ms`);
      // the 5 s bar is judged by bench/cluster; a loaded CI machine only has to find a new leader in time
      assert.ok(failoverMs < 15_000, `leader failover took ${failoverMs} ms`);
      rows = await region.until(
        'creates placed and the old leader’s HA VMs moved',
        () => region.rows(),
        (r) => allRunning(r, total) && leaderLost.every((id) => r.find((x) => x.id === id)?.node !== leader0),
        40_000,
      );
      await assertPlacedOnce(region);
      await region.startNode(leader0);
      await region.until(
        'old leader back ready',
        () => region.getJson<ClusterBody>(leader1!, '/api/v1/cluster'),
        (c) => c.nodes.every((n) => n.status === 'ready'),
      );

      // 3. one etcd member of three killed: the region goes on (creates placed), nobody fences
      const fencedBefore = NODES.map((id) => region.node(id).count(/partitioned from etcd: fenced/));
      await region.etcd.kill(2);
      for (let i = 0; i < 2; i++)
        assert.equal((await region.createVm(NODES[i]!, `etcd-degraded-${i}`)).status, 201);
      total += 2;
      await region.until(
        'creates placed with 2 of 3 etcd members',
        () => region.rows(),
        (r) => allRunning(r, total),
      );
      assert.deepEqual(
        NODES.map((id) => region.node(id).count(/partitioned from etcd: fenced/)),
        fencedBefore,
        'no node fenced when one etcd member died',
      );
      await region.etcd.restart(2);

      // 4. partition a node that runs HA VMs: it fences them before its lease expires, they restart
      //    elsewhere, and on heal it rejoins without running them again
      rows = await region.rows();
      const leaderNow = (await leaderOf(NODES[0]!)) ?? (await leaderOf(NODES[1]!));
      const cut = NODES.filter((n) => n !== leaderNow).sort(
        (x, y) => rows.filter((r) => r.node === y).length - rows.filter((r) => r.node === x).length,
      )[0]!;
      const cutHa = rows.filter((r) => r.node === cut && r.restartPolicy === 'always').map((r) => r.id);
      assert.ok(cutHa.length > 0, `partitioned node ${cut} runs HA VMs`);
      const cutNode = region.node(cut);
      const fences = cutNode.count(/fenced: stopped \d+ HA VM/);
      region.partition(cut);
      await cutNode.waitCount(/fenced: stopped \d+ HA VM/, fences + 1, 20_000);
      const local = (await region.getJson<{ vms: string[] }>(cut, '/api/v1/cluster/self/vms')).vms;
      for (const id of cutHa) assert.ok(!local.includes(id), `HA vm ${id} stopped on the fenced node`);
      const ready = await fetch(`${cutNode.url}/health/ready`);
      assert.equal(ready.status, 503);
      await region.until(
        `HA VMs of partitioned ${cut} running elsewhere`,
        () => region.rows(),
        (r) => cutHa.every((id) => r.some((x) => x.id === id && x.state === 'running' && x.node !== cut)),
        40_000,
      );
      region.heal(cut);
      await cutNode.waitCount(/rejoined etcd with a new lease/, 1, 30_000);
      await region.until(
        'partitioned node ready again',
        () => region.getJson<ClusterBody>(cut, '/api/v1/cluster'),
        (c) => c.nodes.find((n) => n.id === cut)?.status === 'ready',
      );
      assert.equal((await fetch(`${cutNode.url}/health/ready`)).status, 200);
      const after = (await region.getJson<{ vms: string[] }>(cut, '/api/v1/cluster/self/vms')).vms;
      for (const id of cutHa) assert.ok(!after.includes(id), `HA vm ${id} not running again on ${cut}`);
      assert.equal((await region.createVm(cut, 'after-heal')).status, 201);
      total++;
      await region.until(
        'all running after heal',
        () => region.rows(),
        (r) => allRunning(r, total),
      );
      await assertPlacedOnce(region);

      // 5. drain through the real CLI: the node's VMs are stopped there and restarted elsewhere
      //    (stop-and-restart), it takes no new VMs, and uncordon makes it ready again
      rows = await region.rows();
      const drained = NODES.slice().sort(
        (x, y) => rows.filter((r) => r.node === y).length - rows.filter((r) => r.node === x).length,
      )[0]!;
      const toMove = rows.filter((r) => r.node === drained).map((r) => r.id);
      assert.ok(toMove.length > 0, `drained node ${drained} runs VMs`);
      const dn = region.node(drained);
      const drainCli = runCli(['node', 'drain', '--url', dn.url, '--data-dir', dn.dataDir, '-o', 'json']);
      assert.equal(await drainCli.exited, 0, drainCli.output());
      const drainOut = JSON.parse(drainCli.output()) as {
        drain: { method: string; moving: number };
        left: number;
      };
      assert.deepEqual(drainOut.drain, { method: 'stop-and-restart', moving: toMove.length });
      assert.equal(drainOut.left, 0);
      rows = await region.until(
        `VMs of drained ${drained} running elsewhere`,
        () => region.rows(),
        (r) =>
          toMove.every((id) => r.some((x) => x.id === id && x.state === 'running' && x.node !== drained)),
      );
      assert.equal((await region.createVm(drained, 'while-draining')).status, 201);
      total++;
      rows = await region.until(
        'create placed while draining',
        () => region.rows(),
        (r) => allRunning(r, total),
      );
      assert.notEqual(
        rows.find((r) => r.name === 'while-draining')?.node,
        drained,
        'no new VM on a draining node',
      );
      const uncordonCli = runCli(['node', 'uncordon', '--url', dn.url, '--data-dir', dn.dataDir]);
      assert.equal(await uncordonCli.exited, 0, uncordonCli.output());
      await assertPlacedOnce(region);
      const finalView = await driverView();
      for (const r of await region.rows())
        assert.equal(finalView.get(r.id), r.node, `vm ${r.name} runs on its node`);
      await watcher.stop();
      log(`double-run watcher: ${watcher.rounds} rounds, ${watcher.violations.length} violation(s)`);
      assert.ok(watcher.rounds > 50, 'the watcher ran');
      assert.deepEqual(watcher.violations, [], 'no VM ever ran on two nodes');
    } finally {
      await watcher.stop();
      await region.close();
    }
  },
);
