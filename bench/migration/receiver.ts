// Destination end of the NovaCron variant of bench/migration, run inside the link's namespace B:
// a DWCP (AMST) receiver whose one stream is piped into the destination QEMU's migrate-incoming
// unix socket. Prints "ready <port>" once listening; exits when the stream ended.
import { createConnection } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { streamReceiver } from '../../src/dwcp/stream.js';
import { AmstServer } from '../../src/dwcp/transport/server.js';

const [host, socketPath, token] = process.argv.slice(2);
if (!host || !socketPath || !token) throw new Error('usage: receiver.ts HOST SOCKET TOKEN');
let done!: () => void;
const finished = new Promise<void>((r) => (done = r));
const server = await AmstServer.listen({
  host,
  port: 0,
  security: { token, encrypt: true },
  // As the node's migration receiver: ack each bundle at once (a stream has nothing to fsync).
  syncDelayMs: 1,
  onSession: streamReceiver((stream) => {
    pipeline(stream, createConnection(socketPath)).then(done, (err: unknown) => {
      console.error(`receiver: ${String(err)}`);
      done();
    });
  }),
});
console.log(`ready ${server.address.port}`);
await finished;
await server.close(500);
process.exit(0);
