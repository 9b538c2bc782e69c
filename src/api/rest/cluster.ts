// Cluster routes (`GET /api/v1/cluster`, drain/uncordon of this node) and the write guard that refuses
// API writes while this node is fenced from its region's etcd.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { InvalidStateError, UnavailableError } from '../../errors.js';
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
 * onRequest hook (after auth): 503 `unavailable` for API writes while the node is fenced; in a
 * region, 409 for an operation on a VM whose process lives on another live node (its driver is
 * there: the request must go to that node, whose address the error names).
 */
export function fenceGuard(services: Services) {
  return async (request: FastifyRequest): Promise<void> => {
    if (services.fence?.isFenced() === true && isApiWrite(request.method, request.url))
      throw new UnavailableError(PARTITIONED_MESSAGE, {
        hint: 'reads still work; retry on another node of the region, or here once it rejoins',
      });
    const cluster = services.cluster;
    if (cluster?.mode !== 'etcd' || services.vms === undefined) return;
    const target = vmOperationTarget(request.method, request.url);
    if (target === undefined) return;
    const vm = await services.vms.get(target).catch(() => undefined);
    if (vm?.node === undefined || vm.node === null || vm.node === cluster.nodeId) return;
    const owner = cluster.members().find((n) => n.id === vm.node);
    if (owner === undefined) return; // its node is down: the records can be changed here
    const address = owner.addresses[0] ?? '';
    throw new InvalidStateError(
      `vm ${vm.name} runs on node ${vm.node} (${address}): send this request to that node`,
      { key: 'node', details: { node: vm.node, address }, hint: `e.g. --url http://${address}` },
    );
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
              ? 'Mark this node draining; with shared records its running VMs are stopped here and restarted elsewhere by the leader, one by one (`drain.moving`; poll /api/v1/cluster/self/vms)'
              : 'Clear the draining mark of this node',
          response: {
            200: {
              ...clusterView,
              properties: {
                ...clusterView.properties,
                drain: {
                  type: 'object',
                  properties: {
                    method: { type: 'string', enum: ['stop-and-restart', 'none'] },
                    moving: { type: 'integer' },
                  },
                },
              },
            },
          },
        },
      },
      async () => {
        const c = cluster();
        const drain = await c.setDraining(draining);
        const v = c.view();
        return { mode: c.mode, self: c.nodeId, leader: v.leader, nodes: v.nodes, etcd: c.etcd(), drain };
      },
    );
  }
}
