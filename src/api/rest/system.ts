// System routes: the boot timeline of this node.
import type { FastifyInstance } from 'fastify';
import type { RestServerDeps } from './server.js';

export function systemRoutes(app: FastifyInstance, deps: RestServerDeps): void {
  app.get(
    '/api/v1/system/boot',
    {
      schema: {
        tags: ['system'],
        summary: 'Boot timeline: per component its phase, level, start offset, duration, status and error',
        response: {
          200: {
            type: 'object',
            properties: {
              nodeId: { type: 'string' },
              config: {
                type: ['object', 'null'],
                description: 'The configuration load that preceded the boot',
                properties: { file: { type: ['string', 'null'] }, durationMs: { type: 'number' } },
              },
              state: { type: 'string' },
              parallel: { type: 'boolean' },
              startedAt: { type: ['string', 'null'] },
              totalMs: { type: ['number', 'null'] },
              levels: { type: 'array', items: { type: 'array', items: { type: 'string' } } },
              components: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    name: { type: 'string' },
                    phase: { type: 'string' },
                    level: { type: 'integer' },
                    critical: { type: 'boolean' },
                    dependsOn: { type: 'array', items: { type: 'string' } },
                    startedAt: { type: ['number', 'null'] },
                    durationMs: { type: ['number', 'null'] },
                    status: { type: 'string' },
                    error: { type: ['string', 'null'] },
                  },
                },
              },
            },
          },
        },
      },
    },
    async () => ({
      nodeId: deps.runtime.nodeId,
      config: deps.runtime.configLoad,
      ...deps.runtime.bootReport(),
    }),
  );
}
