// Network mode decision (pure): datacenter, internet or hybrid from RDMA presence, measured RTT to
// peers and measured bandwidth, with a confidence and a reason an operator can read. An explicit
// `system.mode` always wins. The probes that feed it live in mode-probe.ts.
import type { NetworkMode, NovaCronConfig } from './schema.js';

/** RTT below this is datacenter. */
export const DATACENTER_MAX_RTT_MS = 10;
/** RTT above this is internet; in between is hybrid. */
export const INTERNET_MIN_RTT_MS = 50;
/** Measured bandwidth at or above this supports datacenter. */
export const DATACENTER_MIN_BANDWIDTH_MBPS = 10_000;
/** Measured bandwidth below this supports internet. */
export const INTERNET_MAX_BANDWIDTH_MBPS = 1_000;

/** What was measured about one configured peer. */
export interface PeerRtt {
  readonly name: string;
  readonly url: string;
  /** Median TCP connect time over the samples; undefined when the peer could not be measured. */
  readonly rttMs: number | undefined;
  readonly samples: readonly number[];
  /** Why it could not be measured (timeout, DNS failure, bad URL). */
  readonly error?: string;
}

export interface ModeProbes {
  /** RDMA device names under /sys/class/infiniband; undefined when that could not be checked. */
  readonly rdmaDevices: readonly string[] | undefined;
  readonly peers: readonly PeerRtt[];
  /** Measured bandwidth to peers in Mbit/s, where known (e.g. from DWCP goodput). */
  readonly bandwidthMbps?: number | undefined;
}

export interface ModeDecision {
  readonly mode: NetworkMode;
  /** 0..1: how sure the decision is (1 for an explicit mode). */
  readonly confidence: number;
  /** One sentence for operators: the evidence and the rule applied. */
  readonly reason: string;
  /** True when `system.mode` was set, so nothing was detected. */
  readonly explicit: boolean;
}

/** Mode suggested by one RTT. */
export function classifyRtt(rttMs: number): NetworkMode {
  if (rttMs < DATACENTER_MAX_RTT_MS) return 'datacenter';
  if (rttMs > INTERNET_MIN_RTT_MS) return 'internet';
  return 'hybrid';
}

/** Mode suggested by a measured bandwidth. */
export function classifyBandwidth(mbps: number): NetworkMode {
  if (mbps >= DATACENTER_MIN_BANDWIDTH_MBPS) return 'datacenter';
  if (mbps < INTERNET_MAX_BANDWIDTH_MBPS) return 'internet';
  return 'hybrid';
}

const round = (n: number) => (n < 10 ? n.toFixed(2) : n.toFixed(0));
const clamp = (c: number) => Math.round(Math.min(0.99, Math.max(0.05, c)) * 100) / 100;

/** True when an RTT lies within 25% of a threshold, where noise could flip the class. */
function nearThreshold(rtt: number): boolean {
  return [DATACENTER_MAX_RTT_MS, INTERNET_MIN_RTT_MS].some((t) => Math.abs(rtt - t) <= t * 0.25);
}

/**
 * Decides the network mode. Rules, in order:
 * 1. `system.mode` other than auto: that mode, confidence 1, explicit.
 * 2. Peers answered: each peer's median RTT is classed (< 10 ms datacenter, > 50 ms internet,
 *    else hybrid); all alike gives that class, a mix gives hybrid. RDMA raises a datacenter
 *    decision's confidence and turns an internet one into hybrid (local fabric, remote peers).
 *    Measured bandwidth that agrees raises confidence, that disagrees lowers it.
 * 3. No RTT but an RDMA device: datacenter.
 * 4. Only bandwidth known: its class, low confidence.
 * 5. Nothing measured (single node, or every peer silent): datacenter, low confidence.
 */
