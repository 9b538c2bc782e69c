// The pure scheduler: reads a frozen cluster snapshot and a batch of requests, runs every node
// through the filters, scores the survivors and returns a decision that explains itself.
// No I/O, no clock, no global randomness: the same input and seed give the same decision.
import { ConflictError, ResourceExhaustedError, ValidationError } from '../errors.js';
import type { NovaCronError } from '../errors.js';
import { CAPACITY } from './filters/capacity.js';
import type { FilterContext, ScoreContext } from './plugin.js';
import { FILTERS, TieBreak, resolveStrategy } from './registry.js';
import { seededRank } from './tie-break.js';
import type {
  ClusterSnapshot,
  NodeRejection,
  NodeScore,
  NodeSnapshot,
  Placement,
  PlacementDecision,
  PlacementRequest,
  SchedulerOptions,
  Unschedulable,
} from './types.js';
import { NodeStatus } from './types.js';

/**
 * Places a batch of VMs, in the order given, each seeing the allocations of those before it.
 * A request no node can take is returned in `unschedulable` with one reason per node; the others
 * are still placed (no gang semantics). Throws ValidationError only for malformed input
 * (unknown strategy or scorer, duplicate request ids, negative or non-finite resources).
 *
 * @example
 *   const d = placeVms(snapshot, [{ id: 'vm-1', resources: { cpus: 2, memoryMib: 2048, diskGib: 10 } }],
 *     { strategy: 'balanced', seed: 0 });
 *   if (d.unschedulable.length) throw unschedulableError(d.unschedulable[0]!);
 */
export function placeVms(
  snapshot: ClusterSnapshot,
  requests: readonly PlacementRequest[],
  options: SchedulerOptions,
): PlacementDecision {
  const strategy = resolveStrategy(options);
  validateRequests(requests);
  // Copy-on-write working view: a node object is replaced, never mutated, when a VM lands on it.
  const nodes: NodeSnapshot[] = snapshot.nodes.slice();
  const rank =
    strategy.tieBreak === TieBreak.Order
      ? nodes.map((_, i) => i)
      : nodes.map((n) => seededRank(strategy.seed, n.id));
  const scorers = strategy.scorers;
  const weightSum = scorers.reduce((s, x) => s + x.weight, 0);
  const sources = scorers.map((s) => ({ scorer: s.plugin.name, weight: s.weight }));
  const nScorers = scorers.length;
  const placements: Placement[] = [];
  const unschedulable: Unschedulable[] = [];

  for (const req of requests) {
    const ctx = filterContext(nodes);
    const sctx: ScoreContext = { hints: options.hints?.get(req.id) };
    const rejections: NodeRejection[] = [];
    const nodeIds: string[] = [];
    const totals: number[] = [];
    const byScorer: number[][] = scorers.map(() => []);
    let best = -1;
    let bestTotal = -Infinity;
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i]!;
      let rejected = false;
      for (const f of FILTERS) {
        const reason = f.filter(req, node, ctx);
        if (reason !== undefined) {
          rejections.push({ nodeId: node.id, filter: f.name, reason });
          rejected = true;
          break;
        }
      }
      if (rejected) continue;
      let sum = 0;
      for (let k = 0; k < nScorers; k++) {
        const { plugin, weight } = scorers[k]!;
        const score = plugin.score(req, node, sctx);
        byScorer[k]!.push(score);
        sum += weight * score;
      }
      const total = weightSum > 0 ? sum / weightSum : 0;
      nodeIds.push(node.id);
      totals.push(total);
      if (total > bestTotal || (total === bestTotal && rank[i]! < rank[best]!)) {
        best = i;
        bestTotal = total;
      }
    }
    if (best < 0) {
      unschedulable.push({ requestId: req.id, reasons: rejections, byFilter: countByFilter(rejections) });
      continue;
    }
    const chosen = nodes[best]!;
    nodes[best] = withVm(chosen, req);
    placements.push({
      requestId: req.id,
      nodeId: chosen.id,
      sources,
      scores: { nodeIds, totals, byScorer },
      rejections,
    });
  }
  return { strategy: strategy.name, placements, unschedulable };
}

/** The outcome for one VM: placed somewhere, or unschedulable with per-node reasons. */
export type PlacementOutcome =
  ({ readonly status: 'placed' } & Placement) | ({ readonly status: 'unschedulable' } & Unschedulable);

/** Places one VM (a batch of one); the caller branches on `status`. */
export function placeVm(
  snapshot: ClusterSnapshot,
  request: PlacementRequest,
  options: SchedulerOptions,
): PlacementOutcome {
  const d = placeVms(snapshot, [request], options);
  const p = d.placements[0];
  if (p) return { status: 'placed', ...p };
  return { status: 'unschedulable', ...d.unschedulable[0]! };
}

