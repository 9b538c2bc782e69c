// WebSocket /ws against a real node: refused without a valid token (401 on the upgrade), accepted
// with the Authorization header or ?token=, replays the recent events (the boot) and streams new ones.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import WebSocket from 'ws';
import type { NovaCronEvent } from '../../src/boot/events.js';
import { startTestNode, type TestNode } from './node-harness.js';

let n: TestNode;
let wsUrl: string;

before(async () => {
  n = await startTestNode();
  wsUrl = n.url.replace(/^http/, 'ws') + '/ws';
});

after(async () => {
  await n?.stop();
});

/** Resolves with the HTTP status the upgrade was refused with. */
async function refusedStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  const ws = new WebSocket(url, { headers });
  ws.on('error', () => undefined);
  const [, res] = (await once(ws, 'unexpected-response')) as [
    unknown,
    { statusCode: number; resume(): void },
  ];
  res.resume();
  ws.terminate();
  return res.statusCode;
}

/** Opens a socket and collects messages until `until` matches one (or rejects on close/timeout). */
function collect(ws: WebSocket, until: (e: NovaCronEvent) => boolean): Promise<NovaCronEvent[]> {
  const got: NovaCronEvent[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no matching event; got ${got.map((e) => e.type).join(',')}`)),
      10_000,
    );
    const onMessage = (data: WebSocket.RawData) => {
      const e = JSON.parse(String(data)) as NovaCronEvent;
      got.push(e);
      if (until(e)) {
        clearTimeout(timer);
        ws.off('message', onMessage);
        resolve(got);
      }
    };
    ws.on('message', onMessage);
    ws.once('close', () => reject(new Error('closed')));
  });
}

test('/ws without a token, with a bad one or with a forged query token: 401 on the upgrade', async () => {
  assert.equal(await refusedStatus(wsUrl), 401);
  assert.equal(await refusedStatus(wsUrl, { authorization: 'Bearer nope' }), 401);
  assert.equal(await refusedStatus(`${wsUrl}?token=${n.adminToken}x`), 401);
});

test('/ws with the header token replays the boot (boot.component, node.ready) and streams live events', async () => {
  const ws = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${n.adminToken}` } });
  const replay = collect(ws, (e) => e.type === 'node.ready');
  await once(ws, 'open');
  const events = await replay;
  const boot = events.filter((e) => e.type === 'boot.component');
  assert.ok(
    boot.some((e) => e.data.name === 'api' && e.data.status === 'up'),
    'api up in the replay',
  );
  assert.ok(
    boot.some((e) => e.data.name === 'security'),
    'security in the replay',
  );
  for (const e of events) assert.match(e.at, /^\d{4}-\d\d-\d\dT/);
  const live = collect(ws, (e) => e.type === 'test.live');
  n.node.events.publish('test.live', { n: 1 });
  const [last] = (await live).slice(-1);
  assert.deepEqual(last?.data, { n: 1 });
  ws.close();
});

test('/ws with ?token= (browsers) and a type filter keeps only matching events', async () => {
  const ws = new WebSocket(`${wsUrl}?token=${encodeURIComponent(n.adminToken)}&types=test.filtered`);
  const got = collect(ws, (e) => e.type === 'test.filtered.b');
  await once(ws, 'open');
  n.node.events.publish('test.other', {});
  n.node.events.publish('test.filtered.a', {});
  n.node.events.publish('test.filtered.b', {});
  assert.deepEqual(
    (await got).map((e) => e.type),
    ['test.filtered.a', 'test.filtered.b'],
  );
  ws.close();
});

test('component.status events reach /ws when a component changes health', async () => {
  const ws = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${n.adminToken}` } });
  const got = collect(ws, (e) => e.type === 'component.status' && e.data.name === 'api');
  await once(ws, 'open');
  const events = await got;
  const last = events[events.length - 1];
  assert.equal(last?.data.status, 'up', JSON.stringify(last));
  ws.close();
});
