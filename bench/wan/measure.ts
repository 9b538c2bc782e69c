// Measurements over a running WAN link, for tests and benchmarks: RTT (UDP echo, or ping when
// installed), one-way UDP delivery (which sequence numbers arrived) and single-stream TCP goodput.
import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { UnavailableError } from '../../src/errors.js';
import type { WanLink, WanSide } from './link.js';

const PROBE = fileURLToPath(new URL('./probe.ts', import.meta.url));

interface ProbeLine {
  readonly type: string;
  readonly [k: string]: unknown;
}

/** Collects a probe's JSON lines; resolves `listening` and `result` as they come. */
function watchProbe(
  child: ChildProcess,
  what: string,
): { listening: Promise<void>; result: Promise<ProbeLine> } {
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-2000)));
  let onListening: () => void = () => undefined;
  let onResult: (l: ProbeLine) => void = () => undefined;
  let fail: (e: Error) => void = () => undefined;
  const listening = new Promise<void>((resolve, reject) => {
    onListening = resolve;
    fail = reject;
  });
  let failResult: (e: Error) => void = () => undefined;
  const result = new Promise<ProbeLine>((resolve, reject) => {
    onResult = resolve;
    failResult = reject;
  });
  // Callers may await only one of the two.
  listening.catch(() => undefined);
  result.catch(() => undefined);
  if (!child.stdout) throw new UnavailableError(`${what}: probe has no stdout`);
  createInterface({ input: child.stdout }).on('line', (line) => {
    let msg: ProbeLine;
    try {
      msg = JSON.parse(line) as ProbeLine;
    } catch {
      return;
    }
    if (msg.type === 'listening') onListening();
    else if (msg.type === 'result') onResult(msg);
    else if (msg.type === 'error') failResult(new UnavailableError(`${what}: ${String(msg['message'])}`));
  });
  child.on('exit', (code, signal) => {
    const err = new UnavailableError(`${what}: probe exited (${code ?? signal}) ${stderr.trim()}`);
    fail(err);
    failResult(err);
  });
  return { listening, result };
}

