// Pure part of the WAN link emulator: validates options, resolves per-direction parameters,
// parses bandwidth traces and builds the forwarder's argv. No I/O here (see link.ts).
import { ValidationError } from '../../src/errors.js';

/** Congestion controls a namespace can be switched to (must be in the kernel's available list). */
export const CongestionControl = { Bbr: 'bbr', Cubic: 'cubic', Reno: 'reno' } as const;
export type CongestionControl = (typeof CongestionControl)[keyof typeof CongestionControl];

/** One sample of a bandwidth trace: from `timeS` (seconds) on, the link runs at `mbps`. */
export interface TracePoint {
  readonly timeS: number;
  readonly mbps: number;
}

/** Shape of one direction of the link. Every field optional: unset means "no impairment". */
export interface WanDirectionOptions {
  /** Bottleneck rate in Mbit/s. Unset or 0 = unlimited (forwarder speed). Ignored when `trace` is set. */
  readonly rateMbit?: number;
  /** One-way propagation delay in ms (the RTT is the sum of both directions). */
  readonly delayMs?: number;
  /** Random (Bernoulli) loss, percent of packets, applied before the queue. */
  readonly lossPct?: number;
  /** Drop-tail queue limit in bytes at the bottleneck. */
  readonly queueBytes?: number;
  /** Drop-tail queue limit as queueing delay in ms at the bottleneck. */
  readonly queueMs?: number;
  /**
   * Bandwidth trace driving the rate, looped when it ends (as Mahimahi does): a path to a
   * Pensieve-format file (`time_s throughput_Mbps` per line) or the points themselves.
   */
  readonly trace?: string | readonly TracePoint[];
  /** Multiplies every trace rate (traces of 0–8 Mbit/s can drive a faster link). Default 1. */
  readonly traceScale?: number;
}

export interface WanLinkOptions extends WanDirectionOptions {
  /** Seed of the loss generator; same seed and same packet sequence = same drops. Default 1. */
  readonly seed?: number;
  /** Default TCP congestion control of both namespaces. Unset = inherit the host default. */
  readonly congestionControl?: CongestionControl;
  /** MTU of both TUN devices. Default 1500. */
  readonly mtu?: number;
  /**
   * Run the forwarder under SCHED_FIFO (falling back to nice -10) so a busy host does not turn its
   * late wake-ups into bursts and extra delay. Default true.
   */
  readonly realtime?: boolean;
  /** Overrides for the A→B direction (on top of the shared fields). */
  readonly aToB?: WanDirectionOptions;
  /** Overrides for the B→A direction (on top of the shared fields). */
  readonly bToA?: WanDirectionOptions;
}

/** A trace ready for the forwarder: segment starts from 0, rates in bit/s, loop period. */
export interface NormalisedTrace {
  readonly periodNs: number;
  readonly segments: readonly { readonly startNs: number; readonly bps: number }[];
  readonly meanMbit: number;
  readonly maxMbit: number;
}

/** Parameters of one direction after defaults, in forwarder units. */
export interface ResolvedDirection {
  /** bit/s; 0 = unlimited. With a trace, this is the trace mean (for reporting and queue sizing). */
  readonly rateBps: number;
  readonly delayNs: number;
  /** Probability in [0, 1]. */
  readonly loss: number;
  /** 0 = no byte limit. */
  readonly queueBytes: number;
  /** 0 = no time limit. */
  readonly queueNs: number;
  readonly trace: NormalisedTrace | undefined;
}

export interface ResolvedLink {
  readonly aToB: ResolvedDirection;
  readonly bToA: ResolvedDirection;
  readonly seed: number;
  readonly mtu: number;
  readonly congestionControl: CongestionControl | undefined;
  readonly realtime: boolean;
}

/** Smallest default queue: 100 full-size packets, so short-RTT links still absorb a burst. */
export const MIN_DEFAULT_QUEUE_BYTES = 150_000;

/**
 * Parses a Pensieve/Mahimahi-style trace: `time_s throughput_Mbps` per line (tabs or spaces),
 * blank lines and `#` comments ignored. Times must increase strictly.
 */
export function parseBandwidthTrace(text: string, source = 'trace'): TracePoint[] {
  const points: TracePoint[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const cols = line.split(/[\s,]+/);
    const timeS = Number(cols[0]);
    const mbps = Number(cols[1]);
    if (cols.length < 2 || !Number.isFinite(timeS) || !Number.isFinite(mbps) || mbps < 0) {
      throw new ValidationError(`${source}:${i + 1}: expected "time_s throughput_Mbps", got "${line}"`, {
        key: source,
      });
    }
    const prev = points.at(-1);
    if (prev && timeS <= prev.timeS) {
      throw new ValidationError(
        `${source}:${i + 1}: time ${timeS} does not increase (previous ${prev.timeS})`,
        {
          key: source,
        },
      );
    }
    points.push({ timeS, mbps });
  }
  if (points.length === 0) throw new ValidationError(`${source}: no samples`, { key: source });
  return points;
}

