// Service component "ml-engine" (optional): the client of the ML service behind the gRPC bridge,
// with a deadline per call, a circuit breaker, background health checks and local heuristics as
// fallback; its HTTP/2 calls go through a worker thread (ml.transport_thread_young_mb). With the service down the node still boots; this component then reports `degraded`
// and every caller still gets an answer within the deadline.
import type { Component } from '../boot/component.js';
import type { MlClient } from '../ml/client.js';

declare module '../boot/services.js' {
  interface Services {
    ml?: MlClient;
  }
}

/** Longest the boot waits for the first health check before going on (the client keeps checking). */
const FIRST_CHECK_WAIT_MS = 500;

export function mlEngineComponent(options: { readonly dependsOn?: readonly string[] } = {}): Component {
  let client: MlClient | null = null;
  let enabled = true;
  return {
    name: 'ml-engine',
    phase: 'service',
    dependsOn: options.dependsOn ?? [],
    critical: false,
    async start(ctx) {
      const { createMlClient } = await import('../ml/client.js');
      client = createMlClient(ctx.config.ml, ctx.logger);
      ctx.services.ml = client;
      enabled = ctx.config.ml.enabled;
      if (!enabled) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        client.ready().catch(() => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, FIRST_CHECK_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
    },
    async stop() {
      client?.close();
      client = null;
    },
    health() {
      if (!client) return { status: 'down', detail: 'not started' };
      // Switched off on purpose: nothing is missing, local heuristics are the configured answer.
      if (!enabled)
        return { status: 'up', detail: 'disabled by config (ml.enabled: false): local heuristics answer' };
      const h = client.health();
      return { status: h.status === 'up' ? 'up' : 'degraded', detail: h.detail };
    },
  };
}
