// Test harness: a TCP proxy on loopback that the test can pause (hold bytes), cut (drop connections) and heal.
import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';

type Mode = 'open' | 'paused' | 'cut';

interface Pair {
  readonly client: Socket;
  upstream: Socket | undefined;
  readonly toUp: Buffer[];
  readonly toClient: Buffer[];
}

/**
 * Forwards 127.0.0.1:<port> to `target`. `pause()`: connections stay open but no byte passes
 * either way (a silent partition: calls hang until their deadline). `cut()`: every connection is
 * reset and new ones are closed at once. `heal()`: back to forwarding (held bytes are flushed).
 */
export class TcpProxy {
  private mode: Mode = 'open';
  private readonly pairs = new Set<Pair>();
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const holder: { proxy?: TcpProxy } = {};
    const server = createServer((client) => holder.proxy?.accept(client, target));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    const proxy = new TcpProxy(server, port);
    holder.proxy = proxy;
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  pause(): void {
    this.mode = 'paused';
  }

  cut(): void {
    this.mode = 'cut';
    for (const p of this.pairs) this.drop(p);
  }

  heal(): void {
    this.mode = 'open';
    for (const p of this.pairs) this.flush(p);
  }

  async close(): Promise<void> {
    for (const p of this.pairs) this.drop(p);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket, target: { host: string; port: number }): void {
    this.sockets.add(client);
    client.once('close', () => this.sockets.delete(client));
    if (this.mode === 'cut') {
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { client, upstream: undefined, toUp: [], toClient: [] };
    this.pairs.add(pair);
    const upstream = connect(target.port, target.host);
    this.sockets.add(upstream);
    upstream.once('close', () => this.sockets.delete(upstream));
    pair.upstream = upstream;
    client.on('data', (d: Buffer) => {
      pair.toUp.push(d);
      this.flush(pair);
    });
    upstream.on('data', (d: Buffer) => {
      pair.toClient.push(d);
      this.flush(pair);
    });
    const end = (): void => this.drop(pair);
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  }

  private flush(p: Pair): void {
    if (this.mode !== 'open') return;
    for (const d of p.toUp.splice(0)) p.upstream?.write(d);
    for (const d of p.toClient.splice(0)) p.client.write(d);
  }

  private drop(p: Pair): void {
    if (!this.pairs.delete(p)) return;
    p.client.resetAndDestroy();
    p.upstream?.resetAndDestroy();
  }
}
