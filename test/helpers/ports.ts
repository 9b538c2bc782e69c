// Free loopback ports for tests that start real servers.
import { createServer } from 'node:net';

/**
 * Ports are drawn below the kernel's ephemeral range (32768–60999 by default): a port the kernel
 * handed out with listen(0) and that was released again may be taken at once as the local port of
 * an outgoing connection (etcd peers, PostgreSQL clients …) before the server the test starts can
 * bind it ("address already in use", seen in CI). Below that range only servers that choose
 * their port compete, and each candidate is checked by binding it.
 */
const LOW = 20_000;
const HIGH = 32_000;

function tryListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A TCP port that was free on 127.0.0.1 a moment ago, outside the ephemeral range. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (await tryListen(port)) return port;
  }
  throw new Error(`freePort: no free port on 127.0.0.1 between ${LOW} and ${HIGH} after 200 tries`);
}
