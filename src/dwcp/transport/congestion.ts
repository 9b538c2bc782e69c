// Per-socket TCP congestion control (config `dwcp.profiles.<mode>.congestion_control`). Node has no
// API for TCP_CONGESTION, so a tiny Node-API addon (native/tcp-cc.c) is compiled with `cc` on first
// use into the temp directory and cached by source hash. Without a compiler or headers the streams
// keep the kernel default, and `congestionControlSupport()` says why.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type CongestionControlSetting = 'auto' | 'bbr' | 'cubic' | 'reno';

interface Addon {
  set(fd: number, name: string): string;
  info(fd: number): number[];
}

/** The kernel's view of one TCP socket (TCP_INFO). */
export interface TcpInfo {
  /** Payload bytes the peer's TCP has acknowledged. */
  readonly bytesAcked: number;
  /** Smoothed RTT, µs. */
  readonly rttUs: number;
  readonly cwnd: number;
  readonly totalRetrans: number;
  /** Bytes in the send buffer not yet sent. */
  readonly notsentBytes: number;
  /** The kernel's latest delivery-rate estimate, bytes/s. */
  readonly deliveryRate: number;
}

let addon: Addon | undefined;
let unavailable: string | undefined;
let tried = false;

function load(): Addon | undefined {
  if (tried) return addon;
  tried = true;
  try {
    // Beside this module under src/, or back in src/ when running the compiled dist/ build.
    const candidates = ['./native/tcp-cc.c', '../../../src/dwcp/transport/native/tcp-cc.c'].map((rel) =>
      fileURLToPath(new URL(rel, import.meta.url)),
    );
    const src = candidates.find((c) => existsSync(c));
    if (!src) throw new Error('native/tcp-cc.c not found');
    const text = readFileSync(src);
    const key = createHash('sha256').update(text).update(process.version).digest('hex').slice(0, 12);
    const dir = join(tmpdir(), `novacron-tcp-cc-${key}`);
    const out = join(dir, 'tcp-cc.node');
    if (!existsSync(out)) {
      mkdirSync(dir, { recursive: true });
      const include = join(dirname(dirname(process.execPath)), 'include', 'node');
      const tmp = `${out}.${process.pid}.tmp`;
      const r = spawnSync(
        'cc',
        ['-O2', '-shared', '-fPIC', `-I${include}`, '-DNODE_GYP_MODULE_NAME=tcp_cc', '-o', tmp, src],
        { encoding: 'utf8' },
      );
      if (r.error || r.status !== 0) throw new Error(`cc failed: ${r.error?.message ?? r.stderr.trim()}`);
      renameSync(tmp, out);
    }
    addon = createRequire(import.meta.url)(out) as Addon;
  } catch (err) {
    unavailable = err instanceof Error ? err.message : String(err);
  }
  return addon;
}

function fdOf(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** TCP_INFO of a connected socket, or undefined where the addon or the socket is unavailable. */
export function tcpInfo(socket: Socket): TcpInfo | undefined {
  const a = load();
  const fd = fdOf(socket);
  if (!a || fd === undefined) return undefined;
  try {
    const [bytesAcked, rttUs, cwnd, totalRetrans, notsentBytes, deliveryRate] = a.info(fd);
    return {
      bytesAcked: bytesAcked ?? 0,
      rttUs: rttUs ?? 0,
      cwnd: cwnd ?? 0,
      totalRetrans: totalRetrans ?? 0,
      notsentBytes: notsentBytes ?? 0,
      deliveryRate: deliveryRate ?? 0,
    };
  } catch {
    return undefined;
  }
}

/** Congestion controls the kernel offers (from /proc). */
export function availableCongestionControls(): string[] {
  try {
    return readFileSync('/proc/sys/net/ipv4/tcp_available_congestion_control', 'utf8').trim().split(/\s+/);
  } catch {
    return [];
  }
}

/** Undefined when per-socket congestion control works here, else the reason it does not. */
export function congestionControlSupport(): string | undefined {
  load();
  return addon ? undefined : (unavailable ?? 'unavailable');
}

/**
 * Applies a congestion control to a connected socket; `auto` means BBR when the kernel offers it.
 * Returns the algorithm in effect, or undefined when it could not be set (the kernel default stays).
 */
export function applyCongestionControl(
  socket: Socket,
  setting: CongestionControlSetting,
): string | undefined {
  const want =
    setting === 'auto' ? (availableCongestionControls().includes('bbr') ? 'bbr' : undefined) : setting;
  if (!want) return undefined;
  const a = load();
  const fd = fdOf(socket);
  if (!a || fd === undefined) return undefined;
  try {
    return a.set(fd, want);
  } catch {
    return undefined;
  }
}
