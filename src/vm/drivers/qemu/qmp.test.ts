import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import {
  ErrorCode,
  HypervisorError,
  NovaCronError,
  ProtocolError,
  UnavailableError,
} from '../../../errors.js';
import { MAX_QMP_LINE_BYTES, QmpClient, QmpParser, encodeQmpCommand, type QmpMessage } from './qmp.js';

const GREETING =
  '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"}, "capabilities": ["oob"]}}\r\n';
const EVENT = '{"timestamp": {"seconds": 1700000000, "microseconds": 5}, "event": "STOP"}\r\n';

test('parser: greeting, return, error, event', () => {
  const p = new QmpParser();
  const msgs = p.feed(
    Buffer.from(
      GREETING +
        '{"return": {}, "id": "nc-1"}\r\n' +
        EVENT +
        '{"id": "nc-2", "error": {"class": "GenericError", "desc": "no"}}\r\n' +
        '{"return": {"running": true, "status": "running"}, "id": 3}\r\n',
    ),
  );
  assert.deepEqual(
    msgs.map((m) => m.type),
    ['greeting', 'return', 'event', 'error', 'return'],
  );
  const [g, r, e, err, r2] = msgs as [QmpMessage, QmpMessage, QmpMessage, QmpMessage, QmpMessage];
  assert.ok(g.type === 'greeting' && g.version.qemu.major === 7 && g.capabilities[0] === 'oob');
  assert.ok(r.type === 'return' && r.id === 'nc-1');
  assert.ok(e.type === 'event' && e.name === 'STOP' && e.timestampUs === 1700000000 * 1e6 + 5);
  assert.ok(
    err.type === 'error' && err.errorClass === 'GenericError' && err.desc === 'no' && err.id === 'nc-2',
  );
  assert.ok(r2.type === 'return' && r2.id === '3');
});

test('parser: any split of the stream yields the same messages (including inside UTF-8)', () => {
  const wire = Buffer.from(GREETING + '{"return": {"name": "vm-ünï"}, "id": "nc-1"}\r\n' + EVENT + EVENT);
  const whole = new QmpParser().feed(wire);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: wire.length }), { maxLength: 12 }), (cuts) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const p = new QmpParser();
      const out: QmpMessage[] = [];
      let prev = 0;
      for (const c of [...points, wire.length]) {
        out.push(...p.feed(wire.subarray(prev, c)));
        prev = c;
      }
      assert.deepEqual(out, whole);
    }),
  );
  // Byte by byte too.
  const p = new QmpParser();
  const out: QmpMessage[] = [];
  for (const b of wire) out.push(...p.feed(Buffer.from([b])));
  assert.deepEqual(out, whole);
});

test('parser: bad inputs each throw ProtocolError', () => {
  const bad = [
    'not json\r\n',
    '[1,2]\r\n',
    '"str"\r\n',
    '{"unknown": 1}\r\n',
    '{"QMP": {"version": 1}}\r\n',
    '{"error": {"class": 1}}\r\n',
    '{"event": 5}\r\n',
    '{"return": {}, "id": {"x": 1}}\r\n',
  ];
  for (const line of bad) assert.throws(() => new QmpParser().feed(Buffer.from(line)), ProtocolError, line);
  const p = new QmpParser();
  assert.throws(() => p.feed(Buffer.alloc(MAX_QMP_LINE_BYTES + 1, 0x20)), ProtocolError);
});

test('encodeQmpCommand', () => {
  assert.equal(encodeQmpCommand('stop', undefined, 'nc-1'), '{"execute":"stop","id":"nc-1"}\r\n');
  assert.equal(
    encodeQmpCommand('migrate', { uri: 'unix:/x' }, 'nc-2'),
    '{"execute":"migrate","arguments":{"uri":"unix:/x"},"id":"nc-2"}\r\n',
  );
});

// A fake QMP peer on a unix socket: a test double for the client's protocol handling, not for QEMU.
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'novacron-qmp-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Peer = { server: Server; path: string; received: Record<string, unknown>[]; sockets: Socket[] };

