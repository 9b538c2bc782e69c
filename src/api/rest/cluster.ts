// Cluster routes (`GET /api/v1/cluster`, drain/uncordon of this node) and the write guard that refuses
// API writes while this node is fenced from its region's etcd.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { InvalidStateError, NotFoundError, UnavailableError } from '../../errors.js';
import { memberDispatcher, relayTo } from './forward.js';
import type { Services } from '../../boot/services.js';
import type { RestServerDeps } from './server.js';
// Type-only: declares services.cluster.
import type {} from '../../components/cluster.js';

export const PARTITIONED_MESSAGE = 'node is partitioned from etcd: writes refused until it rejoins';

/** Writes are every non-GET/HEAD/OPTIONS request under /api/v1/. Pure. */
export function isApiWrite(method: string, url: string): boolean {
  return !['GET', 'HEAD', 'OPTIONS'].includes(method) && url.startsWith('/api/v1/');
}

/**
 * The VM a request acts on with its process (start, stop, restart, delete; not label patches,
 * which are records only), or undefined. Pure.
 */
export function vmOperationTarget(method: string, url: string): string | undefined {
  const path = url.split('?')[0] ?? '';
  const m = /^\/api\/v1\/vms\/([^/]+)(?:\/(start|stop|restart))?$/.exec(path);
  if (!m?.[1]) return undefined;
  if (m[2] !== undefined) return method === 'POST' ? decodeURIComponent(m[1]) : undefined;
  return method === 'DELETE' ? decodeURIComponent(m[1]) : undefined;
}

/**
 * onRequest hook (after auth): 503 `unavailable` for API writes while the node is fenced. (VM
 * operations on a VM of another live member are forwarded there: forward.ts.)
 */
export function fenceGuard(services: Services) {
  return async (request: FastifyRequest): Promise<void> => {
    if (services.fence?.isFenced() === true && isApiWrite(request.method, request.url))
      throw new UnavailableError(PARTITIONED_MESSAGE, {
        hint: 'reads still work; retry on another node of the region, or here once it rejoins',
      });
  };
}

const nodeView = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    status: { type: 'string', enum: ['ready', 'down', 'draining', 'partitioned'] },
    address: { type: 'string' },
  },
} as const;

const clusterView = {
  type: 'object',
  properties: {
    mode: { type: 'string', enum: ['single', 'etcd'] },
    self: { type: 'string' },
    leader: { type: ['string', 'null'] },
    nodes: { type: 'array', items: nodeView },
    etcd: {
      type: ['object', 'null'],
      properties: {
        endpoints: { type: 'array', items: { type: 'string' } },
        prefix: { type: 'string' },
        region: { type: 'string' },
        session: { type: 'string' },
        leaseTtlSeconds: { type: 'number' },
        lastKeepaliveAgoMs: { type: 'number' },
        registered: { type: 'boolean' },
      },
    },
  },
} as const;

export function clusterRoutes(app: FastifyInstance, deps: RestServerDeps): void {
  const cluster = () => {
    const c = deps.services.cluster;
    if (!c) throw new UnavailableError('the cluster component has not started');
    return c;
  };
  app.get(
    '/api/v1/cluster',
    {
      schema: {
        tags: ['cluster'],
        summary: 'Region view: leader and every known node with its status (built from the etcd watches)',
        response: { 200: clusterView },
      },
    },
    async () => {
      const c = cluster();
      const v = c.view();
      return { mode: c.mode, self: c.nodeId, leader: v.leader, nodes: v.nodes, etcd: c.etcd() };
    },
  );
  // The same operations on any member by id: served here for this node, else forwarded to it.
  const dispatcher = memberDispatcher(deps.services);
  const onMember = async (
    request: FastifyRequest,
    reply: FastifyReply,
    op: 'vms' | 'drain' | 'uncordon',
    local: () => Promise<unknown>,
  ): Promise<unknown> => {
    const c = cluster();
    const { node } = request.params as { node: string };
    if (node === 'self' || node === c.nodeId) return local();
    const m = c.members().find((n) => n.id === node);
    if (!m) {
      const known = c.view().nodes.find((n) => n.id === node);
      if (known) throw new UnavailableError(`node ${node} is ${known.status}: it cannot be reached to ${op}`);
      throw new NotFoundError('node', node);
    }
    const t = { node, apiUrl: m.apiUrl, address: m.addresses[0] ?? '' };
    return relayTo(
      deps.services,
      request,
      reply,
      t,
      `/api/v1/cluster/self/${op}`,
      60_000,
      (why) =>
        new InvalidStateError(`node ${node} (${t.address}): cannot forward ${op} (${why})`, {
          key: 'node',
          hint: `send it to that node: --url ${t.apiUrl ?? `http://${t.address}`}`,
        }),
      dispatcher(),
    );
  };
  const nodeParams = {
    type: 'object',
    properties: { node: { type: 'string', minLength: 1 } },
    required: ['node'],
  } as const;
  app.get(
    '/api/v1/cluster/nodes/:node/vms',
    {
      schema: {
        tags: ['cluster'],
        summary: "VMs with a live process on a member (the driver's view), forwarded to that member",
        params: nodeParams,
      },
    },
    async (request, reply) =>
      onMember(request, reply, 'vms', async () => ({
        node: cluster().nodeId,
        vms: deps.services.vms?.localVmIds() ?? [],
      })),
  );
  app.get(
    '/api/v1/cluster/self/vms',
    {
      schema: {
        tags: ['cluster'],
        summary: "VMs with a live process on this node (the driver's view, not the database's)",
        response: {
          200: {
            type: 'object',
            properties: { node: { type: 'string' }, vms: { type: 'array', items: { type: 'string' } } },
          },
        },
      },
    },
    async () => ({ node: cluster().nodeId, vms: deps.services.vms?.localVmIds() ?? [] }),
  );
  const setDrain = async (draining: boolean) => {
    const c = cluster();
    const drain = await c.setDraining(draining);
    const v = c.view();
    return { mode: c.mode, self: c.nodeId, leader: v.leader, nodes: v.nodes, etcd: c.etcd(), drain };
  };
  for (const [op, draining] of [
    ['drain', true],
    ['uncordon', false],
  ] as const) {
    app.post(
      `/api/v1/cluster/self/${op}`,
      {
        schema: {
          tags: ['cluster'],
          summary:
            op === 'drain'
              ? 'Mark this node draining; with shared records its running VMs move away one by one: live-migrated where this node can migrate, else stopped here and restarted elsewhere by the leader (`drain.method`, `drain.moving`; poll /api/v1/cluster/self/vms)'
              : 'Clear the draining mark of this node',
          response: {
            200: {
              ...clusterView,
              properties: {
                ...clusterView.properties,
                drain: {
                  type: 'object',
                  properties: {
                    method: { type: 'string', enum: ['live-migration', 'stop-and-restart', 'none'] },
                    moving: { type: 'integer' },
                  },
                },
              },
            },
          },
        },
      },
      async () => setDrain(draining),
    );
    app.post(
      `/api/v1/cluster/nodes/:node/${op}`,
      {
        schema: {
          tags: ['cluster'],
          summary: `As /api/v1/cluster/self/${op}, for the member named (forwarded to it)`,
          params: nodeParams,
        },
      },
      async (request, reply) => onMember(request, reply, op, async () => setDrain(draining)),
    );
  }
}
