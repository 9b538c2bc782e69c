// Health and metrics routes; the only REST routes served without a token.
import type { FastifyInstance } from 'fastify';
import { readinessHttpStatus } from '../../boot/runtime.js';
import type { RestServerDeps } from './server.js';

const componentRow = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    status: { type: 'string', enum: ['up', 'degraded', 'down'] },
    detail: { type: 'string' },
  },
} as const;

export function healthRoutes(app: FastifyInstance, deps: RestServerDeps): void {
  app.get(
    '/health/live',
    {
      schema: {
        tags: ['health'],
        summary: 'Liveness: the process answers',
        response: { 200: { type: 'object', properties: { status: { type: 'string' } } } },
      },
      config: { public: true },
    },
    async () => ({ status: 'alive' }),
  );

  app.get(
    '/health/ready',
    {
      schema: {
        tags: ['health'],
        summary:
          'Readiness: 200 when ready or degraded, 503 while starting, stopping or when a critical component is down',
        response: {
          '2xx': {
            type: 'object',
            properties: {
              status: { type: 'string' },
              mode: { type: 'string' },
              components: { type: 'array', items: componentRow },
            },
          },
          503: {
            type: 'object',
            properties: {
              status: { type: 'string' },
              mode: { type: 'string' },
              components: { type: 'array', items: componentRow },
            },
          },
        },
      },
      config: { public: true },
    },
    async (_request, reply) => {
      const r = await deps.runtime.readiness();
      return reply.status(readinessHttpStatus(r)).send(r);
    },
  );

  if (deps.config.monitoring.metrics.enabled) {
    app.get(
      deps.config.monitoring.metrics.path,
      {
        schema: { tags: ['health'], summary: 'Prometheus metrics (text exposition format)' },
        config: { public: true },
      },
      async (_request, reply) => {
        const body = await deps.registry.metrics();
        return reply.type(deps.registry.contentType).send(body);
      },
    );
  }
}
