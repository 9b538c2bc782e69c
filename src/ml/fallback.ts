// The answers NovaCron gives without the ML service: the seed's moving average and a local best-fit scorer.
import { movingAverage } from './models/baselines.js';

/** A bandwidth answer, from the model or the local heuristic. */
export interface BandwidthAnswer {
  readonly predicted: number;
  readonly confidence: number;
  readonly lower: number;
  readonly upper: number;
  readonly modelVersion: string;
  /** `model` when the service answered, `fallback` when the local heuristic did. */
  readonly source: 'model' | 'fallback';
}

/** Version tag of the heuristic answers. */
export const FALLBACK_VERSION = 'fallback-heuristic';

/**
 * Moving average of the last 10 samples (the seed's heuristic), with a confidence from the spread
 * of those samples (1 - coefficient of variation, clamped) and a ±1.28 σ interval.
 */
export function fallbackBandwidth(history: readonly number[], defaultValue = 0): BandwidthAnswer {
  const clean = history.filter((v) => Number.isFinite(v) && v >= 0);
  if (clean.length === 0) {
    return {
      predicted: defaultValue,
      confidence: 0,
      lower: 0,
      upper: defaultValue,
      modelVersion: FALLBACK_VERSION,
      source: 'fallback',
    };
  }
  const m = movingAverage(clean, 10);
  const tail = clean.slice(-10);
  let v = 0;
  for (const x of tail) v += (x - m) ** 2;
  const sd = Math.sqrt(v / tail.length);
  const confidence = m > 0 ? Math.max(0, Math.min(1, 1 - sd / m)) : 0;
  return {
    predicted: m,
    confidence,
    lower: Math.max(0, m - 1.28 * sd),
    upper: m + 1.28 * sd,
    modelVersion: FALLBACK_VERSION,
    source: 'fallback',
  };
}

/** A candidate node as the ML bridge sees it (the seed's NodeInfo plus capacities and resident end times). */
export interface PlacementNode {
  readonly nodeId: string;
  readonly cpuAvailable: number;
  readonly memoryAvailable: number;
  readonly networkBandwidth?: number;
  readonly currentLoad?: number;
  readonly cpuCapacity?: number;
  readonly memoryCapacity?: number;
  /** Predicted end times (seconds) of the VMs running on the node. */
  readonly residentEndTimesS?: readonly number[];
}

export interface PlacementNeed {
  readonly cpu: number;
  readonly memory: number;
  readonly network?: number;
}

export interface NodeScoreAnswer {
  readonly nodeId: string;
  /** In [0, 1]; higher is better. */
  readonly score: number;
  readonly reason: string;
}

export interface PlacementAnswer {
  /** Empty when no node fits. */
  readonly selectedNodeId: string;
  readonly confidence: number;
  readonly reasoning: string;
  readonly scores: readonly NodeScoreAnswer[];
  readonly modelVersion: string;
  readonly predictedLifetimeClass?: number;
  readonly predictedLifetimeS?: number;
  readonly source: 'model' | 'fallback';
}

/** Whether `node` has room for `need` (CPU, memory and, when both are given, network). */
export function fits(node: PlacementNode, need: PlacementNeed): boolean {
  if (node.cpuAvailable < need.cpu || node.memoryAvailable < need.memory) return false;
  if (
    need.network !== undefined &&
    need.network > 0 &&
    node.networkBandwidth !== undefined &&
    node.networkBandwidth > 0
  ) {
    return node.networkBandwidth >= need.network;
  }
  return true;
}

/**
 * Best fit: the share of the node's capacity that would be in use after placing (mean of CPU and
 * memory); without capacities, the inverse of what would be left. Packs tightly, like the
 * scheduler's binpack scorer.
 */
export function bestFitScore(node: PlacementNode, need: PlacementNeed): number {
  const cpuCap = node.cpuCapacity && node.cpuCapacity > 0 ? node.cpuCapacity : undefined;
  const memCap = node.memoryCapacity && node.memoryCapacity > 0 ? node.memoryCapacity : undefined;
  if (cpuCap !== undefined && memCap !== undefined) {
    const cpuUsed = 1 - (node.cpuAvailable - need.cpu) / cpuCap;
    const memUsed = 1 - (node.memoryAvailable - need.memory) / memCap;
    return Math.max(0, Math.min(1, (cpuUsed + memUsed) / 2));
  }
  const leftCpu = node.cpuAvailable - need.cpu;
  const leftMem = node.memoryAvailable - need.memory;
  return (
    1 / (1 + Math.max(0, leftCpu) / Math.max(need.cpu, 1) + Math.max(0, leftMem) / Math.max(need.memory, 1))
  );
}

/** The local placement answer: best fit among the nodes that fit, ties to the first listed. */
export function fallbackPlacement(nodes: readonly PlacementNode[], need: PlacementNeed): PlacementAnswer {
  const scores = nodes
    .filter((n) => fits(n, need))
    .map((n) => ({ nodeId: n.nodeId, score: bestFitScore(n, need), reason: 'best fit (local fallback)' }));
  const ranked = [...scores].sort((a, b) => b.score - a.score);
  const best = ranked[0];
  return {
    selectedNodeId: best?.nodeId ?? '',
    confidence: best ? 0.5 : 0,
    reasoning: best ? `best fit among ${scores.length} feasible nodes (ML service not used)` : 'no node fits',
    scores: ranked,
    modelVersion: FALLBACK_VERSION,
    source: 'fallback',
  };
}
