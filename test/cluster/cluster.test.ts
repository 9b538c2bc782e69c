// Cluster primitives on real etcd: membership, lease expiry, election and failover, member loss, partition and fencing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import {
  AssignmentAgent,
  Election,
  Keys,
  LeaderWatch,
  MemberWatch,
  Membership,
  Session,
  checkTermHistory,
  connectEtcd,
  readAcks,
  readClusterStatus,
  writeAssignment,
} from '../../src/cluster/index.js';
import type { AssignmentAck, EtcdConnection, FenceEvent, NodeInfo, Term } from '../../src/cluster/index.js';
import { InvalidStateError, UnavailableError } from '../../src/errors.js';
import { EtcdCluster, etcdAvailable } from './etcd-harness.js';
import { TcpProxy } from './tcp-proxy.js';

const skip = etcdAvailable() ? false : 'etcd not installed (Debian package etcd-server)';
const TTL = 2;
const REGION = 'r1';

function info(id: string): NodeInfo {
  return {
    id,
    addresses: [`127.0.0.1:${9000 + id.length}`],
    capacity: { cpus: 4, memoryMiB: 8192 },
    labels: { zone: 'a' },
    driver: 'sim',
  };
}

interface Node {
  readonly id: string;
  readonly conn: EtcdConnection;
  readonly session: Session;
  readonly membership: Membership;
  election?: Election;
  /** Local leadership intervals (shared monotonic clock: all nodes live in this process). */
  readonly led: { start: number; end?: number; term: Term; reason?: string }[];
  readonly fences: FenceEvent[];
}

async function startNode(
  endpoints: string[],
  prefix: string,
  id: string,
  elect = false,
  ttl = TTL,
): Promise<Node> {
  const conn = connectEtcd({ endpoints, prefix, callTimeoutMs: 400 });
  const session = await Session.open(conn, { ttlSeconds: ttl });
  const membership = await Membership.join(conn, session, info(id));
  const node: Node = { id, conn, session, membership, led: [], fences: [] };
  session.onFence((e) => node.fences.push(e));
  if (elect) {
    node.election = new Election(conn, session, {
      region: REGION,
      nodeId: id,
      onElected: (term) => node.led.push({ start: performance.now(), term }),
      onDeposed: (_term, reason) => {
        const cur = node.led[node.led.length - 1];
        if (cur && cur.end === undefined) {
          cur.end = performance.now();
          cur.reason = reason;
        }
      },
    });
    node.election.start();
  }
  return node;
}

async function stopNode(n: Node): Promise<void> {
  await n.election?.stop();
  await n.session.close();
  n.conn.close();
}

/** Every node's leadership intervals with term revision and why each ended, for failure messages. */
function describeLeadership(nodes: readonly Node[]): string {
  return nodes
    .map(
      (n) =>
        `${n.id}: ` +
        n.led
          .map(
            (l) =>
              `[${l.start.toFixed(2)}, ${l.end?.toFixed(2) ?? '…'}) term ${l.term.revision} ${l.reason ?? ''}`,
          )
          .join(', ') +
        ` fences ${n.fences.map((f) => f.at.toFixed(2)).join(', ') || 'none'}`,
    )
    .join('; ');
}

/**
 * No two local leadership intervals of different nodes overlap in time. `revoked`: a leader whose
 * lease was revoked from outside learns it lost from the same etcd event the next leader wins by,
 * so which process acts first is a race; its belief must have ended (checked here) and its writes
 * are refused by the lease fence (checked by the caller), but its interval is not compared.
 */
function assertNoOverlappingLeaders(nodes: readonly Node[], revoked?: string): void {
  if (revoked !== undefined) {
    const r = nodes.find((n) => n.id === revoked);
    assert.ok(
      r && r.led.length > 0 && r.led.every((l) => l.end !== undefined),
      `${revoked} still believes it leads`,
    );
  }
  const all = nodes
    .filter((n) => n.id !== revoked)
    .flatMap((n) => n.led.map((l) => ({ id: n.id, start: l.start, end: l.end ?? Infinity })));
  all.sort((a, b) => a.start - b.start);
  for (let i = 1; i < all.length; i++) {
    const prev = all[i - 1];
    const cur = all[i];
    if (!prev || !cur) continue;
    assert.ok(
      prev.end <= cur.start,
      `${prev.id} led until ${prev.end}, ${cur.id} from ${cur.start}; all intervals: ${describeLeadership(nodes)}`,
    );
  }
}

