// Starts and stops emulated WAN links: two network namespaces joined by the userspace forwarder
// (native/wan-forwarder.c), with helpers to run processes on either side. Root and `ip` needed.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { UnavailableError, ValidationError, errorMessage } from '../../src/errors.js';
import {
  NAMESPACE_PREFIX,
  directionArgs,
  formatTraceForForwarder,
  namespaceNames,
  namespaceOwner,
  parseBandwidthTrace,
  parseForwarderStats,
  resolveLink,
  type CongestionControl,
  type ResolvedLink,
  type TracePoint,
  type WanLinkOptions,
  type WanLinkStats,
} from './link-spec.js';

export * from './link-spec.js';

const FORWARDER_SOURCE = fileURLToPath(new URL('./native/wan-forwarder.c', import.meta.url));
/** Repository root: the working directory for processes started with `nodeIn`. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Both TUN devices have this name, each inside its own namespace. */
export const WAN_DEVICE = 'wan0';
/** Address of side A and side B. They exist only inside the link's namespaces. */
export const WAN_ADDR_A = '10.77.0.1';
export const WAN_ADDR_B = '10.77.0.2';

export type WanSide = 'a' | 'b';
export type WanDirection = 'aToB' | 'bToA';

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A running emulated link. `stop()` must be called (it is idempotent); a crash is cleaned up by the next start. */
export interface WanLink {
  readonly id: string;
  readonly nsA: string;
  readonly nsB: string;
  readonly addrA: string;
  readonly addrB: string;
  readonly device: string;
  /** Parameters in force, after defaults (rates in bit/s, delays in ns). */
  readonly config: ResolvedLink;
  /** How the forwarder is scheduled: "fifo" (SCHED_FIFO), "nice-10" or "normal". */
  readonly scheduling: string;
  /** The namespace name of a side. */
  ns(side: WanSide): string;
  /** Runs a command to completion inside a side's namespace; rejects on a non-zero exit unless `allowFailure`. */
  exec(
    side: WanSide,
    cmd: string,
    args?: readonly string[],
    opts?: { readonly allowFailure?: boolean; readonly timeoutMs?: number },
  ): Promise<ExecResult>;
  /** Spawns a process inside a side's namespace (via `ip netns exec`); killed by `stop()` if still running. */
  spawnIn(side: WanSide, cmd: string, args?: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** Spawns `node --import tsx SCRIPT ARGS` inside a side's namespace, cwd = repository root. */
  nodeIn(side: WanSide, script: string, args?: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** Counters of the forwarder (per direction: received, dropped by loss/queue, delivered …). */
  stats(): Promise<WanLinkStats>;
  /**
   * Packets the kernel dropped at each side's TUN device before the forwarder read them (its
   * queue overflowed because the forwarder was late). Nonzero means the host, not the emulated
   * link, lost packets.
   */
  tunDrops(): Promise<{ readonly a: number; readonly b: number }>;
  /** Changes rate, delay or loss of one or both directions while the link runs. */
  update(
    direction: WanDirection | 'both',
    params: { readonly rateMbit?: number; readonly delayMs?: number; readonly lossPct?: number },
  ): Promise<void>;
  /** Sets the default TCP congestion control of both namespaces (new sockets use it). */
  setCongestionControl(cc: CongestionControl): Promise<void>;
  /** The default TCP congestion control a side's namespace has now. */
  congestionControl(side: WanSide): Promise<string>;
  /** Kills every process in both namespaces, stops the forwarder, deletes the namespaces. Returns final counters. */
  stop(): Promise<WanLinkStats | undefined>;
}

function run(cmd: string, args: readonly string[], timeoutMs = 30_000): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

async function must(cmd: string, args: readonly string[]): Promise<ExecResult> {
  const r = await run(cmd, args);
  if (r.code !== 0) {
    throw new UnavailableError(`${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`, {
      retryable: false,
    });
  }
  return r;
}

/** Why this host cannot run the emulator, or undefined if it can. Cheap: no namespace is created. */
export function wanUnsupportedReason(): string | undefined {
  if (process.platform !== 'linux') return `needs Linux (this is ${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    return 'needs root (network namespaces and TUN)';
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
  } catch {
    return '/dev/net/tun is missing or not accessible';
  }
  const ip = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (ip.error || ip.status !== 0) return `\`ip netns\` does not work: ${ip.error?.message ?? ip.stderr}`;
  const cc = spawnSync('cc', ['--version'], { encoding: 'utf8' });
  if (cc.error || cc.status !== 0) return 'no C compiler (`cc`) to build the forwarder';
  return undefined;
}

/**
 * Compiles the forwarder once per source version into the temp directory (atomic rename, so
 * concurrent callers are safe) and returns the binary's path.
 */
export function ensureForwarderBinary(): string {
  const source = readFileSync(FORWARDER_SOURCE);
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 12);
  const dir = join(tmpdir(), `novacron-wan-${hash}`);
  const bin = join(dir, 'wan-forwarder');
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const tmp = `${bin}.${process.pid}.tmp`;
  const r = spawnSync('cc', ['-O2', '-Wall', '-Wextra', '-o', tmp, FORWARDER_SOURCE], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new UnavailableError(`cannot build the WAN forwarder: ${r.error?.message ?? r.stderr}`, {
      hint: 'install a C compiler (Debian: apt-get install -y gcc libc6-dev)',
      retryable: false,
    });
  }
  renameSync(tmp, bin);
  return bin;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function listNamespaces(): Promise<string[]> {
  const r = await must('ip', ['netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(NAMESPACE_PREFIX));
}

function killNamespacePids(ns: string): void {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  for (const p of (r.stdout ?? '').split('\n')) {
    const pid = Number(p.trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

/**
 * Deletes emulator namespaces whose owning process is gone (a crashed test or benchmark), killing
 * whatever still runs inside them. Returns the names removed. Safe to call at any time.
 */
export async function cleanupStaleWanLinks(): Promise<string[]> {
  const removed: string[] = [];
  for (const ns of await listNamespaces()) {
    const owner = namespaceOwner(ns);
    if (owner === undefined || pidAlive(owner)) continue;
    killNamespacePids(ns);
    const r = await run('ip', ['netns', 'del', ns]);
    if (r.code === 0) removed.push(ns);
  }
  // Work directories (trace files) of dead owners: nc-wan-<pid>-<n>-XXXXXX in the temp directory.
  for (const name of readdirSync(tmpdir())) {
    const m = /^nc-wan-(\d+)-\d+-/.exec(name);
    if (m?.[1] !== undefined && !pidAlive(Number(m[1])))
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
  return removed;
}

/** Names of every emulator namespace present now (live or stale). */
export function listWanNamespaces(): Promise<string[]> {
  return listNamespaces();
}

const live = new Set<{ emergencyStop(): void }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort when the owner exits without stop(): synchronous, so it runs in 'exit'.
  process.on('exit', () => {
    for (const l of live) l.emergencyStop();
  });
}

const CONGESTION_PROC = '/proc/sys/net/ipv4';

/**
 * A namespace other than the initial one may only pick a congestion control the host lists in
 * tcp_allowed_congestion_control (the kernel returns EPERM otherwise), so add it there if needed.
 * This only widens what unprivileged sockets may choose; the host's default is untouched.
 */
function allowCongestionControl(cc: CongestionControl): void {
  const available = readFileSync(join(CONGESTION_PROC, 'tcp_available_congestion_control'), 'utf8').split(
    /\s+/,
  );
  if (!available.includes(cc)) {
    const probe = spawnSync('modprobe', [`tcp_${cc}`]);
    const again = readFileSync(join(CONGESTION_PROC, 'tcp_available_congestion_control'), 'utf8').split(
      /\s+/,
    );
    if (probe.status !== 0 || !again.includes(cc)) {
      throw new UnavailableError(`TCP congestion control ${cc} is not available in this kernel`, {
        key: 'congestionControl',
        hint: `available: ${available.join(' ').trim()}`,
        retryable: false,
      });
    }
  }
  const allowedPath = join(CONGESTION_PROC, 'tcp_allowed_congestion_control');
  const allowed = readFileSync(allowedPath, 'utf8').trim().split(/\s+/);
  if (!allowed.includes(cc)) writeFileSync(allowedPath, [...allowed, cc].join(' '));
}

let serial = 0;

/**
 * Creates namespaces `nc-wan-a-<pid>-<n>` and `nc-wan-b-<pid>-<n>`, a TUN device `wan0` in each
 * (10.77.0.1/30 in A, 10.77.0.2/30 in B) and the forwarder between them.
 *
 * @example
 *   const link = await startWanLink({ rateMbit: 100, delayMs: 20, lossPct: 0.1, congestionControl: 'cubic' });
 *   try {
 *     const server = link.nodeIn('b', 'my-server.ts', ['--listen', `${link.addrB}:9000`]);
 *     await link.exec('a', 'ping', ['-c', '3', link.addrB]);
 *   } finally {
 *     await link.stop();
 *   }
 */
export async function startWanLink(options: WanLinkOptions = {}): Promise<WanLink> {
  const reason = wanUnsupportedReason();
  if (reason !== undefined) {
    throw new UnavailableError(`WAN emulator unavailable: ${reason}`, {
      hint: 'run as root on Linux with iproute2, /dev/net/tun and a C compiler',
      retryable: false,
    });
  }
  const loadTrace = (path: string): readonly TracePoint[] => {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ValidationError(`cannot read bandwidth trace ${path}: ${errorMessage(err)}`, {
        key: 'trace',
        cause: err,
      });
    }
    return parseBandwidthTrace(text, path);
  };
  const config = resolveLink(options, loadTrace);
  const bin = ensureForwarderBinary();
  await cleanupStaleWanLinks();
  if (config.congestionControl) allowCongestionControl(config.congestionControl);

  const { id, nsA, nsB } = namespaceNames(process.pid, ++serial);
  const workDir = mkdtempSync(join(tmpdir(), `nc-wan-${id}-`));
  const children = new Set<ChildProcess>();
  let forwarder: ChildProcess | undefined;
  let stopped = false;
  const created: string[] = [];

  const emergency = {
    emergencyStop(): void {
      forwarder?.kill('SIGKILL');
      for (const c of children) c.kill('SIGKILL');
      for (const ns of created) {
        killNamespacePids(ns);
        spawnSync('ip', ['netns', 'del', ns]);
      }
      rmSync(workDir, { recursive: true, force: true });
    },
  };
  live.add(emergency);
  installExitHook();

  const sysctls = ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'];
  if (config.congestionControl) sysctls.push(`net.ipv4.tcp_congestion_control=${config.congestionControl}`);

  // Forwarder replies arrive in the order commands were sent.
  const pending: { resolve: (line: string) => void; reject: (err: Error) => void }[] = [];
  let forwarderExit: Promise<unknown> = Promise.resolve();
  let stderrTail = '';
  let scheduling = 'unknown';

  const send = (cmd: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const f = forwarder;
      if (!f?.stdin || f.exitCode !== null) {
        reject(new UnavailableError(`WAN forwarder of link ${id} is not running: ${stderrTail.trim()}`));
        return;
      }
      pending.push({ resolve, reject });
      f.stdin.write(`${cmd}\n`);
    });

  try {
    for (const ns of [nsA, nsB]) {
      await must('ip', ['netns', 'add', ns]);
      created.push(ns);
      await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      await must('ip', ['netns', 'exec', ns, 'sysctl', '-qw', ...sysctls]);
    }
    const args = ['--ns-a', nsA, '--ns-b', nsB, '--dev', WAN_DEVICE, '--seed', String(config.seed)];
    args.push('--realtime', config.realtime ? '1' : '0');
    for (const [name, dir] of [
      ['a2b', config.aToB],
      ['b2a', config.bToA],
    ] as const) {
      let traceFile: string | undefined;
      if (dir.trace) {
        traceFile = join(workDir, `${name}.trace`);
        writeFileSync(traceFile, formatTraceForForwarder(dir.trace));
      }
      args.push(...directionArgs(name, dir, traceFile));
    }
    const f = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    forwarder = f;
    f.stderr.on('data', (c: Buffer) => (stderrTail = (stderrTail + c.toString('utf8')).slice(-2000)));
    forwarderExit = once(f, 'exit').catch(() => undefined);
    const ready = new Promise<string>((resolve, reject) => {
      pending.push({ resolve, reject });
    });
    createInterface({ input: f.stdout }).on('line', (line) => {
      const p = pending.shift();
      if (!p) return;
      if (line.includes('"type":"error"')) p.reject(new ValidationError(`WAN forwarder: ${line}`));
      else p.resolve(line);
    });
    f.on('exit', (code, signal) => {
      const err = new UnavailableError(
        `WAN forwarder of link ${id} exited (${code ?? signal}): ${stderrTail.trim()}`,
      );
      for (const p of pending.splice(0)) p.reject(err);
    });
    f.on('error', (err) => {
      for (const p of pending.splice(0)) p.reject(err);
    });
    const readyLine = JSON.parse(await ready) as { scheduling?: unknown };
    scheduling = typeof readyLine.scheduling === 'string' ? readyLine.scheduling : 'unknown';
    for (const [ns, addr] of [
      [nsA, WAN_ADDR_A],
      [nsB, WAN_ADDR_B],
    ] as const) {
      await must('ip', ['-n', ns, 'addr', 'add', `${addr}/30`, 'dev', WAN_DEVICE]);
      await must('ip', ['-n', ns, 'link', 'set', WAN_DEVICE, 'mtu', String(config.mtu), 'up']);
    }
  } catch (err) {
    emergency.emergencyStop();
    live.delete(emergency);
    throw err;
  }

  const nsOf = (side: WanSide): string => (side === 'a' ? nsA : nsB);
  const tsxImport = import.meta.resolve('tsx');

  const link: WanLink = {
    id,
    nsA,
    nsB,
    addrA: WAN_ADDR_A,
    addrB: WAN_ADDR_B,
    device: WAN_DEVICE,
    config,
    get scheduling() {
      return scheduling;
    },
    ns: nsOf,
    async exec(side, cmd, args = [], opts = {}) {
      const r = await run('ip', ['netns', 'exec', nsOf(side), cmd, ...args], opts.timeoutMs);
      if (r.code !== 0 && !opts.allowFailure) {
        throw new UnavailableError(
          `${cmd} ${args.join(' ')} in ${nsOf(side)} exited ${r.code}: ${r.stderr.trim()}`,
        );
      }
      return r;
    },
    spawnIn(side, cmd, args = [], opts = {}) {
      const child = spawn('ip', ['netns', 'exec', nsOf(side), cmd, ...args], opts);
      children.add(child);
      child.on('exit', () => children.delete(child));
      return child;
    },
    nodeIn(side, script, args = [], opts = {}) {
      return link.spawnIn(side, process.execPath, ['--import', tsxImport, script, ...args], {
        cwd: REPO_ROOT,
        ...opts,
      });
    },
    async stats() {
      return parseForwarderStats(await send('stats'));
    },
    async tunDrops() {
      const read = async (ns: string): Promise<number> => {
        const r = await must('ip', ['-n', ns, '-s', '-j', 'link', 'show', WAN_DEVICE]);
        const j = JSON.parse(r.stdout) as { stats64?: { tx?: { dropped?: number } } }[];
        return j[0]?.stats64?.tx?.dropped ?? 0;
      };
      return { a: await read(nsA), b: await read(nsB) };
    },
    async update(direction, params) {
      const dirs = direction === 'both' ? ['a2b', 'b2a'] : [direction === 'aToB' ? 'a2b' : 'b2a'];
      for (const d of dirs) {
        if (params.rateMbit !== undefined) await send(`set ${d} rate-bps ${params.rateMbit * 1e6}`);
        if (params.delayMs !== undefined) await send(`set ${d} delay-ns ${Math.round(params.delayMs * 1e6)}`);
        if (params.lossPct !== undefined) await send(`set ${d} loss ${params.lossPct / 100}`);
      }
    },
    async setCongestionControl(cc) {
      allowCongestionControl(cc);
      for (const side of ['a', 'b'] as const) {
        await link.exec(side, 'sysctl', ['-qw', `net.ipv4.tcp_congestion_control=${cc}`]);
      }
    },
    async congestionControl(side) {
      const r = await link.exec(side, 'sysctl', ['-n', 'net.ipv4.tcp_congestion_control']);
      return r.stdout.trim();
    },
    async stop() {
      if (stopped) return undefined;
      stopped = true;
      let final: WanLinkStats | undefined;
      for (const c of children) c.kill('SIGKILL');
      for (const ns of [nsA, nsB]) killNamespacePids(ns);
      try {
        const quit = send('quit');
        const timeout = new Promise<never>((_, reject) => {
          const t = setTimeout(() => reject(new Error('forwarder did not quit')), 3000);
          t.unref();
        });
        final = parseForwarderStats(await Promise.race([quit, timeout]));
      } catch {
        forwarder?.kill('SIGKILL');
      }
      await forwarderExit;
      for (const ns of [nsA, nsB]) await run('ip', ['netns', 'del', ns]);
      rmSync(workDir, { recursive: true, force: true });
      live.delete(emergency);
      return final;
    },
  };
  return link;
}
