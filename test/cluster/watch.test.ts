// Watches across etcd compaction, on a real etcd: a watch whose start revision was compacted away
// is cancelled by etcd; the member list, the assignment agent and the leader view must then read
// the prefix again and carry on, seeing what changed meanwhile (a node that lost its connection
// while the history it would have resumed from was compacted). Without this the etcd3 client's
// `error` event went unheard (ending the process) and the lists stopped changing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IKeyValue } from 'etcd3';
import { connectEtcd, relativeKey, type EtcdConnection } from '../../src/cluster/etcd-client.js';
import { AssignmentAgent } from '../../src/cluster/assignments.js';
import { LeaderWatch } from '../../src/cluster/election.js';
import { Keys } from '../../src/cluster/keys.js';
import { MemberWatch, type MemberChange, type NodeInfo } from '../../src/cluster/membership.js';
import { resilientWatch } from '../../src/cluster/watch.js';
import { EtcdCluster, etcdAvailable } from './etcd-harness.js';
import { TcpProxy } from './tcp-proxy.js';

const skip = etcdAvailable() ? false : 'etcd not installed (Debian package etcd-server)';
if (skip && process.env['CI']) throw new Error(`CI requires etcd for test/cluster: ${skip}`);

let seq = 0;
const info = (id: string, extra: Partial<NodeInfo> = {}): string =>
  JSON.stringify({
    id,
    addresses: [`127.0.0.1:${1000 + id.length}`],
    capacity: { cpus: 1, memoryMiB: 1024 },
    labels: {},
    driver: 'sim',
    ...extra,
  });

