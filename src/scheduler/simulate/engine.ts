// Replays a trace (arrivals and departures in time order) against a host pool with one strategy.
// Hosts with the same capacity, allocation and scorer-visible flags (holds short / long VMs, holds
// a VM up for ANCHOR_AGE_SECONDS) are interchangeable for every usage scorer, so they are kept in
// bins keyed by that state: a VM is scored once per bin, not once per host, with the very scorer
// functions the scheduler uses. VMs crossing the anchor age are aging events in time order. Within a bin, and between bins of equal
// score, the host with the lowest tie-break rank wins, as in the scheduler.
import type { ResolvedStrategy } from '../registry.js';
import { TieBreak } from '../registry.js';
import { seededRank } from '../tie-break.js';
import type { LifetimeClass, NodeUsage, Resources } from '../types.js';
import type { HostPool, PlacementTrace } from './trace.js';
import { LIFETIME_CODE } from './trace.js';
import { ANCHOR, ANCHOR_AGE_SECONDS } from '../scorers/anchor.js';
import { TimeHeap } from './time-heap.js';

/** What one strategy did with one trace. */
export interface SimulationResult {
  readonly strategy: string;
  readonly placed: number;
  readonly rejected: number;
  /** Rejected over all VMs (meaningful for a fixed number of hosts). */
  readonly rejectionRate: number;
  /** Time average of hosts in use divided by the lower bound, over the arrival window. */
  readonly meanHostsOverLowerBound: number;
  /** Time averages of hosts in use and of the lower bound. */
  readonly meanHosts: number;
  readonly meanLowerBound: number;
  readonly peakHosts: number;
  /** Hosts in use and the lower bound at evenly spaced times over the window. */
  readonly hostsOverTime: readonly {
    readonly time: number;
    readonly hosts: number;
    readonly lowerBound: number;
  }[];
  /** Host index of each VM (-1 when rejected); hosts are `host-<index>`. */
  readonly hostOf: Int32Array;
}

/** Scorer inputs for one bin; `allocated` is the bin's state, shared by all its hosts. */
interface Bin {
  readonly key: string;
  readonly cls: number;
  readonly usedCpu: number;
  readonly usedMem: number;
  readonly view: NodeUsage;
  readonly heap: MinHeap;
  /** Position in the live bin list, for O(1) removal. */
  pos: number;
}

/**
 * A binary min-heap of host indices ordered by the host's tie-break rank. `pos` (shared by all
 * heaps: a host sits in exactly one) records each host's slot, so removal is O(log n).
 * Exported for its own test only.
 */
export class MinHeap {
  readonly items: number[] = [];
  constructor(
    private readonly rank: number[],
    private readonly pos: number[],
  ) {}
  get size(): number {
    return this.items.length;
  }
  top(): number {
    return this.items[0]!;
  }
  push(h: number): void {
    this.items.push(h);
    this.siftUp(this.items.length - 1, h);
  }
  remove(h: number): void {
    const a = this.items;
    const i = this.pos[h]!;
    const last = a.pop()!;
    if (i === a.length) return;
    this.siftDown(i, last);
    if (a[i] === last) this.siftUp(i, last);
  }
  private place(i: number, h: number): void {
    this.items[i] = h;
    this.pos[h] = i;
  }
  private siftUp(i: number, h: number): void {
    const a = this.items;
    const r = this.rank[h]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.rank[a[p]!]! <= r) break;
      this.place(i, a[p]!);
      i = p;
    }
    this.place(i, h);
  }
  private siftDown(i: number, h: number): void {
    const a = this.items;
    const n = a.length;
    const r = this.rank[h]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && this.rank[a[c + 1]!]! < this.rank[a[c]!]!) c++;
      if (this.rank[a[c]!]! >= r) break;
      this.place(i, a[c]!);
      i = c;
    }
    this.place(i, h);
  }
}

