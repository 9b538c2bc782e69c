// A NovaCron node: the component graph, the orchestrator that boots it, and the runtime view
// (readiness, boot report) the API serves. `novacron start` and the integration tests use this.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { NetworkMode, NovaCronConfig } from '../config/schema.js';
import { BootMetrics, createMetricsRegistry } from '../observability/metrics.js';
import type { BootContext, Component, HealthStatus } from './component.js';
import { EventBus } from './events.js';
import { BootOrchestrator, type BootReport, type NodeState } from './orchestrator.js';
import { deriveReadiness, type NodeRuntime, type Readiness } from './runtime.js';
import type { Services } from './services.js';

export interface NodeOptions {
  readonly config: NovaCronConfig;
  readonly logger: Logger;
  readonly components: readonly Component[];
  /** Network mode until the environment component detects it. */
  readonly initialMode?: NetworkMode;
  readonly registry?: Registry;
  readonly events?: EventBus;
  /** How the configuration was loaded before the graph was built (shown with the timeline). */
  readonly configLoad?: ConfigLoadRecord;
}

export interface ConfigLoadRecord {
  /** The file loaded, or null on defaults (plus environment and flags). */
  readonly file: string | null;
  readonly durationMs: number;
}

export class NovaCronNode implements NodeRuntime {
  readonly nodeId: string;
  readonly config: NovaCronConfig;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly events: EventBus;
  readonly services: Services = {};
  readonly orchestrator: BootOrchestrator;
  readonly #critical: ReadonlySet<string>;
  readonly #bootMetrics: BootMetrics;
  #mode: NetworkMode;
  readonly configLoad: ConfigLoadRecord | null;
  #lastStatus = new Map<string, HealthStatus>();
  #healthTimer: NodeJS.Timeout | null = null;

  /** Validates the component graph (throws on a cycle or a missing dependency). */
  constructor(options: NodeOptions) {
    this.config = options.config;
    this.nodeId = options.config.system.node_id;
    this.logger = options.logger;
    this.registry = options.registry ?? createMetricsRegistry(this.nodeId);
    this.events = options.events ?? new EventBus();
    this.#mode =
      options.initialMode ??
      (options.config.system.mode === 'auto' ? 'datacenter' : options.config.system.mode);
    this.configLoad = options.configLoad ?? null;
    this.#critical = new Set(options.components.filter((c) => c.critical).map((c) => c.name));
    this.#bootMetrics = new BootMetrics(this.registry);
    const init = options.config.initialization;
    this.orchestrator = new BootOrchestrator(options.components, {
      parallel: init.parallel_execution,
      defaultTimeoutMs: init.component_timeout_seconds * 1000,
      bootTimeoutMs: init.timeout_seconds * 1000,
      shutdownTimeoutMs: init.shutdown_timeout_seconds * 1000,
    });
    this.services.runtime = this;
    this.orchestrator.onProgress((entry) => {
      this.events.publish('boot.component', { ...entry });
      if (entry.status === 'up' || entry.status === 'degraded' || entry.status === 'failed') {
        const level = entry.status === 'up' ? 'debug' : 'warn';
        this.logger[level](
          {
            component: entry.name,
            phase: entry.phase,
            bootLevel: entry.level,
            durationMs: entry.durationMs,
            error: entry.error ?? undefined,
          },
          `component ${entry.name} ${entry.status}`,
        );
      }
    });
  }

  state(): NodeState {
    return this.orchestrator.state;
  }

  mode(): NetworkMode {
    return this.#mode;
  }

  bootReport(): BootReport {
    return this.orchestrator.report();
  }

  async readiness(): Promise<Readiness> {
    const rows = await this.orchestrator.health();
    return deriveReadiness(
      this.orchestrator.state,
      this.#mode,
      rows,
      this.#critical,
      this.services.fence?.isFenced() ?? false,
    );
  }

  /** Boots the graph. On failure everything started is already stopped when this rejects. */
  async start(): Promise<BootReport> {
    const getMode = () => this.#mode;
    const setMode = (m: NetworkMode) => {
      if (m !== this.#mode) this.events.publish('node.mode', { mode: m, previous: this.#mode });
      this.#mode = m;
    };
    const makeContext = (component: Component, signal: AbortSignal): BootContext => ({
      config: this.config,
      get mode() {
        return getMode();
      },
      set mode(m: NetworkMode) {
        setMode(m);
      },
      logger: this.logger.child({ component: component.name }),
      metrics: this.registry,
      events: this.events,
      services: this.services,
      signal,
    });
    try {
      const report = await this.orchestrator.boot(makeContext);
      this.#bootMetrics.recordBoot(report);
      this.events.publish('node.ready', { state: report.state, totalMs: report.totalMs });
      this.#watchHealth();
      return report;
    } catch (err) {
      this.#bootMetrics.recordBoot(this.orchestrator.report());
      throw err;
    }
  }

  /** Publishes `component.status` events and metrics whenever a component's health changes. */
  #watchHealth(): void {
    const poll = async () => {
      for (const row of await this.orchestrator.health()) {
        if (this.#lastStatus.get(row.name) !== row.status) {
          const previous = this.#lastStatus.get(row.name);
          this.#lastStatus.set(row.name, row.status);
          this.#bootMetrics.recordStatus(row.name, row.status);
          if (previous !== undefined) {
            this.logger.warn(
              { component: row.name, status: row.status, detail: row.detail },
              `component ${row.name} is ${row.status}`,
            );
          }
          this.events.publish('component.status', {
            name: row.name,
            status: row.status,
            detail: row.detail,
            previous: previous ?? null,
          });
        }
      }
    };
    const tick = () => {
      poll()
        .catch((err: unknown) => this.logger.error({ err }, 'health poll failed'))
        .finally(() => {
          if (this.#healthTimer) this.#healthTimer = setTimeout(tick, 1000).unref();
        });
    };
    this.#healthTimer = setTimeout(tick, 0).unref();
  }

  /** Stops every component in reverse order; idempotent. */
  async stop(): Promise<void> {
    if (this.#healthTimer) clearTimeout(this.#healthTimer);
    this.#healthTimer = null;
    this.events.publish('node.stopping', {});
    await this.orchestrator.shutdown();
  }
}
