// Pure boot planning: validates the component graph and sorts it into levels (topological depth).
// Nothing starts before the plan is valid: a cycle, a missing or duplicate component, or a
// dependency on a later phase is reported here with the names involved.
import { NovaCronError, ErrorCode } from '../errors.js';
import { BOOT_PHASE_ORDER, type BootPhase } from './component.js';

export interface PlanInput {
  readonly name: string;
  readonly phase: BootPhase;
  readonly dependsOn: readonly string[];
}

export interface BootPlan {
  /** Components grouped by level; every dependency of a level-k component sits in a level < k. */
  readonly levels: readonly (readonly string[])[];
  /** Level of each component. */
  readonly levelOf: ReadonlyMap<string, number>;
  /** A valid start order for sequential boot (level by level, phase then name within a level). */
  readonly order: readonly string[];
}

/**
 * Sorts components into levels. Level 0 holds components with no dependencies; a component's
 * level is one more than its deepest dependency. Throws NovaCronError (boot_cycle,
 * boot_missing_dependency, config_invalid) before anything starts.
 */
export function planBootLevels(components: readonly PlanInput[]): BootPlan {
  const byName = new Map<string, PlanInput>();
  for (const c of components) {
    if (byName.has(c.name)) {
      throw new NovaCronError(
        ErrorCode.BootComponentFailed,
        `boot: component "${c.name}" is registered twice`,
      );
    }
    byName.set(c.name, c);
  }
  for (const c of components) {
    for (const dep of c.dependsOn) {
      const d = byName.get(dep);
      if (!d) {
        throw new NovaCronError(
          ErrorCode.BootMissingDependency,
          `boot: component "${c.name}" depends on "${dep}", which is not registered`,
          { key: c.name, hint: `register "${dep}" or remove it from ${c.name}.dependsOn` },
        );
      }
      if (BOOT_PHASE_ORDER.indexOf(d.phase) > BOOT_PHASE_ORDER.indexOf(c.phase)) {
        throw new NovaCronError(
          ErrorCode.BootMissingDependency,
          `boot: component "${c.name}" (phase ${c.phase}) depends on "${dep}" of the later phase ${d.phase}`,
          { key: c.name },
        );
      }
    }
  }

  const levelOf = new Map<string, number>();
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: string[]): number => {
    const s = state.get(name);
    if (s === 'done') return levelOf.get(name)!;
    if (s === 'visiting') {
      const cycle = [...path.slice(path.indexOf(name)), name];
      throw new NovaCronError(ErrorCode.BootCycle, `boot: dependency cycle: ${cycle.join(' -> ')}`, {
        key: name,
        details: { cycle },
      });
    }
    state.set(name, 'visiting');
    const c = byName.get(name)!;
    let level = 0;
    for (const dep of [...c.dependsOn].sort()) level = Math.max(level, visit(dep, [...path, name]) + 1);
    state.set(name, 'done');
    levelOf.set(name, level);
    return level;
  };
  for (const name of [...byName.keys()].sort()) visit(name, []);

  const depth = Math.max(-1, ...levelOf.values()) + 1;
  const phaseRank = (n: string) => BOOT_PHASE_ORDER.indexOf(byName.get(n)!.phase);
  const levels: string[][] = Array.from({ length: depth }, () => []);
  for (const [name, level] of levelOf) levels[level]!.push(name);
  for (const level of levels) level.sort((a, b) => phaseRank(a) - phaseRank(b) || a.localeCompare(b));
  return { levels, levelOf, order: levels.flat() };
}

/** Length of the longest dependency chain by duration: the lower bound of any parallel boot. */
export function criticalPathMs(
  components: readonly PlanInput[],
  durationMs: ReadonlyMap<string, number>,
): number {
  const plan = planBootLevels(components);
  const byName = new Map(components.map((c) => [c.name, c]));
  const finish = new Map<string, number>();
  for (const name of plan.order) {
    const c = byName.get(name)!;
    const ready = Math.max(0, ...c.dependsOn.map((d) => finish.get(d) ?? 0));
    finish.set(name, ready + (durationMs.get(name) ?? 0));
  }
  return Math.max(0, ...finish.values());
}