/**
 * Turns trace points into forwarder segments. Each sample's rate holds until the next sample; the
 * last one holds for the previous step (or 1 s for a one-sample trace); the trace then loops.
 */
export function normaliseTrace(points: readonly TracePoint[], scale = 1, source = 'trace'): NormalisedTrace {
  const first = points[0];
  if (!first) throw new ValidationError(`${source}: no samples`, { key: source });
  if (!(scale > 0)) throw new ValidationError(`traceScale must be > 0, got ${scale}`, { key: 'traceScale' });
  const last = points.at(-1) ?? first;
  const beforeLast = points.at(-2);
  const lastStep = beforeLast ? last.timeS - beforeLast.timeS : 1;
  const periodS = last.timeS - first.timeS + lastStep;
  const segments: { startNs: number; bps: number }[] = [];
  let weighted = 0;
  let maxMbit = 0;
  for (const [i, p] of points.entries()) {
    const next = points[i + 1];
    const lenS = next ? next.timeS - p.timeS : lastStep;
    const mbps = p.mbps * scale;
    weighted += mbps * lenS;
    maxMbit = Math.max(maxMbit, mbps);
    const startNs = Math.round((p.timeS - first.timeS) * 1e9);
    const prev = segments.at(-1);
    if (prev && prev.startNs === startNs) continue; // sub-nanosecond step: keep the first
    segments.push({ startNs, bps: mbps * 1e6 });
  }
  if (maxMbit <= 0) throw new ValidationError(`${source}: every rate is zero`, { key: source });
  return { periodNs: Math.round(periodS * 1e9), segments, meanMbit: weighted / periodS, maxMbit };
}

/** The file the forwarder reads: period on the first line, then `start_ns bps` per segment. */
export function formatTraceForForwarder(trace: NormalisedTrace): string {
  return [String(trace.periodNs), ...trace.segments.map((s) => `${s.startNs} ${s.bps}`)].join('\n') + '\n';
}

function nonNegative(name: string, v: number | undefined, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isFinite(v) || v < 0 || v > max) {
    throw new ValidationError(`${name} must be a number in [0, ${max}], got ${v}`, { key: name });
  }
  return v;
}

/**
 * Resolves one direction. `loadTrace` turns a trace path into its points (I/O is the caller's).
 * Default queue: one bandwidth-delay product of the whole path (`rttNs`), at least
 * MIN_DEFAULT_QUEUE_BYTES, so a loss-based sender can fill the pipe; unlimited links get none.
 */
export function resolveDirection(
  shared: WanDirectionOptions,
  own: WanDirectionOptions | undefined,
  rttNs: number,
  loadTrace: (path: string) => readonly TracePoint[],
): ResolvedDirection {
  const o: WanDirectionOptions = { ...shared, ...own };
  const rateMbit = nonNegative('rateMbit', o.rateMbit, 1e5) ?? 0;
  const delayMs = nonNegative('delayMs', o.delayMs, 60_000) ?? 0;
  const lossPct = nonNegative('lossPct', o.lossPct, 100) ?? 0;
  const queueBytes = nonNegative('queueBytes', o.queueBytes);
  const queueMs = nonNegative('queueMs', o.queueMs, 60_000);
  let trace: NormalisedTrace | undefined;
  if (o.trace !== undefined) {
    const source = typeof o.trace === 'string' ? o.trace : 'trace';
    const points = typeof o.trace === 'string' ? loadTrace(o.trace) : o.trace;
    trace = normaliseTrace(points, o.traceScale ?? 1, source);
  }
  const rateBps = trace ? trace.meanMbit * 1e6 : rateMbit * 1e6;
  let qBytes = queueBytes ?? 0;
  if (queueBytes === undefined && queueMs === undefined && rateBps > 0) {
    const peakBps = trace ? trace.maxMbit * 1e6 : rateBps;
    qBytes = Math.max(MIN_DEFAULT_QUEUE_BYTES, Math.round((peakBps * rttNs) / 8e9));
  }
  return {
    rateBps,
    delayNs: Math.round(delayMs * 1e6),
    loss: lossPct / 100,
    queueBytes: Math.round(qBytes),
    queueNs: Math.round((queueMs ?? 0) * 1e6),
    trace,
  };
}

