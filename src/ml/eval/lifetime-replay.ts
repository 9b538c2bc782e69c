// A per-host replay of a VM trace that judges the ML service's own node scoring: best fit alone
// against best fit plus end-time alignment (src/ml/models/lifetime-placement.ts) fed predicted,
// re-predicted or true end times. The scheduler's simulator keeps hosts in bins keyed by a few flags
// and cannot carry a per-host end time, so this replay scores every host in use, one by one, with
// the very functions the service calls (`bestFitScore`, `lifetimeAlignment`).
import { bestFitScore, type PlacementNode } from '../fallback.js';
import { lifetimeAlignment } from '../models/lifetime-placement.js';
import { TimeHeap } from '../../scheduler/simulate/time-heap.js';

/** VMs in arrival order; times in seconds, sizes in vCPU and GiB. */
export interface ReplayTrace {
  readonly count: number;
  readonly arrival: Float64Array;
  /** True departure; Infinity when the VM runs past the end of the trace. */
  readonly departure: Float64Array;
  readonly cpu: Float64Array;
  readonly mem: Float64Array;
}

/** Where the end times the scorer sees come from. */
export interface EndTimeSource {
  /** Predicted lifetime (seconds) of VM `i` when it is created. */
  readonly initial: (i: number) => number;
  /**
   * Re-prediction (as LAVA does): called when VM `i` is still running at its predicted end, with
   * its age; returns the new predicted remaining lifetime (> 0). Absent: predictions are one-shot.
   */
  readonly remaining?: (i: number, ageS: number) => number;
  /**
   * Diagnostic: the lifetime the new VM is scored with, when it differs from the one its end time
   * is recorded with as a resident (e.g. predicted for the newcomer, true for residents).
   */
  readonly placing?: (i: number) => number;
}

export interface ReplayOptions {
  readonly hostCpu: number;
  readonly hostMem: number;
  /** Weight of alignment against best fit: score = w·alignment + (1 − w)·best fit; 0 = best fit alone. */
  readonly alignWeight: number;
  /**
   * Weight of an end-time match: 1 when some resident's predicted end equals the new VM's
   * (batch mates and VMs alike in size, batch and arrival get the same prediction), else 0.
   */
  readonly matchWeight?: number;
  readonly ends?: EndTimeSource;
  /** Metrics are time averages over [from, to) (default: first to last arrival). */
  readonly from?: number;
  readonly to?: number;
}

export interface ReplayResult {
  /** Time average of hosts holding at least one VM. */
  readonly meanHosts: number;
  /** Time average of the lower bound max(⌈Σcpu / C⌉, ⌈Σmem / M⌉). */
  readonly meanLowerBound: number;
  readonly peakHosts: number;
  /** Time averages of unallocated CPU and memory on hosts in use, as shares of their capacity. */
  readonly strandedCpu: number;
  readonly strandedMem: number;
  /** Hosts that became empty during the window (each could be taken for maintenance or a large VM). */
  readonly hostsEmptied: number;
  readonly repredictions: number;
}

/** Stands in for end times past the trace (censored VMs) when the oracle is asked: far, but finite. */
export const FAR_END_S = 40 * 86400;

/**
 * Replays the trace on identical hosts, as many as needed. Each VM goes to the host with the best
 * score among the hosts in use that fit it and one empty host; ties go to the lowest host index.
 * A host's end time is the latest predicted end among its residents (what `lifetimeAlignment`
 * reads from `residentEndTimesS`). Departures at a time are applied before arrivals at that time.
 */