async function until(what: string, pred: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Compacts the whole history up to now (physically, so the old revisions are really gone). */
async function compactNow(conn: EtcdConnection): Promise<number> {
  const rev = Number((await conn.kv.get('compaction-marker').exec()).header.revision);
  await conn.client.kv.compact({ revision: String(rev), physical: true });
  return rev;
}

describe('watches across compaction', { skip, timeout: 120_000 }, () => {
  let etcd: EtcdCluster;
  let proxy: TcpProxy;
  const conns: EtcdConnection[] = [];
  const open = (endpoint: string, prefix: string): EtcdConnection => {
    const c = connectEtcd({ endpoints: [endpoint], prefix, callTimeoutMs: 1000 });
    conns.push(c);
    return c;
  };

  before(async () => {
    etcd = await EtcdCluster.start(1);
    const u = new URL(etcd.endpoints[0]!);
    proxy = await TcpProxy.start({ host: u.hostname, port: Number(u.port) });
  });

  after(async () => {
    for (const c of conns) c.close();
    await proxy?.close();
    await etcd?.stop();
  });

  test('resilientWatch from a compacted revision: cancelled, read again, then live', async () => {
    const conn = open(etcd.endpoints[0]!, `/watch-test-${process.pid}-${seq++}`);
    await conn.kv.put('p/a').value('1');
    const old = Number((await conn.kv.put('p/b').value('2')).header.revision);
    await conn.kv.put('p/c').value('3');
    await conn.kv.delete().key('p/a');
    await compactNow(conn);

    const snapshots: { keys: string[]; resync: boolean }[] = [];
    const puts: string[] = [];
    const trouble: string[] = [];
    const keyOf = (kv: IKeyValue) => relativeKey(conn, kv.key);
    const w = await resilientWatch(
      conn,
      { prefix: 'p/' },
      {
        onSnapshot: (kvs, _rev, resync) => snapshots.push({ keys: kvs.map(keyOf).sort(), resync }),
        onPut: (kv) => puts.push(keyOf(kv)),
        onDelete: () => undefined,
        onTrouble: (m) => trouble.push(m),
      },
      { startRevision: old },
    );
    try {
      await until('the re-read after the cancel', () => snapshots.length > 0);
      assert.deepEqual(snapshots, [{ keys: ['p/b', 'p/c'], resync: true }]);
      assert.equal(w.resyncs, 1);
      assert.match(trouble[0] ?? '', /watch cancelled by etcd/);
      await conn.kv.put('p/d').value('4');
      await until('the put after the re-read', () => puts.includes('p/d'));
    } finally {
      await w.cancel();
    }
  });

  test('member list, assignment agent and leader view: cut off, history compacted, healed', async () => {
    const prefix = `/watch-region-${process.pid}-${seq++}`;
    const direct = open(etcd.endpoints[0]!, prefix);
    const viaProxy = open(proxy.url, prefix);
    await direct.kv.put(`${Keys.membersPrefix}x`).value(info('x'));
    await direct.kv.put(`${Keys.membersPrefix}y`).value(info('y'));
    await direct.kv.put(Keys.leader('r1')).value('x');
    await direct.kv
      .put(Keys.assignment('n1', 'vm1'))
      .value(JSON.stringify({ vm: 'vm1', node: 'n1', term: 1 }));

    const members = await MemberWatch.start(viaProxy);
    const changes: MemberChange[] = [];
    members.onChange((c) => changes.push(c));
    const assigned: string[] = [];
    const removed: string[] = [];
    const agent = await AssignmentAgent.start(viaProxy, 'n1', {
      onAssign: async (a) => {
        assigned.push(a.vm);
        return 'running';
      },
      onRemove: (vm) => {
        removed.push(vm);
      },
    });
    const leaders = await LeaderWatch.start(viaProxy, 'r1');
    try {
      assert.deepEqual(
        members
          .nodes()
          .map((n) => n.id)
          .sort(),
        ['x', 'y'],
      );
      await until('vm1 handled', () => assigned.includes('vm1'));
      assert.equal(leaders.leader(), 'x');

      // cut off: meanwhile y leaves, z joins, x starts draining, vm1 goes and vm2 comes, the
      // leader changes; then the history is compacted, so the watches cannot resume where they were
      proxy.cut();
      await new Promise((r) => setTimeout(r, 300));
      await direct.kv.delete().key(`${Keys.membersPrefix}y`);
      await direct.kv.put(`${Keys.membersPrefix}z`).value(info('z'));
      await direct.kv.put(`${Keys.membersPrefix}x`).value(info('x', { draining: true }));
      await direct.kv.delete().key(Keys.assignment('n1', 'vm1'));
      await direct.kv
        .put(Keys.assignment('n1', 'vm2'))
        .value(JSON.stringify({ vm: 'vm2', node: 'n1', term: 2 }));
      await direct.kv.delete().key(Keys.leader('r1'));
      await direct.kv.put(Keys.leader('r1')).value('z');
      await compactNow(direct);
      proxy.heal();

      await until(
        'the member list to catch up',
        () =>
          members
            .nodes()
            .map((n) => n.id)
            .sort()
            .join(',') === 'x,z',
        30_000,
      );
      assert.equal(members.nodes().find((n) => n.id === 'x')?.draining, true);
      assert.deepEqual(changes.map((c) => `${c.type} ${c.id}`).sort(), ['join z', 'leave y', 'update x']);
      assert.ok(members.resyncs >= 1, 'the member watch was read again');
      await until(
        'vm2 handled and vm1 removed',
        () => assigned.includes('vm2') && removed.includes('vm1'),
        30_000,
      );
      assert.deepEqual(assigned, ['vm1', 'vm2'], 'vm1 is not handled twice');
      assert.ok(agent.resyncs >= 1, 'the assignment watch was read again');
      await until('the leader view to catch up', () => leaders.leader() === 'z', 30_000);
      assert.deepEqual(
        leaders.history.map((t) => t.leader),
        ['x', 'z'],
      );
      // and they are live again
      await direct.kv.put(`${Keys.membersPrefix}w`).value(info('w'));
      await until('a join after the re-read', () => members.has('w'));
    } finally {
      await members.close();
      await agent.close();
      await leaders.close();
    }
  });
});
