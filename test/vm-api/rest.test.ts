// VM REST API against a real node with the sim driver: create/get/list/patch/stop/start/restart/
// delete/console, validation errors naming the field, 409 on exhaustion with its message format,
// idempotency keys, resource accounting, audit events and vm.state on the EventBus.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import type { NovaCronEvent } from '../../src/boot/events.js';
import { startTestNode, type TestNode } from '../api/node-harness.js';

let n: TestNode;
const busEvents: NovaCronEvent[] = [];

before(async () => {
  n = await startTestNode({
    set: {
      'vm.driver': 'sim',
      'node.capacity.cpus': 8,
      'node.capacity.memory_mib': 8192,
      'node.capacity.disk_gib': 10,
    },
  });
  n.node.events.subscribe((e) => {
    if (e.type.startsWith('vm.')) busEvents.push(e);
  });
});

after(async () => {
  await n?.stop();
});

interface Vm {
  id: string;
  name: string;
  node: string;
  state: string;
  labels: Record<string, string>;
  generation: number;
}

async function call(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are asserted field by field
): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(`${n.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${n.adminToken}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null, headers: res.headers };
}

async function usage(): Promise<{ cpus: number; memoryMib: number; allocations: number }> {
  const store = n.node.services.store!;
  return store.allocations.usage(n.node.services.vms ? 'novacron-node-1' : '');
}

test('health names the sim driver and says simulated', async () => {
  const res = await fetch(`${n.url}/health/ready`);
  const text = await res.text();
  assert.match(text, /driver sim \(simulated/);
});

test('create → running, get by id and by name, audit events and vm.state on the bus', async () => {
  const before = busEvents.length;
  const r = await call('POST', '/api/v1/vms', {
    name: 'web-1',
    cpus: 2,
    memoryMib: 1024,
    labels: { app: 'web' },
  });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  const vm = r.json as Vm;
  assert.equal(vm.name, 'web-1');
  assert.equal(vm.node, 'novacron-node-1');
  assert.equal(vm.state, 'running');
  assert.match(vm.id, /^[0-9a-f-]{36}$/);
  assert.deepEqual((await call('GET', `/api/v1/vms/${vm.id}`)).json.name, 'web-1');
  assert.deepEqual((await call('GET', '/api/v1/vms/web-1')).json.id, vm.id);
  const states = busEvents.slice(before).filter((e) => e.type === 'vm.state' && e.data['id'] === vm.id);
  assert.deepEqual(
    states.map((e) => `${String(e.data['from'])}>${String(e.data['to'])}`),
    ['pending>scheduled', 'scheduled>starting', 'starting>running'],
  );
  const audit = await n.node.services.store!.events.list({ resourceId: vm.id });
  assert.deepEqual(
    audit.map((e) => e.data['to']),
    ['scheduled', 'starting', 'running'],
  );
  const gens = states.map((e) => Number(e.data['generation']));
  assert.deepEqual(gens, [1, 2, 3]);
  assert.deepEqual(await usage(), { cpus: 2, memoryMib: 1024, diskMib: 0, allocations: 1 });
});

test('validation errors are 400 and name the field', async () => {
  const cases: [unknown, RegExp][] = [
    [{ name: 'x', cpus: 0, memoryMib: 64 }, /cpus/],
    [{ name: 'x', cpus: 1, memoryMib: -5 }, /memoryMib/],
    [{ cpus: 1, memoryMib: 64 }, /name/],
    [{ name: 'Bad Name!', cpus: 1, memoryMib: 64 }, /name/],
    [{ name: 'x', cpus: 1, memoryMib: 64, restartPolicy: 'sometimes' }, /restartPolicy/],
    [{ name: 'x', cpus: 1, memoryMib: 64, bogus: 1 }, /bogus|additional/],
  ];
  for (const [body, field] of cases) {
    const r = await call('POST', '/api/v1/vms', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.json.error.code, 'validation');
    assert.match(JSON.stringify(r.json.error), field);
  }
});

test('a duplicate name is 409', async () => {
  const r = await call('POST', '/api/v1/vms', { name: 'web-1', cpus: 1, memoryMib: 64 });
  assert.equal(r.status, 409);
  assert.match(r.json.error.message, /web-1/);
  assert.equal(r.json.error.retryable, undefined, 'a taken name stays taken: not retryable');
});

test('a create that does not fit is 409 with "resource exhausted: <what> (requested X, free Y)"', async () => {
  const cpu = await call('POST', '/api/v1/vms', { name: 'big-cpu', cpus: 7, memoryMib: 64 });
  assert.equal(cpu.status, 409);
  assert.equal(cpu.json.error.code, 'resource_exhausted');
  assert.match(cpu.json.error.message, /^resource exhausted: cpus \(requested 7, free 6\)/);
  assert.equal(cpu.json.error.retryable, true, 'the node may have room later');
  const mem = await call('POST', '/api/v1/vms', { name: 'big-mem', cpus: 1, memoryMib: 8000 });
  assert.equal(mem.status, 409);
  assert.match(mem.json.error.message, /^resource exhausted: memory_mib \(requested 8000, free 7168\)/);
  assert.equal((await call('GET', '/api/v1/vms/big-cpu')).status, 404);
});

test('idempotency: same key and body returns the same VM, a different body is 409', async () => {
  const body = { name: 'idem-1', cpus: 1, memoryMib: 128 };
  const a = await call('POST', '/api/v1/vms', body, { 'idempotency-key': 'k-1' });
  assert.equal(a.status, 201);
  const b = await call(
    'POST',
    '/api/v1/vms',
    { memoryMib: 128, cpus: 1, name: 'idem-1' },
    { 'idempotency-key': 'k-1' },
  );
  assert.equal(b.status, 201);
  assert.equal(b.json.id, a.json.id);
  assert.equal(b.headers.get('idempotent-replayed'), 'true');
  const c = await call('POST', '/api/v1/vms', { ...body, cpus: 2 }, { 'idempotency-key': 'k-1' });
  assert.equal(c.status, 409);
  assert.match(c.json.error.message, /idempotency key k-1/);
  const list = await call('GET', '/api/v1/vms?name=idem-');
  assert.equal(list.json.items.length, 1);
});

test('list filters (state, labels, name prefix) and cursor pagination', async () => {
  for (let i = 0; i < 5; i++) {
    const r = await call('POST', '/api/v1/vms', {
      name: `page-${i}`,
      cpus: 0 + 1,
      memoryMib: 16,
      labels: { tier: i % 2 ? 'odd' : 'even' },
    });
    assert.equal(r.status, 201);
  }
  const seen: string[] = [];
  let next: string | null = null;
  do {
    const r = await call(
      'GET',
      `/api/v1/vms?name=page-&limit=2${next ? `&cursor=${encodeURIComponent(next)}` : ''}`,
    );
    assert.equal(r.status, 200);
    seen.push(...r.json.items.map((v: Vm) => v.name));
    next = r.json.next;
  } while (next);
  assert.deepEqual(seen, ['page-0', 'page-1', 'page-2', 'page-3', 'page-4']);
  const odd = await call('GET', '/api/v1/vms?labels=tier%3Dodd');
  assert.deepEqual(
    odd.json.items.map((v: Vm) => v.name),
    ['page-1', 'page-3'],
  );
  const running = await call('GET', '/api/v1/vms?state=running&name=page-');
  assert.equal(running.json.items.length, 5);
  assert.equal((await call('GET', '/api/v1/vms?state=stopped&name=page-')).json.items.length, 0);
  assert.equal((await call('GET', '/api/v1/vms?state=nonsense')).status, 400);
});

test('patch labels, stop, start, restart, illegal operation is 409 naming the VM and state', async () => {
  const p = await call('PATCH', '/api/v1/vms/web-1', { labels: { env: 'prod', app: null } });
  assert.equal(p.status, 200);
  assert.deepEqual(p.json.labels, { env: 'prod' });
  const s = await call('POST', '/api/v1/vms/web-1/stop', {});
  assert.equal(s.status, 200);
  assert.equal(s.json.state, 'stopped');
  const again = await call('POST', '/api/v1/vms/web-1/stop', {});
  assert.equal(again.status, 409);
  assert.equal(again.json.error.code, 'invalid_state');
  assert.match(again.json.error.message, /vm web-1: cannot stop while stopped/);
  const st = await call('POST', '/api/v1/vms/web-1/start');
  assert.equal(st.json.state, 'running');
  const rs = await call('POST', '/api/v1/vms/web-1/restart');
  assert.equal(rs.status, 200);
  assert.equal(rs.json.state, 'running');
  const audit = await n.node.services.store!.events.list({ resourceId: rs.json.id }, { limit: 1000 });
  assert.ok(
    audit.some((e) => e.data['rescheduled'] === true),
    'restart went through the scheduler',
  );
  const c = await call('GET', '/api/v1/vms/web-1/console');
  assert.equal(c.status, 200);
  assert.equal(c.json.simulated, true);
});

test('delete frees resources at once; allocations equal the sum of live VMs', async () => {
  const list = await call('GET', '/api/v1/vms?limit=1000');
  for (const vm of list.json.items as Vm[]) {
    const d = await call('DELETE', `/api/v1/vms/${vm.id}`);
    assert.equal(d.status, 204);
  }
  assert.equal((await call('GET', '/api/v1/vms')).json.items.length, 0);
  const u = await usage();
  assert.equal(u.allocations, 0);
  assert.equal(u.cpus, 0);
  assert.equal((await call('DELETE', '/api/v1/vms/nope')).status, 404);
  const del = busEvents.filter((e) => e.type === 'vm.state' && e.data['to'] === 'deleted');
  assert.equal(del.length, list.json.items.length);
});

test('/ws streams vm.state events of a create', async () => {
  const ws = new WebSocket(`${n.url.replace('http', 'ws')}/ws?types=vm.`, {
    headers: { authorization: `Bearer ${n.adminToken}` },
  });
  const seen: { type: string; data: { name?: string; to?: string } }[] = [];
  const running = new Promise<void>((resolve) => {
    ws.on('message', (raw: Buffer) => {
      const e = JSON.parse(raw.toString('utf8')) as { type: string; data: { name?: string; to?: string } };
      seen.push(e);
      if (e.data.name === 'ws-1' && e.data.to === 'running') resolve();
    });
  });
  await new Promise((resolve) => ws.once('open', resolve));
  const r = await call('POST', '/api/v1/vms', { name: 'ws-1', cpus: 1, memoryMib: 16 });
  assert.equal(r.status, 201);
  await running;
  ws.close();
  assert.ok(seen.every((e) => e.type.startsWith('vm.')));
  assert.deepEqual(
    seen.filter((e) => e.data.name === 'ws-1').map((e) => e.data.to),
    ['scheduled', 'starting', 'running'],
  );
  assert.equal((await call('DELETE', '/api/v1/vms/ws-1')).status, 204);
});