export function detectNetworkMode(config: NovaCronConfig, probes: ModeProbes): ModeDecision {
  const setting = config.system.mode;
  if (setting !== 'auto') {
    return { mode: setting, confidence: 1, reason: `system.mode is set to ${setting}`, explicit: true };
  }
  const rdma = probes.rdmaDevices ?? [];
  const rdmaText = rdma.length ? `RDMA device${rdma.length > 1 ? 's' : ''} ${rdma.join(', ')} present` : '';
  const measured = probes.peers.filter((p): p is PeerRtt & { rttMs: number } => p.rttMs !== undefined);
  const silent = probes.peers.filter((p) => p.rttMs === undefined);
  const bw = probes.bandwidthMbps;
  const silentText = silent.length
    ? `; no answer from ${silent.map((p) => `${p.name}${p.error ? ` (${p.error})` : ''}`).join(', ')}`
    : '';

  if (measured.length) {
    const classes = new Set(measured.map((p) => classifyRtt(p.rttMs)));
    let mode: NetworkMode = classes.size === 1 ? [...classes][0]! : 'hybrid';
    let confidence = classes.size === 1 ? 0.9 : 0.75;
    const rttText = measured.map((p) => `${p.name} ${round(p.rttMs)} ms`).join(', ');
    let reason =
      classes.size === 1
        ? `median RTT to peers ${rttText}: ${ruleText(mode)}`
        : `median RTT to peers ${rttText} spans ${[...classes].join(' and ')}: hybrid`;
    if (measured.some((p) => nearThreshold(p.rttMs))) confidence -= 0.2;
    if (measured.length === 1) confidence -= 0.1;
    confidence *= measured.length / probes.peers.length;
    if (rdma.length) {
      if (mode === 'datacenter') {
        confidence += 0.05;
        reason += `; ${rdmaText}`;
      } else if (mode === 'internet') {
        mode = 'hybrid';
        confidence = Math.min(confidence, 0.6);
        reason += `; but ${rdmaText}, so a local fabric with remote peers: hybrid`;
      } else {
        reason += `; ${rdmaText}`;
      }
    }
    if (bw !== undefined) {
      const bwMode = classifyBandwidth(bw);
      if (bwMode === mode) {
        confidence += 0.05;
        reason += `; measured bandwidth ${round(bw)} Mbit/s agrees`;
      } else {
        confidence -= 0.15;
        reason += `; measured bandwidth ${round(bw)} Mbit/s suggests ${bwMode}`;
      }
    }
    return { mode, confidence: clamp(confidence), reason: reason + silentText, explicit: false };
  }
  if (rdma.length) {
    const bwText = bw !== undefined ? `; measured bandwidth ${round(bw)} Mbit/s` : '';
    return {
      mode: 'datacenter',
      confidence: clamp(silent.length ? 0.6 : 0.7),
      reason: `${rdmaText} and no peer RTT measured: datacenter${bwText}${silentText}`,
      explicit: false,
    };
  }
  if (bw !== undefined) {
    const mode = classifyBandwidth(bw);
    return {
      mode,
      confidence: 0.4,
      reason: `no RTT measured; measured bandwidth ${round(bw)} Mbit/s suggests ${mode}${silentText}`,
      explicit: false,
    };
  }
  if (silent.length) {
    return {
      mode: 'datacenter',
      confidence: 0.2,
      reason: `none of the ${silent.length} configured peer${silent.length > 1 ? 's' : ''} answered and no RDMA device: assuming datacenter${silentText}`,
      explicit: false,
    };
  }
  return {
    mode: 'datacenter',
    confidence: 0.3,
    reason: 'no peers configured and no RDMA device: single node, assuming datacenter',
    explicit: false,
  };
}

function ruleText(mode: NetworkMode): string {
  switch (mode) {
    case 'datacenter':
      return `all below ${DATACENTER_MAX_RTT_MS} ms, datacenter`;
    case 'internet':
      return `all above ${INTERNET_MIN_RTT_MS} ms, internet`;
    case 'hybrid':
      return `between ${DATACENTER_MAX_RTT_MS} and ${INTERNET_MIN_RTT_MS} ms, hybrid`;
  }
}
