// Prometheus metrics: one registry per node with process metrics and NovaCron's own.
// Names are stable: deploy/grafana dashboards are built on them.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BootReport } from '../boot/orchestrator.js';

export function createMetricsRegistry(nodeId: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ node: nodeId });
  collectDefaultMetrics({ register: registry, prefix: 'novacron_process_' });
  return registry;
}

/** Boot figures: total boot time, per-component start durations, component status. */
export class BootMetrics {
  readonly #total: Gauge;
  readonly #component: Gauge;
  readonly #status: Gauge;

  constructor(registry: Registry) {
    this.#total = new Gauge({
      name: 'novacron_boot_duration_seconds',
      help: 'Time from boot start to ready (or failure), in seconds',
      registers: [registry],
    });
    this.#component = new Gauge({
      name: 'novacron_boot_component_duration_seconds',
      help: 'Start duration of each boot component, in seconds',
      labelNames: ['component', 'phase', 'level'],
      registers: [registry],
    });
    this.#status = new Gauge({
      name: 'novacron_component_status',
      help: 'Component health: 1 for the current status label, 0 for the others',
      labelNames: ['component', 'status'],
      registers: [registry],
    });
  }

  recordBoot(report: BootReport): void {
    if (report.totalMs !== null) this.#total.set(report.totalMs / 1000);
    for (const c of report.components) {
      if (c.durationMs !== null) {
        this.#component.set(
          { component: c.name, phase: c.phase, level: String(c.level) },
          c.durationMs / 1000,
        );
      }
    }
  }

  recordStatus(component: string, status: 'up' | 'degraded' | 'down'): void {
    for (const s of ['up', 'degraded', 'down'] as const)
      this.#status.set({ component, status: s }, s === status ? 1 : 0);
  }
}

/** HTTP request duration histogram, labelled by method, route template and status code. */
export function createHttpMetrics(registry: Registry): { duration: Histogram; requests: Counter } {
  return {
    duration: new Histogram({
      name: 'novacron_http_request_duration_seconds',
      help: 'REST API request duration in seconds',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    requests: new Counter({
      name: 'novacron_http_requests_total',
      help: 'REST API requests',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
  };
}