export function replay(trace: ReplayTrace, o: ReplayOptions): ReplayResult {
  const n = trace.count;
  const C = o.hostCpu;
  const M = o.hostMem;
  const w = o.alignWeight;
  const from = o.from ?? (n > 0 ? trace.arrival[0]! : 0);
  const to = o.to ?? (n > 0 ? trace.arrival[n - 1]! : 0);
  if ((w > 0 || (o.matchWeight ?? 0) > 0) && !o.ends)
    throw new RangeError('alignWeight or matchWeight > 0 needs end times');

  const freeCpu: number[] = [];
  const freeMem: number[] = [];
  const release: number[] = [];
  const residents: number[][] = [];
  const endCounts: Map<number, number>[] = [];
  const mw = o.matchWeight ?? 0;
  const used: number[] = []; // hosts holding VMs
  const usedPos: number[] = [];
  const empty: number[] = []; // empty hosts, reused lowest index first
  const hostOf = new Int32Array(n).fill(-1);
  const slot = new Int32Array(n);
  const predEnd = new Float64Array(n);
  const firstEnd = new Float64Array(n);
  const departures = new TimeHeap();
  const overdue = new TimeHeap();
  let peak = 0;
  let activeCpu = 0;
  let activeMem = 0;
  let usedCpu = 0;
  let usedMem = 0;
  let last = from;
  let hostsInt = 0;
  let lbInt = 0;
  let strCpuInt = 0;
  let strMemInt = 0;
  let emptied = 0;
  let repredictions = 0;

  const advance = (t: number): void => {
    const a = Math.max(last, from);
    const b = Math.min(t, to);
    if (b > a) {
      const dt = b - a;
      const h = used.length;
      hostsInt += h * dt;
      lbInt += Math.max(Math.ceil(activeCpu / C - 1e-9), Math.ceil(activeMem / M - 1e-9)) * dt;
      if (h > 0) {
        strCpuInt += (1 - usedCpu / (h * C)) * dt;
        strMemInt += (1 - usedMem / (h * M)) * dt;
      }
    }
    if (t > last) last = t;
  };
  const newHost = (): number => {
    const h = freeCpu.length;
    freeCpu.push(C);
    freeMem.push(M);
    release.push(-Infinity);
    residents.push([]);
    endCounts.push(new Map());
    usedPos.push(-1);
    return h;
  };
  const recomputeRelease = (h: number): void => {
    let r = -Infinity;
    for (const v of residents[h]!) if (predEnd[v]! > r) r = predEnd[v]!;
    release[h] = r;
  };
  // Empty hosts are kept sorted by index, descending, so the last one is the lowest.
  const returnEmpty = (h: number): void => {
    let i = empty.length;
    empty.push(h);
    while (i > 0 && empty[i - 1]! < h) {
      empty[i] = empty[i - 1]!;
      i--;
    }
    empty[i] = h;
  };

  const node: { -readonly [K in keyof PlacementNode]: PlacementNode[K] } = {
    nodeId: '',
    cpuAvailable: 0,
    memoryAvailable: 0,
    cpuCapacity: C,
    memoryCapacity: M,
  };
  const ends = [0];
  const endsNone: number[] = [];
  const need = { cpu: 0, memory: 0 };
  const scoreOf = (h: number, now: number, life: number): number => {
    node.cpuAvailable = freeCpu[h]!;
    node.memoryAvailable = freeMem[h]!;
    const bf = bestFitScore(node, need);
    const match = mw > 0 && endCounts[h]!.has(now + life) ? mw : 0;
    if (w === 0) return bf + match;
    if (residents[h]!.length === 0) node.residentEndTimesS = endsNone;
    else {
      ends[0] = release[h]!;
      node.residentEndTimesS = ends;
    }
    return w * lifetimeAlignment(node, now, life) + (1 - w) * bf + match;
  };

  for (let i = 0; i < n; i++) {
    const t = trace.arrival[i]!;
    for (;;) {
      const dNext = departures.size > 0 ? departures.peekTime() : Infinity;
      const oNext = overdue.size > 0 ? overdue.peekTime() : Infinity;
      if (Math.min(dNext, oNext) > t) break;
      if (oNext < dNext) {
        const at = overdue.peekTime();
        const v = overdue.pop();
        const h = hostOf[v]!;
        if (h < 0 || predEnd[v]! !== at) continue; // departed, or re-predicted since
        const rem = Math.max(300, o.ends!.remaining!(v, at - trace.arrival[v]!));
        predEnd[v] = at + rem;
        if (predEnd[v]! > release[h]!) release[h] = predEnd[v]!;
        overdue.push(predEnd[v]!, v);
        repredictions++;
        continue;
      }
      advance(dNext);
      const v = departures.pop();
      const h = hostOf[v]!;
      hostOf[v] = -1;
      const list = residents[h]!;
      const ec = endCounts[h]!;
      const k0 = firstEnd[v]!;
      const c0 = ec.get(k0)! - 1;
      if (c0 === 0) ec.delete(k0);
      else ec.set(k0, c0);
      const s = slot[v]!;
      const lastV = list.pop()!;
      if (lastV !== v) {
        list[s] = lastV;
        slot[lastV] = s;
      }
      freeCpu[h] = freeCpu[h]! + trace.cpu[v]!;
      freeMem[h] = freeMem[h]! + trace.mem[v]!;
      activeCpu -= trace.cpu[v]!;
      activeMem -= trace.mem[v]!;
      usedCpu -= trace.cpu[v]!;
      usedMem -= trace.mem[v]!;
      if (list.length === 0) {
        freeCpu[h] = C;
        freeMem[h] = M;
        release[h] = -Infinity;
        const p = usedPos[h]!;
        const lh = used.pop()!;
        if (lh !== h) {
          used[p] = lh;
          usedPos[lh] = p;
        }
        usedPos[h] = -1;
        returnEmpty(h);
        if (dNext >= from && dNext < to) emptied++;
      } else if (predEnd[v]! >= release[h]!) recomputeRelease(h);
    }
    advance(t);

    const c = trace.cpu[i]!;
    const m = trace.mem[i]!;
    need.cpu = c;
    need.memory = m;
    const life = o.ends ? Math.max(1, o.ends.initial(i)) : 0;
    const placeLife = o.ends?.placing ? Math.max(1, o.ends.placing(i)) : life;
    let best = -1;
    let bestScore = -Infinity;
    for (let k = 0; k < used.length; k++) {
      const h = used[k]!;
      if (freeCpu[h]! < c - 1e-9 || freeMem[h]! < m - 1e-9) continue;
      const s = scoreOf(h, t, placeLife);
      if (s > bestScore || (s === bestScore && h < best)) {
        best = h;
        bestScore = s;
      }
    }
    if (empty.length === 0) returnEmpty(newHost());
    const e = empty[empty.length - 1]!;
    const se = scoreOf(e, t, placeLife);
    if (best < 0 || se > bestScore || (se === bestScore && e < best)) best = e;
    if (best === e) {
      empty.pop();
      usedPos[best] = used.length;
      used.push(best);
    }
    const h = best;
    freeCpu[h] = freeCpu[h]! - c;
    freeMem[h] = freeMem[h]! - m;
    slot[i] = residents[h]!.length;
    residents[h]!.push(i);
    hostOf[i] = h;
    predEnd[i] = o.ends ? t + life : Infinity;
    firstEnd[i] = t + placeLife;
    endCounts[h]!.set(firstEnd[i]!, (endCounts[h]!.get(firstEnd[i]!) ?? 0) + 1);
    if (predEnd[i]! > release[h]!) release[h] = predEnd[i]!;
    activeCpu += c;
    activeMem += m;
    usedCpu += c;
    usedMem += m;
    if (used.length > peak && t >= from && t < to) peak = used.length;
    const d = trace.departure[i]!;
    if (d !== Infinity) departures.push(d, i);
    if (o.ends?.remaining && predEnd[i]! < d) overdue.push(predEnd[i]!, i);
  }
  advance(to);
  const span = Math.max(1e-9, to - from);
  return {
    meanHosts: hostsInt / span,
    meanLowerBound: lbInt / span,
    peakHosts: peak,
    strandedCpu: strCpuInt / span,
    strandedMem: strMemInt / span,
    hostsEmptied: emptied,
    repredictions,
  };
}
