// Pre-init component "tracing": when monitoring.tracing.endpoint is set, starts the OpenTelemetry
// exporter (loaded on demand), publishes `services.tracing` (the REST server makes a span per
// request with it) and exports the boot trace once the node is ready. Without an endpoint it
// loads nothing. Optional: a tracing failure never stops the node.
import { readFile } from 'node:fs/promises';
import type { Component } from '../boot/component.js';
import type { Tracing } from '../observability/tracing.js';

export function tracingComponent(): Component {
  let tracing: Tracing | null = null;
  let endpoint = '';
  let unsubscribe: (() => void) | null = null;
  return {
    name: 'tracing',
    phase: 'pre',
    dependsOn: [],
    critical: false,
    async start(ctx) {
      const settings = ctx.config.monitoring.tracing;
      endpoint = settings.endpoint;
      if (endpoint === '') return;
      const { startTracing } = await import('../observability/tracing.js');
      const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as {
        version: string;
      };
      const t = await startTracing(settings, { nodeId: ctx.config.system.node_id, version: pkg.version });
      tracing = t;
      ctx.services.tracing = t;
      unsubscribe = ctx.events.subscribe((e) => {
        if (e.type !== 'node.ready') return;
        const runtime = ctx.services.runtime;
        if (runtime) t.recordBoot(runtime.bootReport());
      });
      ctx.logger.info({ endpoint }, `exporting traces to ${endpoint}`);
    },
    async stop() {
      unsubscribe?.();
      await tracing?.shutdown().catch(() => undefined);
      tracing = null;
    },
    health: () =>
      endpoint === ''
        ? { status: 'up', detail: 'tracing off (monitoring.tracing.endpoint empty)' }
        : tracing
          ? { status: 'up', detail: `OTLP/HTTP to ${endpoint}` }
          : { status: 'down', detail: 'not started' },
  };
}
