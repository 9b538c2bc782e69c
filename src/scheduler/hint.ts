// The ML hint hook: an interface a placement model (the ML bridge's TaskPlacer) implements, and
// an async wrapper around the pure scheduler that asks it for node scores within a deadline and
// silently falls back to the local scorers when it is late, throws or answers nonsense.
import { placeVms } from './scheduler.js';
import { ML_HINT } from './scorers/ml-hint.js';
import type {
  ClusterSnapshot,
  NodeSnapshot,
  PlacementDecision,
  PlacementRequest,
  SchedulerOptions,
} from './types.js';

/**
 * Something that scores nodes for a request, e.g. the ML bridge. Contract: returns scores in
 * [0, 100] by node id (higher is better; missing nodes mean "no opinion"); should answer within
 * `deadlineMs`, but the caller does not rely on it: late answers are ignored. It may reject; the
 * scheduler then ranks with its local scorers alone. It must not mutate `nodes`.
 */
export interface PlacementHintProvider {
  scoreNodes(
    request: PlacementRequest,
    nodes: readonly NodeSnapshot[],
    deadlineMs: number,
  ): Promise<Map<string, number>>;
}

/** Why the hints of one request were not used. */
export type HintFallback = 'timeout' | 'error';

export interface HintOptions {
  readonly provider: PlacementHintProvider;
  /** How long to wait for all requests' hints, in milliseconds. */
  readonly deadlineMs: number;
  /** Weight of the `ml-hint` scorer when hints arrived (default 1, i.e. equal to a strategy's main scorer). */
  readonly weight?: number;
  /** Called once per request whose hints were dropped (for metrics and logs; the placement itself stays silent). */
  readonly onFallback?: (requestId: string, why: HintFallback, cause?: unknown) => void;
}

/** What happened to the hints of a batch. */
export interface HintedDecision extends PlacementDecision {
  /** Ids of the requests placed with the provider's hints. */
  readonly hinted: readonly string[];
}

/**
 * Asks the provider for hints for every request (concurrently, one shared deadline), then runs
 * the pure scheduler with the hints that arrived in time. Never rejects because of the provider.
 */
export async function placeVmsWithHints(
  snapshot: ClusterSnapshot,
  requests: readonly PlacementRequest[],
  options: SchedulerOptions,
  hint: HintOptions,
): Promise<HintedDecision> {
  const hints = await gatherHints(snapshot, requests, hint);
  if (hints.size === 0) return { ...placeVms(snapshot, requests, options), hinted: [] };
  const weights = { ...(options.weights ?? {}) };
  if (weights[ML_HINT] === undefined || weights[ML_HINT] === 0) weights[ML_HINT] = hint.weight ?? 1;
  const decision = placeVms(snapshot, requests, { ...options, weights, hints });
  return { ...decision, hinted: [...hints.keys()] };
}

/** Hints by request id, for the requests whose provider call resolved in time with usable scores. */
export async function gatherHints(
  snapshot: ClusterSnapshot,
  requests: readonly PlacementRequest[],
  hint: HintOptions,
): Promise<Map<string, Map<string, number>>> {
  const out = new Map<string, Map<string, number>>();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), Math.max(0, hint.deadlineMs));
  });
  try {
    await Promise.all(
      requests.map(async (req) => {
        let answer: Map<string, number> | 'timeout';
        try {
          answer = await Promise.race([
            Promise.resolve().then(() => hint.provider.scoreNodes(req, snapshot.nodes, hint.deadlineMs)),
            deadline,
          ]);
        } catch (err) {
          hint.onFallback?.(req.id, 'error', err);
          return;
        }
        if (answer === 'timeout') {
          hint.onFallback?.(req.id, 'timeout');
          return;
        }
        if (!(answer instanceof Map)) {
          hint.onFallback?.(req.id, 'error', new TypeError('hint provider did not return a Map'));
          return;
        }
        out.set(req.id, answer);
      }),
    );
  } finally {
    clearTimeout(timer);
  }
  return out;
}
