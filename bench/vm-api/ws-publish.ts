// Micro-benchmark of /ws publishing (npx tsx bench/vm-api/ws-publish.ts [BURSTS] [PER_BURST]): a Fastify server with the /ws route and an EventBus, one
// subscriber in a child process; publishes BURSTS × PER_BURST vm.state-like events (PER_BURST in
// one event-loop turn, as a group commit does) and prints the server's CPU µs per event.
import { spawn } from 'node:child_process';
import Fastify from 'fastify';
import websocket from '@fastify/websocket';
import { EventBus } from '../../src/boot/events.js';
import { eventsWebSocketRoute } from '../../src/api/ws/events.js';

const BURSTS = Number(process.argv[2] ?? 200);
const PER_BURST = Number(process.argv[3] ?? 768);
const bus = new EventBus({ keepRecent: 0 });
const app = Fastify();
await app.register(websocket);
await app.register(async (s) => eventsWebSocketRoute(s, bus));
await app.listen({ port: 0, host: '127.0.0.1' });
const port = (app.server.address() as { port: number }).port;
const total = BURSTS * PER_BURST;
const client = spawn(
  process.execPath,
  [
    '-e',
    `const { WebSocket } = require('undici'); const ws = new WebSocket('ws://127.0.0.1:${port}/ws');
     let n = 0; ws.onopen = () => console.log('open');
     ws.onmessage = () => { if (++n === ${total}) { console.log('done'); process.exit(0); } };`,
  ],
  { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] },
);
let out = '';
const opened = new Promise<void>((r) =>
  client.stdout.on('data', (b: Buffer) => (out += b.toString()).includes('open') && r()),
);
await opened;
const done = new Promise<void>((r) => client.on('exit', () => r()));
const c0 = process.cpuUsage();
const t0 = performance.now();
for (let b = 0; b < BURSTS; b++) {
  for (let i = 0; i < PER_BURST; i++)
    bus.publish('vm.state', {
      id: `id-${b}-${i}`,
      name: `vm-${i}`,
      node: 'n1',
      from: 'starting',
      to: 'running',
      generation: 3,
    });
  await new Promise((r) => setImmediate(r));
}
await done;
const c = process.cpuUsage(c0);
console.log(
  `${total} events: ${((c.user + c.system) / total).toFixed(2)} µs server CPU per event, ${(performance.now() - t0).toFixed(0)} ms`,
);
await app.close();