/** Starts a peer; `onCommand` answers each command (return raw lines to write, split as given). */
async function fakePeer(
  name: string,
  onCommand: (cmd: Record<string, unknown>, sock: Socket) => string[] | undefined,
  greeting: string[] = [GREETING],
): Promise<Peer> {
  const path = join(dir, `${name}.sock`);
  const received: Record<string, unknown>[] = [];
  const sockets: Socket[] = [];
  const server = createServer((sock) => {
    sockets.push(sock);
    for (const g of greeting) sock.write(g);
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const cmd = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        received.push(cmd);
        const out =
          cmd['execute'] === 'qmp_capabilities'
            ? [`{"return": {}, "id": ${JSON.stringify(cmd['id'])}}\r\n`]
            : onCommand(cmd, sock);
        for (const piece of out ?? []) sock.write(piece);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { server, path, received, sockets };
}

async function closePeer(p: Peer): Promise<void> {
  for (const s of p.sockets) s.destroy();
  await new Promise<void>((r) => p.server.close(() => r()));
}

test('client: negotiates capabilities, matches replies by id, delivers interleaved events', async () => {
  const peer = await fakePeer('basic', (cmd) => {
    const id = JSON.stringify(cmd['id']);
    if (cmd['execute'] === 'query-status') {
      // An event, then the reply split across writes, then an event glued to the reply's tail.
      const reply = `{"return": {"running": false, "status": "paused"}, "id": ${id}}\r\n`;
      return [EVENT, reply.slice(0, 10), reply.slice(10) + EVENT.slice(0, 7), EVENT.slice(7)];
    }
    if (cmd['execute'] === 'stop') return [`{"return": {}, "id": ${id}}\r\n`];
    return [
      `{"error": {"class": "CommandNotFound", "desc": "The command ${String(cmd['execute'])} has not been found"}, "id": ${id}}\r\n`,
    ];
  });
  const client = await QmpClient.connect(peer.path);
  assert.equal(client.greeting.version.qemu.minor, 2);
  const events: string[] = [];
  client.onEvent((e) => events.push(e.name));
  const [status] = await Promise.all([client.queryStatus(), client.stop()]);
  assert.deepEqual(status, { running: false, status: 'paused' });
  assert.deepEqual(events, ['STOP', 'STOP']);
  await assert.rejects(
    client.execute('nope'),
    (e: unknown) => e instanceof HypervisorError && e.qmpClass === 'CommandNotFound',
  );
  assert.deepEqual(
    peer.received.map((c) => c['execute']),
    ['qmp_capabilities', 'query-status', 'stop', 'nope'],
  );
  const ids = peer.received.map((c) => c['id']);
  assert.equal(new Set(ids).size, ids.length, 'ids are unique');
  client.close();
  await closePeer(peer);
});

test('client: arguments are sent; migration helpers build the right commands', async () => {
  const peer = await fakePeer('migrate', (cmd) => [`{"return": {}, "id": ${JSON.stringify(cmd['id'])}}\r\n`]);
  const client = await QmpClient.connect(peer.path);
  await client.migrateSetCapabilities({ events: true, 'auto-converge': false });
  await client.migrateSetParameters({ 'downtime-limit': 300 });
  await client.migrateIncoming('unix:/tmp/in.sock');
  await client.migrate('unix:/tmp/in.sock');
  await client.migrateCancel();
  const sent = peer.received.slice(1).map((c) => [c['execute'], c['arguments']]);
  assert.deepEqual(sent, [
    [
      'migrate-set-capabilities',
      {
        capabilities: [
          { capability: 'events', state: true },
          { capability: 'auto-converge', state: false },
        ],
      },
    ],
    ['migrate-set-parameters', { 'downtime-limit': 300 }],
    ['migrate-incoming', { uri: 'unix:/tmp/in.sock' }],
    ['migrate', { uri: 'unix:/tmp/in.sock' }],
    ['migrate_cancel', undefined],
  ]);
  client.close();
  await closePeer(peer);
});

test('client: waitForEvent resolves on a matching event', async () => {
  const peer = await fakePeer('events', (cmd, sock) => {
    setImmediate(() => {
      sock.write(
        '{"event": "MIGRATION", "data": {"status": "active"}, "timestamp": {"seconds": 1, "microseconds": 0}}\r\n',
      );
      sock.write(
        '{"event": "MIGRATION", "data": {"status": "completed"}, "timestamp": {"seconds": 2, "microseconds": 0}}\r\n',
      );
    });
    return [`{"return": {}, "id": ${JSON.stringify(cmd['id'])}}\r\n`];
  });
  const client = await QmpClient.connect(peer.path);
  const done = client.waitForEvent('MIGRATION', {
    timeoutMs: 5000,
    predicate: (e) => (e.data as { status?: string }).status === 'completed',
  });
  await client.migrate('unix:/x');
  assert.equal(((await done).data as { status: string }).status, 'completed');
  client.close();
  await closePeer(peer);
});

test('client: a command timeout is DeadlineExceeded and a late reply is ignored', async () => {
  let lateId = '';
  const peer = await fakePeer('slow', (cmd) => {
    lateId = String(cmd['id']);
    return undefined;
  });
  const client = await QmpClient.connect(peer.path);
  await assert.rejects(
    client.execute('query-status', undefined, { timeoutMs: 50 }),
    (e: unknown) => e instanceof NovaCronError && e.code === ErrorCode.DeadlineExceeded,
  );
  peer.sockets[0]?.write(`{"return": {}, "id": "${lateId}"}\r\n`);
  assert.equal(client.isClosed, false);
  client.close();
  await closePeer(peer);
});

test('client: the peer closing rejects pending commands with UnavailableError and resolves closed', async () => {
  const peer = await fakePeer('closing', (_cmd, sock) => {
    setImmediate(() => sock.destroy());
    return undefined;
  });
  const client = await QmpClient.connect(peer.path);
  await assert.rejects(client.execute('quit'), UnavailableError);
  assert.match(await client.closed, /closed/);
  await assert.rejects(client.queryStatus(), UnavailableError);
  await client.quit(); // quit treats a closed connection as done
  await closePeer(peer);
});

test('client: connect failures', async () => {
  await assert.rejects(QmpClient.connect(join(dir, 'missing.sock')), UnavailableError);
  const silent = await fakePeer('silent', () => undefined, []);
  await assert.rejects(
    QmpClient.connect(silent.path, { timeoutMs: 50 }),
    (e: unknown) => e instanceof NovaCronError && e.code === ErrorCode.DeadlineExceeded,
  );
  await closePeer(silent);
  const wrong = await fakePeer('wrong', () => undefined, ['{"return": {}}\r\n']);
  await assert.rejects(QmpClient.connect(wrong.path), ProtocolError);
  await closePeer(wrong);
  // Greeting split in two writes still works.
  const split = await fakePeer('split', () => undefined, [GREETING.slice(0, 20), GREETING.slice(20)]);
  const c = await QmpClient.connect(split.path);
  c.close();
  await closePeer(split);
});

test('client: a protocol error from the peer closes the session', async () => {
  const peer = await fakePeer('garbage', () => ['this is not json\r\n']);
  const client = await QmpClient.connect(peer.path);
  await assert.rejects(client.queryStatus(), UnavailableError);
  assert.match(await client.closed, /protocol error/);
  await closePeer(peer);
});
