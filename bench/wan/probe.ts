// Traffic endpoints run inside a WAN link's namespaces (by measure.ts): UDP echo/ping for RTT,
// UDP blast/sink for loss, TCP source/sink for throughput. Each prints one JSON line per event
// on stdout ({"type":"listening"} when ready, {"type":"result",...} at the end).
//   node --import tsx bench/wan/probe.ts udp-echo   --port P
//   node --import tsx bench/wan/probe.ts udp-ping   --host H --port P --count N --interval-ms I
//   node --import tsx bench/wan/probe.ts udp-sink   --port P --idle-ms I
//   node --import tsx bench/wan/probe.ts udp-blast  --host H --port P --count N --interval-ms I
//   node --import tsx bench/wan/probe.ts tcp-sink   --port P [--sample-ms I]
//   node --import tsx bench/wan/probe.ts tcp-source --host H --port P --seconds S
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { createServer, connect } from 'node:net';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    count: { type: 'string' },
    'interval-ms': { type: 'string' },
    'idle-ms': { type: 'string' },
    'sample-ms': { type: 'string' },
    seconds: { type: 'string' },
    size: { type: 'string' },
  },
});

function num(name: keyof typeof values, fallback?: number): number {
  const raw = values[name];
  if (raw === undefined) {
    if (fallback === undefined) throw new Error(`--${name} is required`);
    return fallback;
  }
  const v = Number(raw);
  if (!Number.isFinite(v)) throw new Error(`--${name} must be a number`);
  return v;
}
function str(name: 'host'): string {
  const v = values[name];
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}
function emit(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

function udpEcho(): void {
  const sock = createSocket('udp4');
  sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
  sock.bind(num('port'), () => emit({ type: 'listening' }));
}

function udpPing(): void {
  const count = num('count', 20);
  const interval = num('interval-ms', 100);
  const size = Math.max(16, num('size', 64));
  const sock = createSocket('udp4');
  const sentAt = new Map<number, number>();
  const rtts: number[] = [];
  sock.on('message', (msg) => {
    const seq = msg.readUInt32BE(0);
    const t = sentAt.get(seq);
    if (t === undefined) return;
    sentAt.delete(seq);
    rtts.push(nowMs() - t);
  });
  let seq = 0;
  const tick = setInterval(() => {
    const buf = Buffer.alloc(size);
    buf.writeUInt32BE(seq, 0);
    sentAt.set(seq, nowMs());
    sock.send(buf, num('port'), str('host'));
    seq++;
    if (seq >= count) {
      clearInterval(tick);
      // Replies still in flight get a grace period of 3 s; done as soon as all are back.
      const grace = setTimeout(done, 3000);
      const poll = setInterval(() => {
        if (sentAt.size === 0) done();
      }, 20);
      function done(): void {
        clearTimeout(grace);
        clearInterval(poll);
        emit({ type: 'result', sent: count, received: rtts.length, rttMs: rtts });
        sock.close();
      }
    }
  }, interval);
}

function udpSink(): void {
  const idle = num('idle-ms', 1500);
  const sock = createSocket('udp4');
  const seqs: number[] = [];
  let timer: NodeJS.Timeout | undefined;
  sock.on('message', (msg) => {
    seqs.push(msg.readUInt32BE(0));
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      emit({ type: 'result', received: seqs });
      sock.close();
    }, idle);
  });
  sock.bind(num('port'), () => emit({ type: 'listening' }));
}

function udpBlast(): void {
  const count = num('count');
  const interval = num('interval-ms', 1);
  const size = Math.max(16, num('size', 200));
  const sock = createSocket('udp4');
  let seq = 0;
  const start = nowMs();
  // Paced by elapsed time, not by timer ticks, so coarse timers still send the right number.
  const tick = setInterval(
    () => {
      const due = Math.min(count, Math.floor((nowMs() - start) / interval) + 1);
      for (; seq < due; seq++) {
        const buf = Buffer.alloc(size);
        buf.writeUInt32BE(seq, 0);
        sock.send(buf, num('port'), str('host'));
      }
      if (seq >= count) {
        clearInterval(tick);
        setTimeout(() => {
          emit({ type: 'result', sent: count });
          sock.close();
        }, 200);
      }
    },
    Math.max(1, interval),
  );
}

function tcpSink(): void {
  const sampleMs = num('sample-ms', 250);
  const server = createServer((sock) => {
    const t0 = nowMs();
    let bytes = 0;
    let first: number | undefined;
    let last = t0;
    const samples: number[] = []; // cumulative bytes at each sample tick
    const tick = setInterval(() => samples.push(bytes), sampleMs);
    sock.on('data', (c: Buffer) => {
      const t = nowMs();
      first ??= t;
      last = t;
      bytes += c.length;
    });
    sock.on('close', () => {
      clearInterval(tick);
      emit({
        type: 'result',
        bytes,
        firstByteMs: first === undefined ? null : first - t0,
        lastByteMs: last - t0,
        sampleMs,
        samples,
      });
      server.close();
    });
    sock.on('error', () => undefined);
  });
  server.listen(num('port'), () => emit({ type: 'listening' }));
}

function tcpSource(): void {
  const seconds = num('seconds', 5);
  const chunk = randomBytes(64 * 1024); // incompressible, though nothing on the path compresses
  const t0 = nowMs();
  let bytes = 0;
  let connectedAt = 0;
  const sock = connect({ host: str('host'), port: num('port') }, () => {
    connectedAt = nowMs() - t0;
    const pump = (): void => {
      while (nowMs() - t0 < seconds * 1000) {
        bytes += chunk.length;
        if (!sock.write(chunk)) {
          sock.once('drain', pump);
          return;
        }
      }
      sock.end();
    };
    pump();
  });
  sock.on('close', () => emit({ type: 'result', bytes, connectMs: connectedAt, elapsedMs: nowMs() - t0 }));
  sock.on('error', (err) => {
    emit({ type: 'error', message: err.message });
    process.exitCode = 1;
  });
}

const modes: Record<string, () => void> = {
  'udp-echo': udpEcho,
  'udp-ping': udpPing,
  'udp-sink': udpSink,
  'udp-blast': udpBlast,
  'tcp-sink': tcpSink,
  'tcp-source': tcpSource,
};
const mode = modes[positionals[0] ?? ''];
if (!mode) {
  process.stderr.write(`usage: probe.ts ${Object.keys(modes).join('|')} [options]\n`);
  process.exit(2);
}
mode();