/** Resolves the whole link: both directions, seed, MTU and congestion control. */
export function resolveLink(
  options: WanLinkOptions,
  loadTrace: (path: string) => readonly TracePoint[],
): ResolvedLink {
  const { aToB, bToA, seed, mtu, congestionControl, realtime, ...shared } = options;
  const oneWay = (own: WanDirectionOptions | undefined): number =>
    (own?.delayMs ?? shared.delayMs ?? 0) * 1e6;
  const rttNs = oneWay(aToB) + oneWay(bToA);
  if (seed !== undefined && (!Number.isSafeInteger(seed) || seed < 0)) {
    throw new ValidationError(`seed must be a non-negative integer, got ${seed}`, { key: 'seed' });
  }
  const m = mtu ?? 1500;
  if (!Number.isInteger(m) || m < 576 || m > 2000) {
    throw new ValidationError(`mtu must be an integer in [576, 2000], got ${m}`, { key: 'mtu' });
  }
  if (congestionControl !== undefined && !Object.values(CongestionControl).includes(congestionControl)) {
    throw new ValidationError(`unknown congestion control ${String(congestionControl)}`, {
      key: 'congestionControl',
    });
  }
  return {
    aToB: resolveDirection(shared, aToB, rttNs, loadTrace),
    bToA: resolveDirection(shared, bToA, rttNs, loadTrace),
    seed: seed ?? 1,
    mtu: m,
    congestionControl,
    realtime: realtime ?? true,
  };
}

/** Forwarder arguments for one direction; `traceFile` is where the caller wrote its trace. */
export function directionArgs(
  name: 'a2b' | 'b2a',
  d: ResolvedDirection,
  traceFile: string | undefined,
): string[] {
  const args = ['--dir', name];
  if (d.trace) {
    if (traceFile === undefined) throw new ValidationError(`${name}: trace file path missing`);
    args.push('--trace', traceFile);
  } else {
    args.push('--rate-bps', String(d.rateBps));
  }
  args.push('--delay-ns', String(d.delayNs), '--loss', String(d.loss));
  args.push('--queue-bytes', String(d.queueBytes), '--queue-ns', String(d.queueNs));
  return args;
}

/** The RTT a probe should see on an idle link: both one-way delays plus serialising `probeBytes` each way. */
export function idleRttMs(link: ResolvedLink, probeBytes = 64): number {
  const ser = (d: ResolvedDirection): number => (d.rateBps > 0 ? (probeBytes * 8 * 1e3) / d.rateBps : 0);
  return (link.aToB.delayNs + link.bToA.delayNs) / 1e6 + ser(link.aToB) + ser(link.bToA);
}

/** Per-direction counters reported by the forwarder. */
export interface WanDirectionStats {
  readonly rxPackets: number;
  readonly rxBytes: number;
  readonly lossDrops: number;
  readonly queueDrops: number;
  readonly overflowDrops: number;
  readonly txPackets: number;
  readonly txBytes: number;
  readonly writeErrors: number;
  readonly inFlight: number;
  readonly maxQueueDelayNs: number;
}

export interface WanLinkStats {
  readonly uptimeNs: number;
  readonly aToB: WanDirectionStats;
  readonly bToA: WanDirectionStats;
}

const STAT_KEYS = [
  'rxPackets',
  'rxBytes',
  'lossDrops',
  'queueDrops',
  'overflowDrops',
  'txPackets',
  'txBytes',
  'writeErrors',
  'inFlight',
  'maxQueueDelayNs',
] as const;

function parseDirStats(v: unknown, name: string): WanDirectionStats {
  if (typeof v !== 'object' || v === null) throw new ValidationError(`forwarder stats: ${name} missing`);
  const rec = v as Record<string, unknown>;
  const out: Record<string, number> = {};
  for (const k of STAT_KEYS) {
    const n = rec[k];
    if (typeof n !== 'number') throw new ValidationError(`forwarder stats: ${name}.${k} is not a number`);
    out[k] = n;
  }
  return out as unknown as WanDirectionStats;
}

/** Parses a `{"type":"stats",...}` line from the forwarder. */
export function parseForwarderStats(line: string): WanLinkStats {
  const v = JSON.parse(line) as Record<string, unknown>;
  if (v['type'] !== 'stats' || typeof v['uptimeNs'] !== 'number') {
    throw new ValidationError(`forwarder: not a stats line: ${line}`);
  }
  return {
    uptimeNs: v['uptimeNs'],
    aToB: parseDirStats(v['a2b'], 'a2b'),
    bToA: parseDirStats(v['b2a'], 'b2a'),
  };
}

/** Namespace names carry the owner's pid so a later run can tell stale ones from live ones. */
export const NAMESPACE_PREFIX = 'nc-wan-';

export function namespaceNames(pid: number, serial: number): { id: string; nsA: string; nsB: string } {
  const id = `${pid}-${serial}`;
  return { id, nsA: `${NAMESPACE_PREFIX}a-${id}`, nsB: `${NAMESPACE_PREFIX}b-${id}` };
}

/** The owner pid of one of our namespaces, or undefined for names that are not ours. */
export function namespaceOwner(name: string): number | undefined {
  const m = /^nc-wan-[ab]-(\d+)-\d+$/.exec(name);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}