let prefixSeq = 0;
const uniquePrefix = (): string => `/novacron-test-${process.pid}-${++prefixSeq}`;

describe('cluster on a 1-member etcd', { skip }, () => {
  let etcd: EtcdCluster;
  before(async () => {
    etcd = await EtcdCluster.start(1);
  });
  after(async () => {
    await etcd.stop();
  });

  test('a watcher sees the snapshot, then a second node join and leave', async () => {
    const prefix = uniquePrefix();
    const a = await startNode(etcd.endpoints, prefix, 'node-a');
    const obsConn = connectEtcd({ endpoints: etcd.endpoints, prefix });
    const watch = await MemberWatch.start(obsConn);
    try {
      assert.deepEqual(
        watch.nodes().map((n) => n.id),
        ['node-a'],
      );
      const joined = watch.waitFor((c) => c.type === 'join' && c.id === 'node-b');
      const b = await startNode(etcd.endpoints, prefix, 'node-b');
      const j = await joined;
      assert.deepEqual(j.node, info('node-b'));
      assert.ok(j.revision > watch.snapshotRevision);
      // a second process with the same id is refused while the first is alive
      const dupConn = connectEtcd({ endpoints: etcd.endpoints, prefix });
      const dupSession = await Session.open(dupConn, { ttlSeconds: TTL });
      await assert.rejects(Membership.join(dupConn, dupSession, info('node-b')), { code: 'conflict' });
      await dupSession.close();
      dupConn.close();
      const left = watch.waitFor((c) => c.type === 'leave' && c.id === 'node-b');
      await b.membership.leave();
      await left;
      assert.deepEqual(
        watch.nodes().map((n) => n.id),
        ['node-a'],
      );
      const view = await readClusterStatus(obsConn, REGION);
      assert.deepEqual(view, {
        leader: null,
        nodes: [
          { id: 'node-a', status: 'ready', address: info('node-a').addresses[0] },
          { id: 'node-b', status: 'down', address: info('node-b').addresses[0] },
        ],
      });
      await stopNode(b);
    } finally {
      await watch.close();
      obsConn.close();
      await stopNode(a);
    }
  });

  test('a node process killed with SIGKILL is marked down once its lease expires', async (t) => {
    const prefix = uniquePrefix();
    const obsConn = connectEtcd({ endpoints: etcd.endpoints, prefix });
    const watch = await MemberWatch.start(obsConn);
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        new URL('./node-process.ts', import.meta.url).pathname,
        JSON.stringify(etcd.endpoints),
        prefix,
        'victim',
        String(TTL),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      const joined = watch.waitFor((c) => c.type === 'join' && c.id === 'victim');
      await joined;
      const left = watch.waitFor((c) => c.type === 'leave' && c.id === 'victim');
      const killedAt = performance.now();
      child.kill('SIGKILL');
      await once(child, 'exit');
      await left;
      const took = performance.now() - killedAt;
      // etcd expires a lease at TTL after its last renewal, checked every 500 ms
      assert.ok(took <= TTL * 1000 + 1500, `down after ${took.toFixed(0)} ms`);
      t.diagnostic(`SIGKILL to marked down: ${took.toFixed(0)} ms (TTL ${TTL * 1000} ms)`);
      const view = await readClusterStatus(obsConn, REGION);
      assert.deepEqual(view.nodes, [{ id: 'victim', status: 'down', address: '127.0.0.1:9' }]);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await watch.close();
      obsConn.close();
    }
  });

  test('the leader process killed with SIGKILL: a new leader within 5 s, no overlapping terms', async (t) => {
    const prefix = uniquePrefix();
    const obsConn = connectEtcd({ endpoints: etcd.endpoints, prefix });
    const leaders = await LeaderWatch.start(obsConn, REGION);
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        new URL('./node-process.ts', import.meta.url).pathname,
        JSON.stringify(etcd.endpoints),
        prefix,
        'old-leader',
        String(TTL),
        REGION,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let n2: Node | undefined;
    try {
      await leaders.waitFor((l) => l === 'old-leader');
      n2 = await startNode(etcd.endpoints, prefix, 'n2', true);
      assert.equal(n2.election?.term, undefined);
      const next = leaders.waitFor((l) => l === 'n2');
      const killedAt = performance.now();
      child.kill('SIGKILL');
      await next;
      const took = performance.now() - killedAt;
      t.diagnostic(`leader SIGKILL to new leader observed: ${took.toFixed(0)} ms (TTL ${TTL * 1000} ms)`);
      assert.ok(took < 5000, `failover took ${took.toFixed(0)} ms`);
      assert.deepEqual(
        leaders.history.map((h) => h.leader),
        ['old-leader', 'n2'],
      );
      assert.deepEqual(checkTermHistory(leaders.history), []);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      if (n2) await stopNode(n2);
      await leaders.close();
      obsConn.close();
    }
  });

  test('election: one leader, failover when its lease is revoked, deposed leader cannot assign', async (t) => {
    const prefix = uniquePrefix();
    const obsConn = connectEtcd({ endpoints: etcd.endpoints, prefix });
    const leaders = await LeaderWatch.start(obsConn, REGION);
    const nodes = [
      await startNode(etcd.endpoints, prefix, 'n1', true),
      await startNode(etcd.endpoints, prefix, 'n2', true),
      await startNode(etcd.endpoints, prefix, 'n3', true),
    ];
    const assigned: string[] = [];
    const acked: AssignmentAck[] = [];
    const ackListeners = new Set<() => void>();
    const agents = await Promise.all(
      nodes.map((n) =>
        AssignmentAgent.start(n.conn, n.id, {
          onAssign: async (a) => {
            assigned.push(`${a.node}/${a.vm}@${a.term}`);
            return 'running';
          },
          onAcked: (ack, written) => {
            if (written) acked.push(ack);
            for (const fn of ackListeners) fn();
          },
        }),
      ),
    );
    const ackedRevision = (vm: string, rev: number): Promise<void> =>
      new Promise((resolve) => {
        const check = (): void => {
          if (acked.some((x) => x.vm === vm && x.revision === rev)) {
            ackListeners.delete(check);
            resolve();
          }
        };
        ackListeners.add(check);
        check();
      });
    try {
      const first = await leaders.waitFor((l) => l !== null);
      const leader = nodes.find((n) => n.id === first);
      assert.ok(leader?.election);
      const term = leader.election.term;
      assert.ok(term);
      assert.equal(nodes.filter((n) => n.election?.term).length, 1);

      // the leader assigns a VM to another node; that node's agent acks it
      const target = nodes.find((n) => n !== leader);
      assert.ok(target);
      const rev = await writeAssignment(leader.conn, leader.session, REGION, term, {
        vm: 'vm-1',
        node: target.id,
      });
      await ackedRevision('vm-1', rev);
      const stored = await readAcks(obsConn, target.id);
      assert.deepEqual(stored, [{ vm: 'vm-1', node: target.id, revision: rev, state: 'running' }]);
      assert.deepEqual(assigned, [`${target.id}/vm-1@${term.revision}`]);

      // revoke the leader's lease from outside: as if its process died and etcd expired it
      const changed = leaders.waitFor((l) => l !== null && l !== first);
      const t0 = performance.now();
      await obsConn.client.leaseClient.leaseRevoke({ ID: leader.session.leaseId });
      const second = await changed;
      const failover = performance.now() - t0;
      assert.ok(failover < 5000, `failover took ${failover.toFixed(0)} ms`);
      t.diagnostic(`leader lease revoked to new leader observed: ${failover.toFixed(0)} ms`);
      assert.notEqual(second, first);

      // the old term can no longer write, even though the old leader's process is alive
      await assert.rejects(
        writeAssignment(leader.conn, leader.session, REGION, term, { vm: 'vm-2', node: target.id }),
        (e: unknown) => e instanceof InvalidStateError || e instanceof UnavailableError,
      );
      const newLeader = nodes.find((n) => n.id === second);
      const newTerm = newLeader?.election?.term;
      assert.ok(newLeader && newTerm && newTerm.revision > term.revision);
      await writeAssignment(newLeader.conn, newLeader.session, REGION, newTerm, {
        vm: 'vm-2',
        node: target.id,
      });

      // the history seen by the watcher and the nodes' own beliefs: never two leaders at once
      assert.deepEqual(checkTermHistory(leaders.history), []);
      // the revoked leader steps down once it sees its lease gone
      const old = nodes.find((n) => n.id === first);
      for (let i = 0; i < 100 && old?.led.some((l) => l.end === undefined); i++)
        await new Promise((r) => setTimeout(r, 50));
      assertNoOverlappingLeaders(nodes, first ?? undefined);

      // resign on stop hands leadership on
      const third = leaders.waitFor((l) => l !== null && l !== second);
      await newLeader.election?.stop();
      assert.ok((await third) !== second);
      assert.deepEqual(checkTermHistory(leaders.history), []);
      // the revoked leader's interval stays out of the comparison (see assertNoOverlappingLeaders)
      assertNoOverlappingLeaders(nodes, first ?? undefined);
    } finally {
      await Promise.all(agents.map((a) => a.close()));
      await Promise.all(nodes.map(stopNode));
      await leaders.close();
      obsConn.close();
    }
  });

  test("a leader key on this node's own live lease is led on in its term; one on another lease is waited out", async (t) => {
    const prefix = uniquePrefix();
    const conn = connectEtcd({ endpoints: etcd.endpoints, prefix, callTimeoutMs: 400 });
    const session = await Session.open(conn, { ttlSeconds: TTL });
    const key = Keys.leader(REGION);
    const elections: Election[] = [];
    const elect = (): Promise<Term> =>
      new Promise<Term>((resolve) => {
        const e = new Election(conn, session, { region: REGION, nodeId: 'n1', onElected: resolve });
        elections.push(e);
        e.start();
      });
    const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
      Promise.race([
        p,
        new Promise<T>((_, reject) =>
          setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref(),
        ),
      ]);
    try {
      // as a term whose watch etcd cancelled leaves it: the key holds this node's id on its own lease
      await conn.kv.put(key).value('n1').lease(session.leaseId);
      const own = await conn.kv.get(key).exec();
      const created = Number(own.kvs[0]?.create_revision);
      const adopted = await within(elect(), 3000, 'the key on its own lease taken up');
      assert.deepEqual(adopted, { leader: 'n1', revision: created });
      // it really leads in that term: the leader guard lets its writes through
      await writeAssignment(conn, session, REGION, adopted, { vm: 'vm-a', node: 'n1' });
      await elections[0]?.stop();
      assert.equal(await conn.kv.get(key).string(), null, 'resigning deletes the adopted key');

      // a key with this node's id on another lease (a previous process of the same node) is not
      // its term: the node waits until that lease expires, then wins a new term
      const other = await conn.client.leaseClient.leaseGrant({ TTL: TTL, ID: 0 });
      const putAt = performance.now();
      await conn.kv.put(key).value('n1').lease(String(other.ID));
      const stale = Number((await conn.kv.get(key).exec()).kvs[0]?.create_revision);
      const fresh = await within(elect(), TTL * 1000 + 3000, 'a new term after the other lease expired');
      const waited = performance.now() - putAt;
      t.diagnostic(
        `elected ${waited.toFixed(0)} ms after the key on another lease was written (TTL ${TTL} s)`,
      );
      assert.ok(fresh.revision > stale, `new term ${fresh.revision} after the stale key's ${stale}`);
      assert.ok(
        waited >= TTL * 1000 - 100,
        `elected after ${waited.toFixed(0)} ms: before the other lease expired`,
      );
    } finally {
      for (const e of elections) await e.stop();
      await session.close();
      conn.close();
    }
  });
});

