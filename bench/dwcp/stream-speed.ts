// Throughput of the DWCP byte stream (the path live migration uses: openStreamSender → AMST →
// streamReceiver) on loopback, where the CPU and not the link is the limit, against one plain TCP
// stream in the same run. Data: memory-like 4 KiB pages (by default 50 % zero, 25 % text-like, 25 %
// random; or a file, e.g. a RAM image from capture-guest-ram.sh), written in 64 KiB pieces as a
// migration socket delivers them. Migration settings: 2 streams, zstd 1, 2 MiB window, encryption on.
//
//   node --import tsx bench/dwcp/stream-speed.ts [--mib 128] [--file PATH] [--codec zstd:1] [--runs 3]
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { cpuUsage } from 'node:process';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { AmstServer } from '../../src/dwcp/transport/server.js';
import { openStreamSender, streamReceiver } from '../../src/dwcp/stream.js';
import type { CodecName } from '../../src/dwcp/encoding/codec.js';
import { loadavg } from 'node:os';

const arg = (k: string, d: string) => {
  const i = process.argv.indexOf(`--${k}`);
  return i >= 0 ? (process.argv[i + 1] ?? d) : d;
};
const MIB = Number(arg('mib', '128'));
const RUNS = Number(arg('runs', '3'));
const [codecName, level] = arg('codec', 'zstd:1').split(':') as [CodecName, string];
const security = { token: 'stream-speed', encrypt: true };
const PIECE = 64 * 1024;

function memoryLike(mib: number): Buffer {
  const pages = (mib << 20) / 4096;
  const out = Buffer.alloc(pages * 4096);
  const words = 'the quick brown fox jumps over lazy dogs 0123456789 kernel page cache inode '.split(' ');
  let x = 1;
  for (let p = 0; p < pages; p++) {
    const kind = p % 4;
    const page = out.subarray(p * 4096, (p + 1) * 4096);
    if (kind === 1) randomBytes(4096).copy(page);
    else if (kind === 2) {
      let s = '';
      while (s.length < 4096) s += words[(x = (x * 1103515245 + 12345) >>> 0) % words.length] + ' ';
      page.write(s.slice(0, 4096), 'latin1');
    }
    // kinds 0 and 3 stay zero
  }
  return out;
}

async function writeAll(w: NodeJS.WritableStream, data: Buffer): Promise<void> {
  for (let off = 0; off < data.length; off += PIECE) {
    if (!w.write(data.subarray(off, off + PIECE))) await once(w as unknown as Socket, 'drain');
  }
}

async function drainReadable(r: Readable): Promise<number> {
  let n = 0;
  for await (const c of r as AsyncIterable<Buffer>) n += c.length;
  return n;
}

async function dwcpRun(data: Buffer): Promise<{ seconds: number; wire: number; cpu: number }> {
  let got: Promise<number> | undefined;
  const server = await AmstServer.listen({
    host: '127.0.0.1',
    port: 0,
    security,
    onSession: streamReceiver((r) => {
      got = drainReadable(r);
    }),
  });
  const c0 = cpuUsage();
  const t0 = performance.now();
  const w = await openStreamSender({
    host: '127.0.0.1',
    port: server.address.port,
    security,
    streams: 2,
    codec: { codec: codecName, level: Number(level) },
    windowBytes: 2 << 20,
  });
  await writeAll(w, data);
  await new Promise<void>((res, rej) => w.end((e?: Error | null) => (e ? rej(e) : res())));
  const n = await got!;
  const seconds = (performance.now() - t0) / 1000;
  const c = cpuUsage(c0);
  if (n !== data.length) throw new Error(`received ${n} of ${data.length} bytes`);
  const wire = w.amst.stats.wireBytes;
  await server.close();
  return { seconds, wire, cpu: (c.user + c.system) / 1e6 };
}

async function tcpRun(data: Buffer): Promise<{ seconds: number; cpu: number }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const c0 = cpuUsage();
  const t0 = performance.now();
  const received = new Promise<number>((resolve) =>
    server.once('connection', (s: Socket) => {
      let n = 0;
      s.on('data', (d: Buffer) => (n += d.length));
      s.on('end', () => resolve(n));
    }),
  );
  const sock = connect(port, '127.0.0.1');
  await once(sock, 'connect');
  await writeAll(sock, data);
  sock.end();
  const n = await received;
  const seconds = (performance.now() - t0) / 1000;
  const c = cpuUsage(c0);
  server.close();
  if (n !== data.length) throw new Error(`tcp received ${n} of ${data.length}`);
  return { seconds, cpu: (c.user + c.system) / 1e6 };
}

async function main(): Promise<void> {
  const file = arg('file', '');
  const data = file ? readFileSync(file) : memoryLike(MIB);
  const mib = data.length / 2 ** 20;
  const rows: Record<string, unknown>[] = [];
  for (let i = 0; i < RUNS; i++) {
    const load = loadavg()[0]!.toFixed(1);
    const t = await tcpRun(data);
    const d = await dwcpRun(data);
    const row = {
      run: i + 1,
      load,
      mib: Math.round(mib),
      tcpMiBps: Math.round(mib / t.seconds),
      dwcpMiBps: Math.round((mib / d.seconds) * 10) / 10,
      dwcpWireMiB: Math.round((d.wire / 2 ** 20) * 10) / 10,
      dwcpCpuSeconds: Math.round(d.cpu * 100) / 100,
      dwcpCpuPerMiB_ms: Math.round((d.cpu / mib) * 1000 * 10) / 10,
    };
    rows.push(row);
    process.stdout.write(`${JSON.stringify(row)}\n`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
