// One end of a bench/dwcp transfer, run as its own process (on loopback or inside a WAN namespace).
// Prints one JSON line when done: {seconds, bytes, wireBytes, cpuSeconds, ...} (a DWCP receiver:
// the bytes it wrote back, answers and acks).
//
//   peer.ts dwcp-recv HOST:PORT DIR           DWCP receiver, exits after one file
//   peer.ts dwcp-send FILE HOST:PORT NAME STREAMS|auto CODEC LEVEL [CC]   CC: auto|bbr|cubic|host
//   peer.ts tcp-recv HOST:PORT OUTFILE [zstd] single plain TCP stream (zstd: decompress with `zstd -d`)
//   peer.ts tcp-send FILE HOST:PORT [zstd]    (zstd: `zstd -3 -c FILE` piped into the socket)
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { spawn } from 'node:child_process';
import { pipeline } from 'node:stream/promises';
import { createReceiver } from '../../src/dwcp/file-receiver.js';
import { sendFile } from '../../src/dwcp/file-sender.js';
import type { CodecName } from '../../src/dwcp/encoding/codec.js';
import type { DwcpConnection } from '../../src/dwcp/transport/connection.js';

const TOKEN = 'bench-dwcp-token';
const [cmd, ...args] = process.argv.slice(2);
const hp = (s: string) => {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
};
/** CPU seconds of this process and its waited-for children (zstd), from /proc/self/stat. */
const cpu = () => {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14..17 of stat (utime, stime, cutime, cstime) are 11..14 after the command name.
  return [11, 12, 13, 14].reduce((a, i) => a + Number(f[i]), 0) / 100;
};
const done = (o: Record<string, unknown>) =>
  process.stdout.write(JSON.stringify({ ...o, cpuSeconds: cpu() }) + '\n');

async function main(): Promise<void> {
  switch (cmd ?? '') {
    case 'dwcp-recv': {
      const { host, port } = hp(args[0]!);
      let finish: () => void = () => {};
      const finished = new Promise<void>((r) => (finish = r));
      // What the receiver writes back (answers to queries, acks): part of a transfer's wire cost.
      const streams: DwcpConnection[] = [];
      const rx = await createReceiver({
        dir: args[1]!,
        host,
        port,
        security: { token: TOKEN, encrypt: true },
        onFile: () => finish(),
        onStream: (conn) => streams.push(conn),
      });
      process.stdout.write('ready\n');
      await finished;
      await rx.close();
      done({ role: 'recv', wireBytes: streams.reduce((a, c) => a + c.wireBytesOut, 0) });
      return;
    }
    case 'dwcp-send': {
      const [file, to, name, streams, codec, level, cc] = args as [
        string,
        string,
        string,
        string,
        string,
        string,
        string?,
      ];
      const { host, port } = hp(to);
      const s = await sendFile(file, {
        host,
        port,
        name,
        security: { token: TOKEN, encrypt: true },
        ...(cc && cc !== 'host' ? { congestionControl: cc as 'auto' } : {}),
        streams: streams === 'auto' ? 4 : Number(streams),
        adaptive: streams === 'auto',
        minStreams: 1,
        maxStreams: 16,
        codec: { codec: codec as CodecName, level: Number(level) },
      });
      done({
        seconds: s.seconds,
        bytes: s.bytes,
        wireBytes: s.wireBytes,
        streams: s.streams,
        chunks: s.chunks,
      });
      return;
    }
    case 'tcp-recv': {
      const { host, port } = hp(args[0]!);
      const zstd = args[2] === 'zstd';
      const server = createServer();
      await new Promise<void>((r) => server.listen(port, host, r));
      process.stdout.write('ready\n');
      const sock = await new Promise<Socket>((r) => server.once('connection', r));
      const t0 = performance.now();
      let wire = 0;
      sock.on('data', (d: Buffer) => (wire += d.length));
      if (zstd) {
        const child = spawn('zstd', ['-d', '-q', '-f', '-o', args[1]!], {
          stdio: ['pipe', 'inherit', 'inherit'],
        });
        const exited = new Promise((r) => child.on('close', r));
        await pipeline(sock, child.stdin);
        await exited;
      } else {
        await pipeline(sock, createWriteStream(args[1]!));
      }
      server.close();
      done({ role: 'recv', wireBytes: wire, seconds: (performance.now() - t0) / 1000 });
      return;
    }
    case 'tcp-send': {
      const { host, port } = hp(args[1]!);
      const zstd = args[2] === 'zstd';
      const t0 = performance.now();
      const sock = connect({ host, port });
      await new Promise((r) => sock.once('connect', r));
      let wire = 0;
      if (zstd) {
        const child = spawn('zstd', ['-3', '-q', '-c', args[0]!], { stdio: ['ignore', 'pipe', 'inherit'] });
        child.stdout.on('data', (d: Buffer) => (wire += d.length));
        await pipeline(child.stdout, sock);
      } else {
        const rs = createReadStream(args[0]!, { highWaterMark: 1 << 20 });
        rs.on('data', (d) => (wire += d.length));
        await pipeline(rs, sock);
      }
      // The receiver closes after writing everything: wait for it so the time covers delivery.
      done({ seconds: (performance.now() - t0) / 1000, wireBytes: wire });
      return;
    }
    default:
      throw new Error(`unknown peer command ${cmd}`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`peer ${cmd}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