function startProbe(link: WanLink, side: WanSide, args: readonly string[]): ChildProcess {
  return link.nodeIn(side, PROBE, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

async function finish(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
}

export interface RttSummary {
  readonly sent: number;
  readonly received: number;
  readonly minMs: number;
  readonly medianMs: number;
  readonly p90Ms: number;
  readonly maxMs: number;
  readonly samplesMs: readonly number[];
}

/** Summarises RTT samples; quantiles by nearest rank. */
export function summariseRtt(samples: readonly number[], sent: number): RttSummary {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? NaN;
  return {
    sent,
    received: s.length,
    minMs: s[0] ?? NaN,
    medianMs: q(0.5),
    p90Ms: q(0.9),
    maxMs: s.at(-1) ?? NaN,
    samplesMs: samples,
  };
}

/** RTT from side A to side B with a UDP echo (no binary needed beyond node). */
export async function measureUdpRtt(
  link: WanLink,
  opts: { readonly count?: number; readonly intervalMs?: number; readonly port?: number } = {},
): Promise<RttSummary> {
  const port = opts.port ?? 7007;
  const count = opts.count ?? 20;
  const echo = startProbe(link, 'b', ['udp-echo', '--port', String(port)]);
  try {
    await watchProbe(echo, 'udp-echo').listening;
    const ping = startProbe(link, 'a', [
      'udp-ping',
      '--host',
      link.addrB,
      '--port',
      String(port),
      '--count',
      String(count),
      '--interval-ms',
      String(opts.intervalMs ?? 100),
    ]);
    const r = await watchProbe(ping, 'udp-ping').result;
    await finish(ping);
    return summariseRtt(r['rttMs'] as number[], count);
  } finally {
    echo.kill('SIGKILL');
  }
}

/** Whether iputils `ping` is installed. */
export function pingAvailable(): boolean {
  const r = spawnSync('ping', ['-V'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
}

/** Parses the `time=12.3 ms` replies of iputils ping. */
export function parsePingOutput(text: string): number[] {
  return [...text.matchAll(/time[=<]([\d.]+) ?ms/g)].map((m) => Number(m[1]));
}

/** RTT from side A to side B with ICMP ping (iputils). */
export async function measurePingRtt(
  link: WanLink,
  opts: { readonly count?: number; readonly intervalMs?: number } = {},
): Promise<RttSummary> {
  if (!pingAvailable())
    throw new UnavailableError('ping is not installed', { hint: 'apt-get install -y iputils-ping' });
  const count = opts.count ?? 20;
  const r = await link.exec(
    'a',
    'ping',
    ['-n', '-c', String(count), '-i', String((opts.intervalMs ?? 100) / 1000), '-W', '5', link.addrB],
    { allowFailure: true, timeoutMs: 60_000 },
  );
  return summariseRtt(parsePingOutput(r.stdout), count);
}

export interface UdpDelivery {
  readonly sent: number;
  /** Sequence numbers that arrived at B, in arrival order. */
  readonly received: readonly number[];
}

/** Sends `count` numbered datagrams from A to B, paced at one per `intervalMs`, and reports which arrived. */
export async function measureUdpDelivery(
  link: WanLink,
  opts: {
    readonly count: number;
    readonly intervalMs?: number;
    readonly port?: number;
    readonly size?: number;
  },
): Promise<UdpDelivery> {
  const port = opts.port ?? 7008;
  const sink = startProbe(link, 'b', ['udp-sink', '--port', String(port), '--idle-ms', '2000']);
  const watch = watchProbe(sink, 'udp-sink');
  try {
    await watch.listening;
    const blast = startProbe(link, 'a', [
      'udp-blast',
      '--host',
      link.addrB,
      '--port',
      String(port),
      '--count',
      String(opts.count),
      '--interval-ms',
      String(opts.intervalMs ?? 1),
      '--size',
      String(opts.size ?? 200),
    ]);
    await watchProbe(blast, 'udp-blast').result;
    const r = await watch.result;
    await finish(blast);
    return { sent: opts.count, received: r['received'] as number[] };
  } finally {
    sink.kill('SIGKILL');
  }
}

export interface TcpTransfer {
  readonly bytes: number;
  /** Time from the first to the last byte at the receiver. */
  readonly seconds: number;
  /** bytes * 8 / seconds, in Mbit/s. */
  readonly goodputMbit: number;
  /** Goodput over the second half of the transfer (after slow start), in Mbit/s. */
  readonly steadyMbit: number;
  /** TCP connect time (one RTT plus process noise), in ms. */
  readonly connectMs: number;
}

/** Computes goodput figures from the sink's cumulative samples. */
export function summariseTransfer(
  bytes: number,
  firstByteMs: number,
  lastByteMs: number,
  sampleMs: number,
  samples: readonly number[],
  connectMs: number,
): TcpTransfer {
  const seconds = Math.max(1e-3, (lastByteMs - firstByteMs) / 1000);
  const half = Math.floor(samples.length / 2);
  const tailStart = samples[half - 1] ?? 0;
  const tailEnd = samples.at(-1) ?? 0;
  const tailSeconds = ((samples.length - half) * sampleMs) / 1000;
  const steadyMbit = tailSeconds > 0 && half > 0 ? ((tailEnd - tailStart) * 8) / tailSeconds / 1e6 : NaN;
  return { bytes, seconds, goodputMbit: (bytes * 8) / seconds / 1e6, steadyMbit, connectMs };
}

/**
 * One TCP stream from A to B for `seconds`, with the namespaces' congestion control. The sink
 * counts bytes; goodput is measured at the receiver.
 */
export async function measureTcpTransfer(
  link: WanLink,
  opts: { readonly seconds: number; readonly port?: number },
): Promise<TcpTransfer> {
  const port = opts.port ?? 7009;
  const sink = startProbe(link, 'b', ['tcp-sink', '--port', String(port), '--sample-ms', '250']);
  const watch = watchProbe(sink, 'tcp-sink');
  try {
    await watch.listening;
    const source = startProbe(link, 'a', [
      'tcp-source',
      '--host',
      link.addrB,
      '--port',
      String(port),
      '--seconds',
      String(opts.seconds),
    ]);
    const src = await watchProbe(source, 'tcp-source').result;
    const r = await watch.result;
    await finish(source);
    const first = r['firstByteMs'];
    if (typeof first !== 'number') throw new UnavailableError('tcp-sink: no byte arrived');
    return summariseTransfer(
      r['bytes'] as number,
      first,
      r['lastByteMs'] as number,
      r['sampleMs'] as number,
      r['samples'] as number[],
      src['connectMs'] as number,
    );
  } finally {
    sink.kill('SIGKILL');
  }
}
