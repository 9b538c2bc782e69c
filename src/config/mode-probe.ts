// I/O probes feeding mode detection: RDMA devices in sysfs and TCP connect time to configured
// peers. Every probe is bounded in time: a dead peer costs one connect timeout, never a stall.
import { lookup } from 'node:dns/promises';
import { readdir } from 'node:fs/promises';
import { connect } from 'node:net';
import type { ModeProbes, PeerRtt } from './mode-detect.js';
import type { NovaCronConfig } from './schema.js';

export const RDMA_SYSFS = '/sys/class/infiniband';

/** Names of RDMA devices (empty when the directory is absent or empty; undefined when unreadable). */
export async function probeRdma(dir: string = RDMA_SYSFS): Promise<string[] | undefined> {
  try {
    return (await readdir(dir)).sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? [] : undefined;
  }
}

/** host and port of a peer URL (`http://10.0.0.2:8080`, `10.0.0.2:7070`, `[::1]:80`). */
export function peerAddress(url: string): { host: string; port: number } {
  const u = new URL(url.includes('://') ? url : `tcp://${url}`);
  const defaults: Record<string, number> = { 'http:': 80, 'https:': 443, 'ws:': 80, 'wss:': 443 };
  const port = u.port ? Number(u.port) : defaults[u.protocol];
  if (!u.hostname || port === undefined) throw new TypeError(`no host:port in peer URL "${url}"`);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port };
}

export interface RttProbeOptions {
  /** Longest wait for one connect (and for the DNS lookup), in ms. */
  readonly timeoutMs: number;
  /** Connects per peer; sampling stops at the first one that fails. */
  readonly samples: number;
  readonly signal?: AbortSignal;
}

/** Time of one TCP connect (SYN to SYN-ACK) in ms; a refusal, a timeout or any other error rejects. */
export function tcpConnectTime(
  host: string,
  port: number,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const start = process.hrtime.bigint();
    const socket = connect({ host, port });
    const elapsed = () => Number(process.hrtime.bigint() - start) / 1e6;
    const finish = (err: Error | undefined, ms?: number) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (err) reject(err);
      else resolvePromise(ms!);
    };
    const onAbort = () => finish(new Error('aborted'));
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => finish(undefined, elapsed()));
    // A refused connect is not counted: the RST may come from a firewall near us, not the peer.
    socket.once('error', (err: NodeJS.ErrnoException) =>
      finish(err.code === 'ECONNREFUSED' ? new Error('connection refused') : err),
    );
  });
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Median TCP connect time to one peer over a few sequential samples. Never rejects. */
export async function probePeerRtt(
  peer: { name: string; url: string },
  opts: RttProbeOptions,
): Promise<PeerRtt> {
  const samples: number[] = [];
  let addr: { host: string; port: number };
  try {
    addr = peerAddress(peer.url);
  } catch (err) {
    return { name: peer.name, url: peer.url, rttMs: undefined, samples, error: (err as Error).message };
  }
  let ip: string;
  try {
    ip = (await withTimeout(lookup(addr.host), opts.timeoutMs, 'DNS lookup')).address;
  } catch (err) {
    return { name: peer.name, url: peer.url, rttMs: undefined, samples, error: (err as Error).message };
  }
  let error: string | undefined;
  for (let i = 0; i < opts.samples && !opts.signal?.aborted; i++) {
    try {
      samples.push(await tcpConnectTime(ip, addr.port, opts.timeoutMs, opts.signal));
    } catch (err) {
      error = (err as Error).message;
      break;
    }
  }
  return samples.length
    ? { name: peer.name, url: peer.url, rttMs: median(samples), samples }
    : { name: peer.name, url: peer.url, rttMs: undefined, samples, error: error ?? 'not measured' };
}

export interface GatherOptions {
  /** Default `system.mode_probe_timeout_ms`. */
  readonly timeoutMs?: number;
  /** Connects per peer (default 3). */
  readonly samples?: number;
  readonly rdmaDir?: string;
  /** Measured bandwidth to peers in Mbit/s, where some component knows it (e.g. DWCP goodput). */
  readonly bandwidthMbps?: () => number | undefined | Promise<number | undefined>;
  readonly signal?: AbortSignal;
}

/**
 * Runs every probe concurrently. Worst case is about `samples × timeoutMs` plus one DNS timeout,
 * and a peer that does not answer costs one timeout.
 */
export async function gatherModeProbes(
  config: NovaCronConfig,
  opts: GatherOptions = {},
): Promise<ModeProbes> {
  const rttOpts: RttProbeOptions = {
    timeoutMs: opts.timeoutMs ?? config.system.mode_probe_timeout_ms,
    samples: opts.samples ?? 3,
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
  const [rdmaDevices, peers, bandwidthMbps] = await Promise.all([
    probeRdma(opts.rdmaDir),
    Promise.all(config.cluster.peers.map((p) => probePeerRtt(p, rttOpts))),
    opts.bandwidthMbps ? Promise.resolve(opts.bandwidthMbps()).catch(() => undefined) : undefined,
  ]);
  return { rdmaDevices, peers, bandwidthMbps };
}
