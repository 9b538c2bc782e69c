// Where a draining node sends a running VM by live migration (pure): the scheduler's choice among the
// live members that can take it (not this node, not draining, same VM driver, reachable over gRPC),
// then the next best once that one is ruled out, so a target that refuses (its reservation lost a
// race with a placement, say) is followed by another before the VM falls back to stop-and-restart.
import type { NodeUsage } from '../store/types.js';
import { placeVm, type SchedulerOptions } from '../scheduler/index.js';
import type { NodeInfo } from './membership.js';
import { placementRequestOf, regionSnapshot } from './placement.js';

export interface DrainTargetInput {
  readonly self: NodeInfo;
  readonly members: readonly NodeInfo[];
  readonly usage: ReadonlyMap<string, NodeUsage>;
  readonly vm: { readonly name: string };
  readonly resources: { readonly cpus: number; readonly memoryMib: number };
  readonly scheduler: SchedulerOptions;
  /** At most this many targets (default 3). */
  readonly max?: number;
}

export interface DrainTargets {
  /** Member ids, best first. */
  readonly targets: readonly string[];
  /** Why each member that is not a target was left out (for the log line when there is none). */
  readonly excluded: readonly { readonly node: string; readonly reason: string }[];
}

/** The members a VM can live-migrate to during a drain, best first. */
export function drainTargets(input: DrainTargetInput): DrainTargets {
  const excluded: { node: string; reason: string }[] = [];
  const eligible = input.members.filter((m) => {
    if (m.id === input.self.id) return false;
    const reason =
      m.draining === true
        ? 'draining'
        : m.driver !== input.self.driver
          ? `runs the ${m.driver} driver, not ${input.self.driver}`
          : m.grpcUrl === undefined
            ? 'announces no gRPC address'
            : undefined;
    if (reason) excluded.push({ node: m.id, reason });
    return reason === undefined;
  });
  const targets: string[] = [];
  let pool = eligible;
  const max = input.max ?? 3;
  while (targets.length < max && pool.length > 0) {
    const outcome = placeVm(
      regionSnapshot(pool, input.usage),
      placementRequestOf(input.vm, input.resources),
      input.scheduler,
    );
    if (outcome.status !== 'placed') {
      for (const r of outcome.reasons) excluded.push({ node: r.nodeId, reason: r.reason });
      break;
    }
    targets.push(outcome.nodeId);
    pool = pool.filter((m) => m.id !== outcome.nodeId);
  }
  return { targets, excluded };
}
