// VM operations forwarded to the node that runs the VM: two real `novacron start` nodes (sim driver)
// on a private etcd and one shared PostgreSQL database, sharing `security.jwt_secret`. A stop, start,
// restart and delete sent to the node that does NOT run the VM are carried out by the one that does
// (its answer relayed, marked x-novacron-served-by); a request already forwarded is not forwarded again.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../helpers/cli.js';
import { etcdAvailable } from './etcd-harness.js';
import { Region } from './region-harness.js';

const skip = etcdAvailable() ? false : 'etcd not installed (Debian package etcd-server)';
if (skip && process.env['CI']) throw new Error(`CI requires etcd for test/cluster: ${skip}`);

describe('VM operations are forwarded to the node that runs the VM', { skip }, () => {
  let region: Region;

  before(async () => {
    region = await Region.start({
      etcdMembers: 1,
      nodes: ['f1', 'f2'],
      settings: { 'security.jwt_secret': 'forwarding-test-secret-0123456789abcdefghij' },
    });
  });

  after(async () => {
    await region?.close();
  });

  const call = async (
    via: string,
    method: string,
    path: string,
    body?: unknown,
    extra: Record<string, string> = {},
  ) => {
    const n = region.node(via);
    const res = await fetch(`${n.url}${path}`, {
      method,
      headers: {
        ...n.auth(),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...extra,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return {
      status: res.status,
      servedBy: res.headers.get('x-novacron-served-by'),
      json: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    };
  };

  test('stop, start, restart and delete through the other node', async () => {
    const created = await region.createVm('f1', 'fwd-1');
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const rows = await region.until(
      'fwd-1 running',
      () => region.rows(),
      (r) => r.some((x) => x.name === 'fwd-1' && x.state === 'running'),
    );
    const owner = rows.find((x) => x.name === 'fwd-1')!.node!;
    const other = owner === 'f1' ? 'f2' : 'f1';

    const stopped = await call(other, 'POST', '/api/v1/vms/fwd-1/stop', { force: true });
    assert.equal(stopped.status, 200, JSON.stringify(stopped.json));
    assert.equal(stopped.servedBy, owner);
    assert.equal(stopped.json['state'], 'stopped');
    assert.equal((await region.rows()).find((x) => x.name === 'fwd-1')?.state, 'stopped');

    const started = await call(other, 'POST', '/api/v1/vms/fwd-1/start');
    assert.equal(started.status, 200, JSON.stringify(started.json));
    assert.equal(started.servedBy, owner);
    const view = await region.getJson<{ vms: string[] }>(owner, '/api/v1/cluster/self/vms');
    assert.ok(view.vms.includes(created.body.id), 'the owner runs it again');

    const restarted = await call(other, 'POST', '/api/v1/vms/fwd-1/restart');
    assert.equal(restarted.status, 200, JSON.stringify(restarted.json));
    assert.equal(restarted.servedBy, owner);

    // A request marked as forwarded already is refused with the owner's address, not sent on.
    const loop = await call(other, 'POST', '/api/v1/vms/fwd-1/stop', undefined, {
      'x-novacron-forwarded-by': 'fx',
    });
    assert.equal(loop.status, 409, JSON.stringify(loop.json));
    assert.match(JSON.stringify(loop.json), new RegExp(`runs on node ${owner} .*not forwarded twice`));

    // A bad body is refused where it arrived, before anything is forwarded.
    const bad = await call(other, 'POST', '/api/v1/vms/fwd-1/stop', { force: 'yes' });
    assert.equal(bad.status, 400, JSON.stringify(bad.json));
    assert.equal(bad.servedBy, null);

    const deleted = await call(other, 'DELETE', '/api/v1/vms/fwd-1');
    assert.equal(deleted.status, 204);
    assert.equal(deleted.servedBy, owner);
    await region.until(
      'fwd-1 gone',
      () => region.rows(),
      (r) => !r.some((x) => x.name === 'fwd-1'),
    );
  });

  test('node drain and uncordon of another member, through the node at --url', async () => {
    const created = await region.createVm('f1', 'fwd-drain');
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const rows = await region.until(
      'fwd-drain running',
      () => region.rows(),
      (r) => r.some((x) => x.name === 'fwd-drain' && x.state === 'running'),
    );
    const owner = rows.find((x) => x.name === 'fwd-drain')!.node!;
    const via = region.node(owner === 'f1' ? 'f2' : 'f1');
    const drain = runCli(['node', 'drain', owner, '--url', via.url, '--data-dir', via.dataDir, '-o', 'json']);
    assert.equal(await drain.exited, 0, drain.output());
    const out = JSON.parse(drain.output()) as {
      self: string;
      drain: { method: string; moving: number };
      left: number;
    };
    assert.equal(out.self, owner, "the answer is the drained member's own");
    assert.deepEqual(out.drain, { method: 'stop-and-restart', moving: 1 });
    assert.equal(out.left, 0);
    await region.until(
      'fwd-drain running on the other node',
      () => region.rows(),
      (r) => r.some((x) => x.name === 'fwd-drain' && x.state === 'running' && x.node !== owner),
    );
    const view = await region.getJson<{ nodes: { id: string; status: string }[] }>(via.id, '/api/v1/cluster');
    assert.equal(view.nodes.find((n) => n.id === owner)?.status, 'draining');
    const un = runCli(['node', 'uncordon', owner, '--url', via.url, '--data-dir', via.dataDir]);
    assert.equal(await un.exited, 0, un.output());
    await region.until(
      `${owner} ready again`,
      () => region.getJson<{ nodes: { id: string; status: string }[] }>(via.id, '/api/v1/cluster'),
      (v) => v.nodes.find((n) => n.id === owner)?.status === 'ready',
    );
    // an unknown member is a 404 naming it
    const res = await fetch(`${via.url}/api/v1/cluster/nodes/nope/drain`, {
      method: 'POST',
      headers: via.auth(),
    });
    assert.equal(res.status, 404);
    assert.match(await res.text(), /nope/);
  });
});
