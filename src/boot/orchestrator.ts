// Boots a node from its component graph: each component starts as soon as all of its
// dependencies are up (so a level never waits for an unrelated slow sibling), with a per-component
// timeout; records a timeline; fails fast on a critical failure and stops what started in reverse
// order; marks optional failures degraded and goes on. Sequential mode starts one component at a
// time in plan order, for comparison.
import { NovaCronError, ErrorCode, errorMessage } from '../errors.js';
import type { BootContext, BootPhase, Component, ComponentHealth } from './component.js';
import { planBootLevels, type BootPlan } from './plan.js';

export const ComponentState = {
  Pending: 'pending',
  Starting: 'starting',
  Up: 'up',
  Degraded: 'degraded',
  Failed: 'failed',
  Skipped: 'skipped',
  Stopping: 'stopping',
  Stopped: 'stopped',
} as const;
export type ComponentState = (typeof ComponentState)[keyof typeof ComponentState];

export const NodeState = {
  Idle: 'idle',
  Starting: 'starting',
  Ready: 'ready',
  Degraded: 'degraded',
  Failed: 'failed',
  Stopping: 'stopping',
  Stopped: 'stopped',
} as const;
export type NodeState = (typeof NodeState)[keyof typeof NodeState];

/** One row of the boot timeline, as served by GET /api/v1/system/boot. */
export interface TimelineEntry {
  readonly name: string;
  readonly phase: BootPhase;
  readonly level: number;
  readonly critical: boolean;
  readonly dependsOn: readonly string[];
  status: ComponentState;
  /** Milliseconds since boot start when the component began starting. */
  startedAt: number | null;
  durationMs: number | null;
  error: string | null;
}

export interface BootReport {
  readonly state: NodeState;
  readonly parallel: boolean;
  /** Wall-clock time the boot began (ISO-8601). */
  readonly startedAt: string | null;
  readonly totalMs: number | null;
  readonly levels: readonly (readonly string[])[];
  readonly components: readonly TimelineEntry[];
}

export interface OrchestratorOptions {
  readonly parallel: boolean;
  readonly defaultTimeoutMs: number;
  /** Whole-boot deadline. */
  readonly bootTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  /** Monotonic clock in ms, injectable for tests. */
  readonly now?: () => number;
}

/** Raised when a critical component fails; names the component and the cause. */
export class BootFailedError extends NovaCronError {
  readonly component: string;
  constructor(component: string, cause: unknown) {
    const inner = cause instanceof NovaCronError ? cause.describe() : errorMessage(cause);
    super(ErrorCode.BootComponentFailed, `boot failed: critical component "${component}" failed: ${inner}`, {
      key: component,
      cause,
    });
    this.name = 'BootFailedError';
    this.component = component;
  }
}

type ContextFactory = (component: Component, signal: AbortSignal) => BootContext;

export class BootOrchestrator {
  readonly #byName: Map<string, Component>;
  readonly #plan: BootPlan;
  readonly #options: OrchestratorOptions;
  readonly #now: () => number;
  readonly #timeline = new Map<string, TimelineEntry>();
  /** Components whose start resolved, in completion order (stopped in reverse). */
  readonly #started: Component[] = [];
  readonly #listeners = new Set<(entry: TimelineEntry) => void>();
  #state: NodeState = NodeState.Idle;
  #bootStart = 0;
  #bootStartWall: string | null = null;
  #totalMs: number | null = null;
  #shutdown = new AbortController();
  #makeContext: ContextFactory | null = null;
  #stopping: Promise<void> | null = null;