/** Lower bound on hosts for an active demand: identical hosts use ⌈demand / capacity⌉ per resource; a heterogeneous pool the fewest largest hosts that cover it. */
function lowerBoundFn(pool: HostPool): (cpu: number, mem: number) => number {
  if (pool.kind === 'uniform')
    return (c, m) => Math.max(Math.ceil(c / pool.cpuMilli), Math.ceil(m / pool.memoryMib));
  const prefix = (caps: Int32Array): Float64Array => {
    const s = Array.from(caps).sort((a, b) => b - a);
    const p = new Float64Array(s.length + 1);
    s.forEach((x, i) => (p[i + 1] = p[i]! + x));
    return p;
  };
  const pc = prefix(pool.cpuMilli);
  const pm = prefix(pool.memoryMib);
  const need = (p: Float64Array, d: number): number => {
    let lo = 0;
    let hi = p.length - 1;
    if (d > p[hi]!) return hi;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (p[mid]! >= d) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  return (c, m) => Math.max(need(pc, c), need(pm, m));
}

const SAMPLES = 100;

/**
 * Replays `trace` on `pool` with `strategy` (its usage scorers only: hints and group constraints
 * do not exist in traces). Departures at a time are applied before arrivals at that time.
 */
export function simulate(
  trace: PlacementTrace,
  pool: HostPool,
  strategy: ResolvedStrategy,
): SimulationResult {
  const scorers = strategy.scorers.filter((s) => s.plugin.usage !== undefined);
  const fns = scorers.map((s) => s.plugin.usage!);
  const ws = scorers.map((s) => s.weight);
  const wsum = ws.reduce((a, b) => a + b, 0);
  const nScorers = fns.length;
  const seeded = strategy.tieBreak === TieBreak.Seeded;

  // Capacity classes: one per distinct host shape.
  const classCpu: number[] = [];
  const classMem: number[] = [];
  const classOf = new Map<string, number>();
  const classFor = (c: number, m: number): number => {
    const key = `${c}/${m}`;
    let k = classOf.get(key);
    if (k === undefined) {
      k = classCpu.length;
      classOf.set(key, k);
      classCpu.push(c);
      classMem.push(m);
    }
    return k;
  };

  // Host state, growable.
  const hostCls: number[] = [];
  const hostCpu: number[] = [];
  const hostMem: number[] = [];
  const hostVms: number[] = [];
  const hostShort: number[] = [];
  const hostLong: number[] = [];
  const hostOld: number[] = [];
  const rank: number[] = [];
  const heapPos: number[] = [];
  const hostBin: Bin[] = [];
  const bins = new Map<string, Bin>();
  const live: Bin[] = [];

  // The lifetime scorer only asks whether a host holds short / long VMs, so two flags suffice.
  const binFor = (
    cls: number,
    usedCpu: number,
    usedMem: number,
    short: number,
    long: number,
    old: number,
  ): Bin => {
    const key = `${cls}/${usedCpu}/${usedMem}/${short}${long}${old}`;
    let b = bins.get(key);
    if (!b) {
      b = {
        key,
        cls,
        usedCpu,
        usedMem,
        view: {
          capacity: { cpus: classCpu[cls]! / 1000, memoryMib: classMem[cls]!, diskGib: 0 },
          allocated: { cpus: usedCpu / 1000, memoryMib: usedMem, diskGib: 0 },
          lifetimes: { short, long },
          longRunning: old,
        },
        heap: new MinHeap(rank, heapPos),
        pos: -1,
      };
      bins.set(key, b);
    }
    return b;
  };
  const addToBin = (h: number, b: Bin): void => {
    b.heap.push(h);
    hostBin[h] = b;
    if (b.pos < 0) {
      b.pos = live.length;
      live.push(b);
    }
  };
  const removeFromBin = (h: number): void => {
    const b = hostBin[h]!;
    b.heap.remove(h);
    if (b.heap.size === 0) {
      const last = live.pop()!;
      if (last !== b) {
        live[b.pos] = last;
        last.pos = b.pos;
      }
      b.pos = -1;
      bins.delete(b.key);
    }
  };
  const openHost = (cls: number): number => {
    const h = hostCls.length;
    hostCls.push(cls);
    hostCpu.push(0);
    hostMem.push(0);
    hostVms.push(0);
    hostShort.push(0);
    hostLong.push(0);
    hostOld.push(0);
    rank.push(seeded ? seededRank(strategy.seed, `host-${h}`) : h);
    heapPos.push(-1);
    addToBin(h, binFor(cls, 0, 0, 0, 0, 0));
    return h;
  };

  const unbounded = pool.kind === 'uniform' && pool.limit === undefined;
  if (pool.kind === 'uniform') {
    const cls = classFor(pool.cpuMilli, pool.memoryMib);
    const n = pool.limit ?? 1; // unbounded pools keep one spare empty host, opened on demand
    for (let i = 0; i < n; i++) openHost(cls);
  } else {
    for (let i = 0; i < pool.cpuMilli.length; i++) openHost(classFor(pool.cpuMilli[i]!, pool.memoryMib[i]!));
  }

  const lowerBound = lowerBoundFn(pool);
  const n = trace.count;
  const vmHost = new Int32Array(n).fill(-1);
  const departures = new TimeHeap();
  const aging = new TimeHeap();
  const isOld = new Uint8Array(n);
  // Only strategies that read `longRunning` need the aging events (they cost a heap operation per VM).
  const useAnchor = strategy.scorers.some((x) => x.plugin.name === ANCHOR);
  let hostsInUse = 0;
  let peakHosts = 0;
  let activeCpu = 0;
  let activeMem = 0;
  let placed = 0;
  const start = n > 0 ? trace.arrival[0]! : 0;
  const end = n > 0 ? trace.arrival[n - 1]! : 0;
  let lastTime = start;
  let ratioIntegral = 0;
  let hostsIntegral = 0;
  let lbIntegral = 0;
  let ratioTime = 0;
  const series: { time: number; hosts: number; lowerBound: number }[] = [];
  let nextSample = start;
  const sampleStep = (end - start) / SAMPLES;

  const advance = (t: number): void => {
    if (t <= lastTime) return;
    const lb = lowerBound(activeCpu, activeMem);
    const dt = Math.min(t, end) - lastTime;
    if (dt > 0) {
      if (lb > 0) {
        ratioIntegral += (hostsInUse / lb) * dt;
        ratioTime += dt;
      }
      hostsIntegral += hostsInUse * dt;
      lbIntegral += lb * dt;
    }
    while (nextSample < t && nextSample <= end && series.length < SAMPLES) {
      series.push({ time: nextSample, hosts: hostsInUse, lowerBound: lb });
      nextSample += sampleStep > 0 ? sampleStep : Infinity;
    }
    lastTime = t;
  };
  const rebin = (h: number): void => {
    const flag = (x: number): number => (x > 0 ? 1 : 0);
    addToBin(
      h,
      binFor(
        hostCls[h]!,
        hostCpu[h]!,
        hostMem[h]!,
        flag(hostShort[h]!),
        flag(hostLong[h]!),
        flag(hostOld[h]!),
      ),
    );
  };
  const move = (h: number, dCpu: number, dMem: number, dVms: number, lifetime: number): void => {
    removeFromBin(h);
    if (lifetime === LIFETIME_CODE.short) hostShort[h] = hostShort[h]! + dVms;
    else if (lifetime === LIFETIME_CODE.long) hostLong[h] = hostLong[h]! + dVms;
    const before = hostVms[h]!;
    hostCpu[h] = hostCpu[h]! + dCpu;
    hostMem[h] = hostMem[h]! + dMem;
    hostVms[h] = before + dVms;
    if (before === 0 && hostVms[h]! > 0) hostsInUse++;
    if (before > 0 && hostVms[h] === 0) hostsInUse--;
    rebin(h);
  };

  const resources = { cpus: 0, memoryMib: 0, diskGib: 0 };
  const demand: { resources: Resources; lifetime: LifetimeClass | undefined } = {
    resources,
    lifetime: undefined,
  };
  const classes = [undefined, 'short', 'long'] as const;
  for (let i = 0; i < n; i++) {
    const t = trace.arrival[i]!;
    while ((departures.size > 0 && departures.peekTime() <= t) || (aging.size > 0 && aging.peekTime() <= t)) {
      if (aging.size > 0 && (departures.size === 0 || aging.peekTime() < departures.peekTime())) {
        advance(aging.peekTime());
        const v = aging.pop();
        const h = vmHost[v]!;
        // Aging events are only queued for VMs still running then, so the VM is on host h;
        // the host changes bin only when it becomes anchored.
        isOld[v] = 1;
        hostOld[h] = hostOld[h]! + 1;
        if (hostOld[h] === 1) {
          removeFromBin(h);
          rebin(h);
        }
        continue;
      }
      const dt = departures.peekTime();
      advance(dt);
      const v = departures.pop();
      const h = vmHost[v]!;
      if (isOld[v]) {
        hostOld[h] = hostOld[h]! - 1;
        isOld[v] = 0;
      }
      move(h, -trace.cpuMilli[v]!, -trace.memoryMib[v]!, -1, trace.lifetime[v]!);
      activeCpu -= trace.cpuMilli[v]!;
      activeMem -= trace.memoryMib[v]!;
    }
    advance(t);
    const cpu = trace.cpuMilli[i]!;
    const mem = trace.memoryMib[i]!;
    resources.cpus = cpu / 1000;
    resources.memoryMib = mem;
    demand.lifetime = classes[trace.lifetime[i]!];
    let best: Bin | undefined;
    let bestScore = -Infinity;
    let bestRank = Infinity;
    for (let b = 0; b < live.length; b++) {
      const bin = live[b]!;
      const cls = bin.cls;
      if (bin.usedCpu + cpu > classCpu[cls]! || bin.usedMem + mem > classMem[cls]!) continue;
      let s = 0;
      for (let k = 0; k < nScorers; k++) s += ws[k]! * fns[k]!(demand, bin.view);
      const score = wsum > 0 ? s / wsum : 0;
      const r = rank[bin.heap.top()]!;
      if (score > bestScore || (score === bestScore && r < bestRank)) {
        best = bin;
        bestScore = score;
        bestRank = r;
      }
    }
    if (!best) continue;
    const h = best.heap.top();
    const wasEmpty = hostVms[h] === 0;
    move(h, cpu, mem, 1, trace.lifetime[i]!);
    // An unbounded pool keeps one spare empty host, so opening a new host is always an option.
    if (unbounded && wasEmpty && !bins.has(`${hostCls[h]!}/0/0/000`)) openHost(hostCls[h]!);
    vmHost[i] = h;
    placed++;
    activeCpu += cpu;
    activeMem += mem;
    if (hostsInUse > peakHosts) peakHosts = hostsInUse;
    if (trace.departure[i]! !== Infinity) departures.push(trace.departure[i]!, i);
    if (useAnchor && t + ANCHOR_AGE_SECONDS < trace.departure[i]!) aging.push(t + ANCHOR_AGE_SECONDS, i);
  }
  advance(end + 1);
  const window = end - start;
  return {
    strategy: strategy.name,
    placed,
    rejected: n - placed,
    rejectionRate: n > 0 ? (n - placed) / n : 0,
    meanHostsOverLowerBound:
      ratioTime > 0 ? ratioIntegral / ratioTime : hostsInUse / Math.max(1, lowerBound(activeCpu, activeMem)),
    meanHosts: window > 0 ? hostsIntegral / window : hostsInUse,
    meanLowerBound: window > 0 ? lbIntegral / window : lowerBound(activeCpu, activeMem),
    peakHosts,
    hostsOverTime: series,
    hostOf: vmHost,
  };
}

/** Demand of a trace VM as the scheduler's resource type (for tests comparing with placeVms). */
export function traceDemand(trace: PlacementTrace, i: number): Resources {
  return { cpus: trace.cpuMilli[i]! / 1000, memoryMib: trace.memoryMib[i]!, diskGib: 0 };
}