describe('cluster on a 3-member etcd', { skip }, () => {
  let etcd: EtcdCluster;
  before(async () => {
    etcd = await EtcdCluster.start(3);
  });
  after(async () => {
    await etcd.stop();
  });

  test('one etcd member killed: sessions stay up, joins and elections go on', async () => {
    const prefix = uniquePrefix();
    // TTL 4 s: the fence window (TTL minus margin, 2.7 s) must cover an etcd leader election
    // (election timeout 500 ms) plus a retry on another endpoint; with TTL 2 it is 1 s, too tight.
    const ttl = 4;
    const a = await startNode(etcd.endpoints, prefix, 'a', true, ttl);
    const obsConn = connectEtcd({ endpoints: etcd.endpoints, prefix });
    const watch = await MemberWatch.start(obsConn);
    try {
      await etcd.kill(0);
      const joined = watch.waitFor((c) => c.type === 'join' && c.id === 'b');
      const b = await startNode(etcd.endpoints, prefix, 'b', true, ttl);
      await joined;
      // keepalives keep going through more than one TTL without the member
      const before = a.session.lastKeepaliveOkAt;
      await new Promise((r) => setTimeout(r, ttl * 1000 + 500));
      assert.ok(a.session.lastKeepaliveOkAt > before);
      assert.equal(a.fences.length, 0);
      assert.equal(b.fences.length, 0);
      assert.equal(a.session.state, 'ready');
      const view = await readClusterStatus(obsConn, REGION);
      assert.deepEqual(
        view.nodes.map((n) => `${n.id}:${n.status}`),
        ['a:ready', 'b:ready'],
      );
      assert.ok(view.leader === 'a' || view.leader === 'b');
      await etcd.restart(0);
      await stopNode(b);
    } finally {
      await watch.close();
      obsConn.close();
      await stopNode(a);
    }
  });

  test('a node partitioned from etcd fences before its lease expires, reports partitioned, and rejoins', async (t) => {
    const prefix = uniquePrefix();
    const target = new URL(etcd.endpoints[1] ?? '');
    const proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port) });
    const obsConn = connectEtcd({ endpoints: etcd.endpoints, prefix });
    const watch = await MemberWatch.start(obsConn);
    const leaders = await LeaderWatch.start(obsConn, REGION);
    const p = await startNode([proxy.url], prefix, 'p', true);
    await leaders.waitFor((l) => l === 'p');
    const q = await startNode(etcd.endpoints, prefix, 'q', true);
    try {
      let lastKnown = await readClusterStatus(p.conn, REGION, { id: 'p', session: p.session });
      assert.equal(lastKnown.leader, 'p');
      const leaveSeenAt: number[] = [];
      watch.onChange((c) => {
        if (c.type === 'leave' && c.id === 'p') leaveSeenAt.push(performance.now());
      });
      const fenced = new Promise<FenceEvent>((resolve) => p.session.onFence(resolve));
      const newLeader = leaders.waitFor((l) => l === 'q');
      proxy.pause();
      const pausedAt = performance.now();
      let newLeaderAt = 0;
      void newLeader.then(() => (newLeaderAt = performance.now()));
      const fence = await fenced;
      assert.ok(fence.at < fence.earliestExpiry, 'fenced before the earliest expiry');
      assert.equal(p.session.state, 'partitioned');
      assert.equal(p.election?.term, undefined, 'a fenced node does not lead');
      lastKnown = await readClusterStatus(p.conn, REGION, { id: 'p', session: p.session, lastKnown });
      assert.deepEqual(lastKnown.leader, null);
      assert.equal(lastKnown.nodes.find((n) => n.id === 'p')?.status, 'partitioned');
      await assert.rejects(
        writeAssignment(p.conn, p.session, REGION, { leader: 'p', revision: 1 }, { vm: 'x', node: 'q' }),
        UnavailableError,
      );
      // the rest of the region sees p leave (lease expiry) only after p fenced, then elects q
      await newLeader;
      await new Promise((r) => setImmediate(r));
      t.diagnostic(
        `leader partitioned to new leader observed: ${(newLeaderAt - pausedAt).toFixed(0)} ms (TTL ${TTL * 1000} ms)`,
      );
      assert.ok(newLeaderAt - pausedAt < 5000);
      assert.equal(leaveSeenAt.length, 1);
      assert.ok((leaveSeenAt[0] ?? 0) > fence.at);
      t.diagnostic(
        `fenced ${(fence.earliestExpiry - fence.at).toFixed(0)} ms before the earliest expiry; ` +
          `region saw the lease expire ${((leaveSeenAt[0] ?? 0) - fence.at).toFixed(0)} ms after the fence`,
      );

      const rejoined = watch.waitFor((c) => c.type === 'join' && c.id === 'p');
      const rejoinedLease = new Promise<string>((resolve) => p.session.onRejoin(resolve));
      proxy.heal();
      const lease = await rejoinedLease;
      assert.notEqual(lease, fence.leaseId);
      await rejoined;
      assert.equal(p.session.state, 'ready');
      const view = await readClusterStatus(p.conn, REGION, { id: 'p', session: p.session });
      assert.deepEqual(view, {
        leader: 'q',
        nodes: [
          { id: 'p', status: 'ready', address: info('p').addresses[0] },
          { id: 'q', status: 'ready', address: info('q').addresses[0] },
        ],
      });
      assert.deepEqual(checkTermHistory(leaders.history), []);
      assertNoOverlappingLeaders([p, q]);
    } finally {
      await stopNode(p);
      await stopNode(q);
      await leaders.close();
      await watch.close();
      obsConn.close();
      await proxy.close();
    }
  });
});