  /** Validates the graph at once (throws before anything starts). */
  constructor(components: readonly Component[], options: OrchestratorOptions) {
    this.#byName = new Map(components.map((c) => [c.name, c]));
    this.#plan = planBootLevels(components);
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
    for (const name of this.#plan.order) {
      const c = this.#byName.get(name)!;
      this.#timeline.set(name, {
        name,
        phase: c.phase,
        level: this.#plan.levelOf.get(name)!,
        critical: c.critical,
        dependsOn: [...c.dependsOn],
        status: ComponentState.Pending,
        startedAt: null,
        durationMs: null,
        error: null,
      });
    }
  }

  get state(): NodeState {
    return this.#state;
  }

  get plan(): BootPlan {
    return this.#plan;
  }

  /** Called for every timeline change (for boot progress events and the TTY summary). */
  onProgress(listener: (entry: TimelineEntry) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  report(): BootReport {
    return {
      state: this.#state,
      parallel: this.#options.parallel,
      startedAt: this.#bootStartWall,
      totalMs: this.#totalMs,
      levels: this.#plan.levels,
      components: this.#plan.order.map((n) => ({ ...this.#timeline.get(n)! })),
    };
  }

  /**
   * Boots every component. Resolves when all critical components are up (optional failures leave
   * the node degraded); rejects with BootFailedError after stopping whatever had started.
   */
  async boot(makeContext: ContextFactory): Promise<BootReport> {
    if (this.#state !== NodeState.Idle)
      throw new NovaCronError(ErrorCode.InvalidState, 'boot: already booted');
    this.#makeContext = makeContext;
    this.#state = NodeState.Starting;
    this.#bootStart = this.#now();
    this.#bootStartWall = new Date().toISOString();
    const bootDeadline = setTimeout(
      () => this.#shutdown.abort(new Error('boot deadline')),
      this.#options.bootTimeoutMs,
    );
    bootDeadline.unref();
    try {
      if (this.#options.parallel) await this.#bootParallel();
      else await this.#bootSequential();
      if (this.#shutdown.signal.aborted) {
        const reason = this.#shutdown.signal.reason as unknown;
        throw reason instanceof NovaCronError
          ? reason
          : new NovaCronError(
              errorMessage(reason) === 'boot deadline' ? ErrorCode.BootTimeout : ErrorCode.Cancelled,
              errorMessage(reason) === 'boot deadline'
                ? `boot did not finish within ${this.#options.bootTimeoutMs} ms`
                : 'boot aborted',
              { hint: 'raise initialization.timeout_seconds or check the slowest component in the timeline' },
            );
      }
    } catch (err) {
      clearTimeout(bootDeadline);
      this.#totalMs = this.#now() - this.#bootStart;
      this.#state = NodeState.Failed;
      await this.#stopStarted();
      this.#state = NodeState.Failed;
      throw err;
    }
    clearTimeout(bootDeadline);
    this.#totalMs = round(this.#now() - this.#bootStart);
    const degraded = [...this.#timeline.values()].some(
      (e) => e.status === ComponentState.Degraded || e.status === ComponentState.Skipped,
    );
    this.#state = degraded ? NodeState.Degraded : NodeState.Ready;
    return this.report();
  }

  async #bootSequential(): Promise<void> {
    for (const name of this.#plan.order) {
      const failure = await this.#startOne(this.#byName.get(name)!);
      if (failure) throw failure;
    }
  }

  async #bootParallel(): Promise<void> {
    const done = new Map<string, Promise<void>>();
    let firstFailure: BootFailedError | null = null;
    const abortAll = new AbortController();
    const run = async (c: Component): Promise<void> => {
      await Promise.all(c.dependsOn.map((d) => done.get(d)!));
      if (firstFailure || abortAll.signal.aborted) return;
      const failure = await this.#startOne(c);
      if (failure && !firstFailure) {
        firstFailure = failure;
        abortAll.abort(failure);
        this.#shutdown.abort(failure);
      }
    };
    // Plan order guarantees dependencies are registered before their dependents.
    for (const name of this.#plan.order) done.set(name, run(this.#byName.get(name)!));
    await Promise.all(done.values());
    if (firstFailure) throw firstFailure;
  }

  /** Starts one component; returns a BootFailedError when a critical one fails, else null. */
  async #startOne(c: Component): Promise<BootFailedError | null> {
    const entry = this.#timeline.get(c.name)!;
    const failedDep = c.dependsOn.find((d) => {
      const s = this.#timeline.get(d)!.status;
      return s === ComponentState.Degraded || s === ComponentState.Skipped || s === ComponentState.Failed;
    });
    if (failedDep !== undefined && !this.#started.some((s) => s.name === failedDep)) {
      entry.status = ComponentState.Skipped;
      entry.error = `dependency "${failedDep}" is not available`;
      this.#emit(entry);
      return c.critical ? new BootFailedError(c.name, new Error(entry.error)) : null;
    }
    if (this.#shutdown.signal.aborted) {
      entry.status = ComponentState.Skipped;
      entry.error = 'boot aborted';
      this.#emit(entry);
      return null;
    }

    const timeoutMs = c.timeoutMs ?? this.#options.defaultTimeoutMs;
    const controller = new AbortController();
    const onShutdown = () => controller.abort(this.#shutdown.signal.reason);
    this.#shutdown.signal.addEventListener('abort', onShutdown, { once: true });
    const ctx = this.#makeContext!(c, controller.signal);
    entry.status = ComponentState.Starting;
    entry.startedAt = round(this.#now() - this.#bootStart);
    this.#emit(entry);
    const t0 = this.#now();
    const aborted = new Promise<never>((_, reject) => {
      controller.signal.addEventListener('abort', () => reject(toError(controller.signal.reason)), {
        once: true,
      });
    });
    aborted.catch(() => undefined);
    const timer = setTimeout(() => {
      controller.abort(
        new NovaCronError(ErrorCode.BootTimeout, `timed out after ${timeoutMs} ms`, {
          hint: `raise initialization.component_timeout_seconds or check what ${c.name} waits for`,
        }),
      );
    }, timeoutMs);
    let startPromise: Promise<void> | undefined;
    let startedOk = false;
    try {
      startPromise = c.start(ctx);
      await Promise.race([startPromise, aborted]);
      entry.durationMs = round(this.#now() - t0);
      entry.status = ComponentState.Up;
      this.#started.push(c);
      startedOk = true;
      if (c.health) {
        const h = await safeHealth(c);
        if (h.status !== 'up') entry.status = ComponentState.Degraded;
        if (h.status !== 'up') entry.error = h.detail;
      }
      this.#emit(entry);
      return null;
    } catch (err) {
      entry.durationMs = round(this.#now() - t0);
      entry.error = err instanceof NovaCronError ? err.describe() : errorMessage(err);
      entry.status = c.critical ? ComponentState.Failed : ComponentState.Degraded;
      this.#emit(entry);
      return c.critical ? new BootFailedError(c.name, err) : null;
    } finally {
      clearTimeout(timer);
      this.#shutdown.signal.removeEventListener('abort', onShutdown);
      if (controller.signal.aborted && startPromise && !startedOk) {
        // The start lost the race against its timeout or the boot's abort: if it still completes,
        // release what it acquired instead of leaking it.
        startPromise
          .then(
            () => c.stop?.(ctx),
            () => undefined,
          )
          .catch(() => undefined);
      }
    }
  }

  /** Current health of every component: its own report when it has one, else its boot outcome. */
  async health(): Promise<{ name: string; status: ComponentHealth['status']; detail: string }[]> {
    return Promise.all(
      this.#plan.order.map(async (name) => {
        const c = this.#byName.get(name)!;
        const entry = this.#timeline.get(name)!;
        if (entry.status === ComponentState.Up || entry.status === ComponentState.Degraded) {
          if (c.health && this.#started.includes(c)) return { name, ...(await safeHealth(c)) };
          return {
            name,
            status: entry.status === ComponentState.Up ? ('up' as const) : ('degraded' as const),
            detail: entry.error ?? '',
          };
        }
        return { name, status: 'down' as const, detail: entry.error ?? entry.status };
      }),
    );
  }

  /** Stops every started component in reverse order. Idempotent; concurrent calls share one stop. */
  async shutdown(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#shutdown.abort(new Error('shutdown'));
      this.#state = NodeState.Stopping;
      await this.#stopStarted();
      this.#state = NodeState.Stopped;
    })();
    return this.#stopping;
  }

  async #stopStarted(): Promise<void> {
    const perComponent = this.#options.shutdownTimeoutMs;
    while (this.#started.length > 0) {
      const c = this.#started.pop()!;
      const entry = this.#timeline.get(c.name)!;
      if (!c.stop) {
        entry.status = ComponentState.Stopped;
        this.#emit(entry);
        continue;
      }
      entry.status = ComponentState.Stopping;
      this.#emit(entry);
      let timer: NodeJS.Timeout | undefined;
      try {
        const ctx = this.#makeContext!(c, new AbortController().signal);
        await Promise.race([
          c.stop(ctx),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`stop timed out after ${perComponent} ms`)),
              perComponent,
            );
          }),
        ]);
        entry.status = ComponentState.Stopped;
      } catch (err) {
        entry.status = ComponentState.Stopped;
        entry.error = `stop: ${errorMessage(err)}`;
      } finally {
        clearTimeout(timer);
      }
      this.#emit(entry);
    }
  }

  #emit(entry: TimelineEntry): void {
    for (const l of this.#listeners) {
      try {
        l({ ...entry });
      } catch {
        // progress listeners must not break the boot
      }
    }
  }
}

async function safeHealth(c: Component): Promise<ComponentHealth> {
  try {
    return await c.health!();
  } catch (err) {
    return { status: 'down', detail: `health check failed: ${errorMessage(err)}` };
  }
}

function toError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
