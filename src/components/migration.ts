// Service component "migrations": the node's migration manager (src/migration/manager.ts). It opens
// the DWCP receiver of incoming migrations on dwcp.listen_port, registers novacron.v1.MigrationService
// (peers authenticate with cluster.join_token; DWCP streams as dwcp.auth says), settles migrations interrupted by a restart, and
// publishes `services.migrations` for REST (/api/v1/vms/{id}/migrate, /api/v1/migrations/{id}).
// Live migration needs the QEMU driver and a join token; without them the component is up but says
// why migrations are unavailable (and the API answers with that reason).
import { join } from 'node:path';
import type { Component } from '../boot/component.js';
import { requireService } from '../boot/services.js';
import type { Services } from '../boot/services.js';
import { InvalidStateError, UnavailableError, errorMessage } from '../errors.js';
import type { ConnectionSecurity } from '../dwcp/transport/connection.js';
import type { MigrationManager, MigrationView } from '../migration/manager.js';
import { nodeCapacityOf } from './vms.js';

export interface MigrationsService {
  /** The manager, or undefined when this node cannot migrate (see `unavailable`). */
  readonly manager: MigrationManager | undefined;
  /** Why migrations are unavailable on this node. */
  readonly unavailable: string | undefined;
}

declare module '../boot/services.js' {
  interface Services {
    migrations?: MigrationsService;
  }
}

export function migrationComponent(options: { dependsOn: readonly string[] }): Component {
  let manager: MigrationManager | undefined;
  let detail = 'not started';
  return {
    name: 'migrations',
    phase: 'service',
    dependsOn: options.dependsOn,
    critical: false,
    async start(ctx) {
      const vms = requireService(ctx.services, 'vms');
      const store = requireService(ctx.services, 'store');
      const grpc = requireService(ctx.services, 'grpc');
      const c = ctx.config;
      let unavailable: string | undefined;
      if (vms.driverName !== 'qemu')
        unavailable = `the ${vms.driverName} VM driver cannot live-migrate (vm.driver: qemu)`;
      else if (c.cluster.join_token === '')
        unavailable = 'cluster.join_token is empty: peers cannot authenticate each other';
      else if (!c.dwcp.enabled) unavailable = 'dwcp.enabled is false: migrations are carried by DWCP';
      let security: ConnectionSecurity | undefined;
      if (!unavailable) {
        // dwcp.auth: the join token, or this node's certificate from the cluster CA (security.tls.*).
        const { dwcpSecurity } = await import('../dwcp/transport/auth-config.js');
        security = await dwcpSecurity(c, { encrypt: c.dwcp.features.encryption }).catch((err: unknown) => {
          unavailable = `DWCP authentication (dwcp.auth: ${c.dwcp.auth}): ${errorMessage(err)}`;
          return undefined;
        });
      }
      if (unavailable) {
        ctx.services.migrations = { manager: undefined, unavailable };
        detail = `unavailable: ${unavailable}`;
        ctx.logger.info({ reason: unavailable }, 'live migration unavailable on this node');
        return;
      }
      const [{ MigrationManager }, { migrationServiceRegistration }] = await Promise.all([
        import('../migration/manager.js'),
        import('../api/grpc/migration-service.js'),
      ]);
      const dataDir = ctx.services.dataDir ?? c.system.data_dir;
      const profile = c.dwcp.profiles.internet;
      const m = await MigrationManager.open({
        store,
        vms,
        events: ctx.events,
        logger: {
          info: (f, msg) => ctx.logger.info(f, msg),
          warn: (f, msg) => ctx.logger.warn(f, msg),
          error: (f, msg) => ctx.logger.error(f, msg),
        },
        nodeId: c.system.node_id,
        peers: c.cluster.peers,
        // In a region, the live members announce their gRPC URL: drains and `vm migrate` reach them by id.
        resolvePeer: (name) => {
          const m = ctx.services.cluster?.members().find((n) => n.id === name);
          return m?.grpcUrl ? { name: m.id, url: m.grpcUrl } : undefined;
        },
        // The ML bridge predicts each link's rate from the samples earlier migrations recorded
        // (its moving-average fallback answers when the service is absent).
        predictLinkRate: async (samples) => {
          const ml = ctx.services.ml;
          if (!ml) throw new Error('the ml-engine component is not running');
          const a = await ml.predictBandwidth(samples, { profile: 'novacron-links' });
          return { bytesPerSecond: a.predicted, source: a.source };
        },
        joinToken: c.cluster.join_token,
        vmsRoot: join(dataDir, 'vms'),
        capacity: nodeCapacityOf(c, ctx.services.host),
        dwcp: {
          host: c.api.host,
          port: c.dwcp.listen_port,
          encrypt: c.dwcp.features.encryption,
          // Two streams (BBR keeps the queue short) and zstd 1 in one long-range context per stream (docs/migration.md).
          streams: Math.min(2, profile.streams),
          codec: { codec: 'zstd', level: 1 },
          ...(security ? { security } : {}),
        },
      });
      manager = m;
      grpc.addService(migrationServiceRegistration(() => m, c.cluster.join_token));
      ctx.services.migrations = { manager: m, unavailable: undefined };
      await m.recover();
      detail = `DWCP receiver on port ${m.dwcpPort}; peers: ${c.cluster.peers.map((p) => p.name).join(', ') || 'none'}`;
    },
    async stop(ctx) {
      delete ctx.services.migrations;
      await manager?.close();
      manager = undefined;
    },
    health: () => ({ status: 'up', detail }),
  };
}

/**
 * Migrates a VM (id or name) running on this node to the peer `target` (a name in cluster.peers),
 * live, and by default waits until it ended (state completed, failed or cancelled). For callers
 * such as a node drain; errors (unknown peer, VM not running here …) are thrown before anything moves.
 */
export async function migrateVmTo(
  services: Services,
  vm: string,
  target: string,
  options: { readonly maxDowntimeMs?: number; readonly wait?: boolean } = {},
): Promise<MigrationView> {
  const s = services.migrations;
  if (!s) throw new UnavailableError('the migrations component is not running');
  if (!s.manager)
    throw new InvalidStateError(`live migration is unavailable on this node: ${s.unavailable ?? ''}`);
  const started = await s.manager.migrate(vm, {
    target,
    live: true,
    ...(options.maxDowntimeMs === undefined ? {} : { maxDowntimeMs: options.maxDowntimeMs }),
  });
  return options.wait === false ? started : s.manager.wait(started.id);
}