/**
 * Turns an unschedulable outcome into the error the API maps to HTTP 409: `resource_exhausted`
 * when the only obstacle anywhere was capacity (or there are no nodes), `conflict` when some node
 * was excluded by a constraint (status, driver, labels, anti-affinity, spread). `details` holds
 * `{ requestId, reasons: [{ nodeId, filter, reason }], byFilter }`.
 */
export function unschedulableError(u: Unschedulable): NovaCronError {
  const onlyCapacity = u.reasons.every((r) => r.filter === CAPACITY);
  const summary =
    Object.entries(u.byFilter)
      .map(([f, n]) => `${n} ${f}`)
      .join(', ') || 'no nodes';
  const message = `no node can take ${u.requestId} (${u.reasons.length} node(s) rejected: ${summary})`;
  const details = { requestId: u.requestId, reasons: u.reasons, byFilter: u.byFilter };
  return onlyCapacity
    ? new ResourceExhaustedError(message, {
        key: u.requestId,
        details,
        retryable: true,
        hint: 'free capacity or add a node; the details list each node and why it was rejected',
      })
    : new ConflictError(message, {
        key: u.requestId,
        details,
        hint: 'relax the request (driver, node selector, anti-affinity, spread) or bring nodes back to ready',
      });
}

/** The score table of a placement as one object per node, best first (for display and APIs). */
export function nodeScores(p: Placement): NodeScore[] {
  const { nodeIds, totals, byScorer } = p.scores;
  return nodeIds
    .map((nodeId, i) => ({ nodeId, total: totals[i]!, components: byScorer.map((col) => col[i]!) }))
    .sort((a, b) => b.total - a.total);
}

/** Scheduler options from the `scheduler` section of the config (`scheduler.strategy`, `.weights`, `.seed`). */
export function schedulerOptionsFromConfig(cfg: {
  readonly strategy: string;
  readonly weights: Readonly<Record<string, number>>;
  readonly seed: number;
}): SchedulerOptions {
  return { strategy: cfg.strategy, weights: cfg.weights, seed: cfg.seed };
}

function filterContext(nodes: readonly NodeSnapshot[]): FilterContext {
  const mins = new Map<string, number>();
  return {
    groupMin(group) {
      let m = mins.get(group);
      if (m === undefined) {
        m = Infinity;
        for (const n of nodes) if (n.status === NodeStatus.Ready) m = Math.min(m, n.groups[group] ?? 0);
        if (m === Infinity) m = 0;
        mins.set(group, m);
      }
      return m;
    },
  };
}

function withVm(node: NodeSnapshot, req: PlacementRequest): NodeSnapshot {
  const a = node.allocated;
  const r = req.resources;
  let groups = node.groups;
  const names = [req.antiAffinityGroup, req.spread?.group].filter((g): g is string => g !== undefined);
  if (names.length > 0) {
    const g: Record<string, number> = { ...groups };
    for (const name of new Set(names)) g[name] = (g[name] ?? 0) + 1;
    groups = g;
  }
  const lt = req.lifetime;
  const lifetimes =
    lt === undefined
      ? node.lifetimes
      : {
          short: (node.lifetimes?.short ?? 0) + (lt === 'short' ? 1 : 0),
          long: (node.lifetimes?.long ?? 0) + (lt === 'long' ? 1 : 0),
        };
  return {
    ...node,
    ...(lifetimes ? { lifetimes } : {}),
    allocated: {
      cpus: a.cpus + r.cpus,
      memoryMib: a.memoryMib + r.memoryMib,
      diskGib: a.diskGib + r.diskGib,
    },
    groups,
  };
}

function countByFilter(rejections: readonly NodeRejection[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rejections) out[r.filter] = (out[r.filter] ?? 0) + 1;
  return out;
}

function validateRequests(requests: readonly PlacementRequest[]): void {
  const seen = new Set<string>();
  for (const r of requests) {
    if (seen.has(r.id)) throw new ValidationError(`duplicate request id in batch: ${r.id}`, { key: r.id });
    seen.add(r.id);
    for (const [k, v] of Object.entries(r.resources))
      if (!Number.isFinite(v) || v < 0)
        throw new ValidationError(`request ${r.id}: ${k} must be a finite number >= 0`, {
          key: `${r.id}.${k}`,
        });
    if (r.spread && (!Number.isInteger(r.spread.maxSkew) || r.spread.maxSkew < 1))
      throw new ValidationError(`request ${r.id}: spread.maxSkew must be an integer >= 1`, {
        key: `${r.id}.spread`,
      });
  }
}
