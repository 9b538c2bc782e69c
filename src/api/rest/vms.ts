// REST routes of the VM lifecycle: /api/v1/vms (create, list, get, patch labels, start, stop,
// restart, delete, console), with JSON schemas that validation and the OpenAPI document share.
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../boot/services.js';
import { UnavailableError } from '../../errors.js';
import { parseLabelSelector } from '../../vm/model.js';
import type { VmService } from '../../vm/service.js';

const labels = { type: 'object', additionalProperties: { type: 'string', maxLength: 256 } } as const;
const disk = {
  type: 'object',
  properties: {
    path: { type: 'string', minLength: 1 },
    baseImage: { type: 'string', minLength: 1 },
    format: { type: 'string', enum: ['qcow2', 'raw'] },
    readOnly: { type: 'boolean' },
  },
  additionalProperties: false,
} as const;

export const createVmSchema = {
  type: 'object',
  required: ['name', 'cpus', 'memoryMib'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$' },
    cpus: { type: 'integer', minimum: 1, maximum: 1024 },
    memoryMib: { type: 'integer', minimum: 16 },
    kernel: { type: 'string', minLength: 1 },
    initrd: { type: 'string', minLength: 1 },
    cmdline: { type: 'string' },
    disks: { type: 'array', items: disk, maxItems: 16 },
    labels,
    restartPolicy: { type: 'string', enum: ['never', 'always'] },
  },
} as const;

export const vmSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    node: { type: ['string', 'null'] },
    state: { type: 'string' },
    desiredState: { type: 'string' },
    cpus: { type: 'integer' },
    memoryMib: { type: 'integer' },
    kernel: { type: 'string' },
    initrd: { type: 'string' },
    cmdline: { type: 'string' },
    disks: { type: 'array', items: { type: 'object', additionalProperties: true } },
    labels,
    restartPolicy: { type: 'string' },
    generation: { type: 'integer' },
    error: { type: ['string', 'null'] },
    driver: { type: ['string', 'null'] },
    pid: { type: ['integer', 'null'] },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
  },
} as const;

const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, description: 'VM id or name' } },
} as const;

const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    state: { type: 'string', description: 'Comma-separated states' },
    labels: { type: 'string', description: 'Label selector k=v,k2=v2 (all must match)' },
    name: { type: 'string', description: 'Name prefix' },
    limit: { type: 'integer', minimum: 1, maximum: 1000 },
    cursor: { type: 'string' },
  },
} as const;

const errorRef = { type: 'object', additionalProperties: true } as const;

function service(services: Services): VmService {
  const s = services.vms;
  if (!s)
    throw new UnavailableError('the VM service is not running', {
      hint: 'check /health/ready (component vms)',
    });
  return s;
}

export function vmRoutes(app: FastifyInstance, deps: { services: Services }): void {
  const vms = () => service(deps.services);
  const tags = ['vms'];

  app.post<{ Body: unknown; Headers: { 'idempotency-key'?: string } }>(
    '/api/v1/vms',
    {
      schema: {
        tags,
        summary: 'Create a VM (placed by the scheduler, started by the driver)',
        headers: {
          type: 'object',
          properties: { 'idempotency-key': { type: 'string', minLength: 1, maxLength: 255 } },
        },
        body: createVmSchema,
        response: { 201: vmSchema, 400: errorRef, 409: errorRef },
      },
    },
    async (request, reply) => {
      const key = request.headers['idempotency-key'];
      const r = await vms().create(request.body, key);
      if (r.replayed) void reply.header('idempotent-replayed', 'true');
      return reply.status(201).send(r.vm);
    },
  );

  app.get<{
    Querystring: { state?: string; labels?: string; name?: string; limit?: number; cursor?: string };
  }>(
    '/api/v1/vms',
    {
      schema: {
        tags,
        summary: 'List VMs (filters: state, label selector, name prefix; cursor pagination)',
        querystring: listQuery,
        response: {
          200: {
            type: 'object',
            properties: { items: { type: 'array', items: vmSchema }, next: { type: ['string', 'null'] } },
          },
        },
      },
    },
    async (request) => {
      const q = request.query;
      const sel = parseLabelSelector(q.labels);
      const page = await vms().list({
        ...(q.state === undefined ? {} : { state: q.state }),
        ...(sel === undefined ? {} : { labels: sel }),
        ...(q.name === undefined ? {} : { namePrefix: q.name }),
        ...(q.limit === undefined ? {} : { limit: q.limit }),
        ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
      });
      return { items: page.items, next: page.nextCursor ?? null };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/vms/:id',
    { schema: { tags, summary: 'Get a VM by id or name', params: idParams, response: { 200: vmSchema } } },
    async (request) => vms().get(request.params.id),
  );

  app.patch<{ Params: { id: string }; Body: unknown }>(
    '/api/v1/vms/:id',
    {
      schema: {
        tags,
        summary: 'Patch labels (a null value removes the label)',
        params: idParams,
        body: {
          type: 'object',
          required: ['labels'],
          additionalProperties: false,
          properties: { labels: { type: 'object', additionalProperties: { type: ['string', 'null'] } } },
        },
        response: { 200: vmSchema },
      },
    },
    async (request) => vms().patchLabels(request.params.id, request.body),
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/vms/:id/start',
    {
      schema: {
        tags,
        summary: 'Start a stopped or failed VM',
        params: idParams,
        response: { 200: vmSchema },
      },
    },
    async (request) => vms().start(request.params.id),
  );

  app.post<{ Params: { id: string }; Body: { force?: boolean } | undefined }>(
    '/api/v1/vms/:id/stop',
    {
      schema: {
        tags,
        summary: 'Stop a VM: ACPI power button, then quit after vm.stop_grace_seconds (force: at once)',
        params: idParams,
        body: {
          type: 'object',
          nullable: true,
          properties: { force: { type: 'boolean' } },
          additionalProperties: false,
        },
        response: { 200: vmSchema },
      },
    },
    async (request) => vms().stop(request.params.id, { force: request.body?.force === true }),
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/vms/:id/restart',
    {
      schema: {
        tags,
        summary: 'Restart a VM (placed again by the scheduler)',
        params: idParams,
        response: { 200: vmSchema },
      },
    },
    async (request) => vms().restart(request.params.id),
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/vms/:id',
    {
      schema: { tags, summary: 'Delete a VM: stop, destroy, remove files, free resources', params: idParams },
    },
    async (request, reply) => {
      await vms().delete(request.params.id);
      return reply.status(204).send();
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/vms/:id/console',
    {
      schema: {
        tags,
        summary: 'Serial console log (last 64 KiB)',
        params: idParams,
        response: {
          200: {
            type: 'object',
            properties: {
              vmId: { type: 'string' },
              simulated: { type: 'boolean' },
              log: { type: 'string' },
              truncated: { type: 'boolean' },
            },
          },
        },
      },
    },
    async (request) => vms().console(request.params.id),
  );
}
