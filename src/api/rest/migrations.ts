// REST routes of VM migration: POST /api/v1/vms/{id}/migrate (202 with the migration), GET
// /api/v1/migrations[/{id}], DELETE /api/v1/migrations/{id} (cancel). Progress and state changes are
// published on the event bus (`migration.progress`, `migration.state`) and so reach /ws.
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../boot/services.js';
import { InvalidStateError, UnavailableError } from '../../errors.js';
import type { MigrationManager } from '../../migration/manager.js';

const errorRef = { type: 'object', additionalProperties: true } as const;

export const migrationSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    vmId: { type: 'string' },
    kind: { type: 'string', enum: ['live', 'cold'] },
    source: { type: 'string' },
    target: { type: 'string' },
    state: { type: 'string', description: 'pending | running | completed | failed | cancelled' },
    phase: { type: 'string', description: 'prepare | transfer | switchover | commit | done | rollback' },
    bytesSent: { type: 'integer', description: 'Bytes DWCP put on the wire' },
    bytesTotal: { type: ['integer', 'null'], description: 'Guest RAM' },
    bytesRemaining: { type: ['integer', 'null'] },
    downtimeMs: { type: ['integer', 'null'] },
    totalMs: { type: ['integer', 'null'] },
    maxDowntimeMs: { type: ['integer', 'null'] },
    progress: { type: 'object', additionalProperties: true },
    error: { type: ['string', 'null'] },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
    finishedAt: { type: ['string', 'null'] },
  },
} as const;

function manager(services: Services): MigrationManager {
  const s = services.migrations;
  if (!s)
    throw new UnavailableError('the migration service is not running', {
      hint: 'check /health/ready (component migrations)',
    });
  if (!s.manager)
    throw new InvalidStateError(`live migration is unavailable on this node: ${s.unavailable ?? ''}`);
  return s.manager;
}

export function migrationRoutes(app: FastifyInstance, deps: { services: Services }): void {
  const tags = ['migrations'];
  const m = () => manager(deps.services);

  app.post<{ Params: { id: string }; Body: unknown }>(
    '/api/v1/vms/:id/migrate',
    {
      schema: {
        tags,
        summary: 'Migrate a VM to a peer node (live when running, cold when stopped); 202 with the migration',
        params: {
          type: 'object',
          required: ['id'],
          properties: { id: { type: 'string', minLength: 1, description: 'VM id or name' } },
        },
        body: {
          type: 'object',
          properties: {
            target: { type: 'string', description: 'Peer node name (cluster.peers)' },
            live: {
              type: 'boolean',
              description: 'Live (true) or cold (false); default: live if running, cold if stopped',
            },
            maxDowntimeMs: {
              type: 'integer',
              description: 'Longest acceptable switchover pause (default 300)',
            },
          },
        },
        response: { 202: migrationSchema, 400: errorRef, 404: errorRef, 409: errorRef },
      },
    },
    async (request, reply) =>
      reply.status(202).send(await m().migrate(request.params.id, request.body as never)),
  );

  app.get<{ Querystring: { vm?: string } }>(
    '/api/v1/migrations',
    {
      schema: {
        tags,
        summary: 'Migrations this node recorded, newest first',
        querystring: { type: 'object', properties: { vm: { type: 'string', description: 'VM id' } } },
        response: {
          200: { type: 'object', properties: { items: { type: 'array', items: migrationSchema } } },
        },
      },
    },
    async (request) => ({
      items: await m().list(request.query.vm === undefined ? {} : { vmId: request.query.vm }),
    }),
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/migrations/:id',
    {
      schema: {
        tags,
        summary: 'A migration: state, phase, bytes, downtime, total time',
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string' } } },
        response: { 200: migrationSchema, 404: errorRef },
      },
    },
    async (request) => m().view(request.params.id),
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/migrations/:id',
    {
      schema: {
        tags,
        summary: 'Cancel a running migration (rolled back: the VM keeps running on the source)',
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string' } } },
        response: { 200: migrationSchema, 404: errorRef, 409: errorRef },
      },
    },
    async (request) => m().cancel(request.params.id),
  );
}
