// Cluster routes (`GET /api/v1/cluster`, drain/uncordon of this node) and the write guard that refuses
// API writes while this node is fenced from its region's etcd.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { UnavailableError } from '../../errors.js';
import type { Services } from '../../boot/services.js';
import type { RestServerDeps } from './server.js';
// Type-only: declares services.cluster.
import type {} from '../../components/cluster.js';

export const PARTITIONED_MESSAGE = 'node is partitioned from etcd: writes refused until it rejoins';

/** Writes are every non-GET/HEAD/OPTIONS request under /api/v1/. Pure. */
export function isApiWrite(method: string, url: string): boolean {
  return !['GET', 'HEAD', 'OPTIONS'].includes(method) && url.startsWith('/api/v1/');
}

/** onRequest hook (after auth): 503 `unavailable` for API writes while the node is fenced. */
export function fenceGuard(services: Services) {
  return async (request: FastifyRequest): Promise<void> => {
    if (services.fence?.isFenced() !== true) return;
    if (!isApiWrite(request.method, request.url)) return;
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
              ? 'Mark this node draining (no VMs are moved yet)'
              : 'Clear the draining mark of this node',
          response: { 200: clusterView },
        },
      },
      async () => {
        const c = cluster();
        await c.setDraining(draining);
        const v = c.view();
        return { mode: c.mode, self: c.nodeId, leader: v.leader, nodes: v.nodes, etcd: c.etcd() };
      },
    );
  }
}
