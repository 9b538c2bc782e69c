// Test fixtures for the cache: a throwaway redis-server on a free port that a test may kill and
// restart, and a TCP proxy that a test can cut and heal (a network partition: Redis keeps its data).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { freePort } from '../store/fixtures.js';

export function redisServerBinary(): string | undefined {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? 'redis-server' : undefined;
}

export class ThrowawayRedis {
  readonly port: number;
  #proc: ChildProcess | undefined;

  private constructor(port: number) {
    this.port = port;
  }

  static async create(): Promise<ThrowawayRedis> {
    return ThrowawayRedis.onPort(await freePort());
  }

  /** Starts one on a given port (e.g. one a cache was already told to use). */
  static async onPort(port: number): Promise<ThrowawayRedis> {
    const r = new ThrowawayRedis(port);
    await r.start();
    return r;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts redis-server and resolves once it accepts connections. */
  async start(): Promise<void> {
    const proc = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'no',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#proc = proc;
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (b: Buffer) => {
        out += b.toString();
        if (out.includes('Ready to accept connections')) {
          proc.stdout?.off('data', onData);
          proc.stdout?.resume();
          resolve();
        }
      };
      proc.stdout?.on('data', onData);
      proc.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
    });
  }

  /** SIGSTOP / SIGCONT: a hung server whose connections stay open. */
  pause(): void {
    this.#proc?.kill('SIGSTOP');
  }

  resume(): void {
    this.#proc?.kill('SIGCONT');
  }

  /** SIGKILL, and wait for the process to be gone. */
  async kill(): Promise<void> {
    const p = this.#proc;
    this.#proc = undefined;
    if (p === undefined || p.exitCode !== null) return;
    const exited = once(p, 'exit');
    p.kill('SIGKILL');
    p.kill('SIGCONT');
    await exited;
  }
}

/** Forwards 127.0.0.1:<port> to a target; `cut()` drops every connection and refuses new ones. */
export class TcpProxy {
  readonly port: number;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #cut = false;

  private constructor(server: Server, port: number) {
    this.#server = server;
    this.port = port;
  }

  static async create(targetPort: number): Promise<TcpProxy> {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const a = server.address();
    const proxy = new TcpProxy(server, typeof a === 'object' && a !== null ? a.port : 0);
    server.on('connection', (client) => proxy.#accept(client, targetPort));
    return proxy;
  }

  #accept(client: Socket, targetPort: number): void {
    if (this.#cut) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  cut(): void {
    this.#cut = true;
    for (const s of this.#sockets) s.destroy();
  }

  heal(): void {
    this.#cut = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
