// Core component "vms": selects the VM driver (`vm.driver`; auto falls back to the simulator with a
// loud warning), builds the VM service over the store, reconciles every VM row with the driver, and
// publishes `services.vms`. Health names the driver and says `simulated` for the simulator.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Component } from '../boot/component.js';
import { requireService } from '../boot/services.js';
import type { NovaCronConfig } from '../config/schema.js';
import type { HostResources } from './resources.js';
import type { NodeCapacity } from '../store/types.js';
import type { VmService } from '../vm/service.js';

declare module '../boot/services.js' {
  interface Services {
    vms?: VmService;
  }
}

/** What this node offers to VMs: `node.capacity.*` overrides, else host facts; times the overcommit ratios. Pure. */
export function nodeCapacityOf(config: NovaCronConfig, host: HostResources | undefined): NodeCapacity {
  const cap = config.node.capacity;
  const oc = config.node.overcommit;
  const cpus = cap.cpus > 0 ? cap.cpus : (host?.cpus ?? 0);
  const memoryMib = cap.memory_mib > 0 ? cap.memory_mib : (host?.memoryMib ?? 0);
  const diskMib = cap.disk_gib > 0 ? cap.disk_gib * 1024 : Math.floor((host?.diskFreeGib ?? 0) * 1024);
  return {
    cpus: Math.floor(cpus * oc.cpu_ratio),
    memoryMib: Math.floor(memoryMib * oc.memory_ratio),
    diskMib,
  };
}

export function vmsComponent(options: { dependsOn: readonly string[] }): Component {
  let service: VmService | null = null;
  let detail = 'not started';
  return {
    name: 'vms',
    phase: 'core',
    dependsOn: options.dependsOn,
    critical: true,
    async start(ctx) {
      const store = requireService(ctx.services, 'store');
      const [{ selectVmDriver }, { VmService }, { schedulerOptionsFromConfig }] = await Promise.all([
        import('../vm/drivers/select-driver.js'),
        import('../vm/service.js'),
        import('../scheduler/index.js'),
      ]);
      const selection = await selectVmDriver(ctx.config.vm, {
        log: (message, fields) => ctx.logger.warn({ ...fields }, message),
      });
      if (selection.warning)
        ctx.logger.warn({ driver: selection.driver.name }, `WARNING: ${selection.warning}`);
      else ctx.logger.info({ driver: selection.driver.name }, selection.reason);
      const dataDir = ctx.services.dataDir ?? ctx.config.system.data_dir;
      const vmsRoot = join(dataDir, 'vms');
      await mkdir(vmsRoot, { recursive: true, mode: 0o700 });
      const capacity = nodeCapacityOf(ctx.config, ctx.services.host);
      const simulated = selection.driver.capabilities().simulated;
      const s = new VmService({
        store,
        driver: selection.driver,
        events: ctx.events,
        logger: ctx.logger,
        nodeId: ctx.config.system.node_id,
        vmsRoot,
        capacity,
        nodeLabels: ctx.config.node.labels,
        scheduler: schedulerOptionsFromConfig(ctx.config.scheduler),
        stopGraceMs: ctx.config.vm.stop_grace_seconds * 1000,
        checkPaths: !simulated,
        // Cluster mode on a shared PostgreSQL: the region's leader places creates (src/cluster/region.ts).
        regionPlacement: ctx.config.cluster.mode === 'etcd' && ctx.config.database.type === 'postgresql',
      });
      await s.reconcile();
      service = s;
      ctx.services.vms = s;
      detail = `driver ${selection.driver.name}${simulated ? ' (simulated: VMs do not really run)' : ''}; capacity ${capacity.cpus} cpus, ${capacity.memoryMib} MiB`;
    },
    async stop(ctx) {
      const s = service;
      service = null;
      if (ctx.services.vms === s) delete ctx.services.vms;
      await s?.close();
    },
    health: () => (service ? { status: 'up', detail } : { status: 'down', detail }),
  };
}

/** Service component "vm-grpc": registers novacron.v1.VmService into the gRPC server. */
export function vmGrpcComponent(options: { dependsOn: readonly string[] }): Component {
  let registered = false;
  return {
    name: 'vm-grpc',
    phase: 'service',
    dependsOn: options.dependsOn,
    critical: false,
    async start(ctx) {
      const grpc = requireService(ctx.services, 'grpc');
      const vms = requireService(ctx.services, 'vms');
      const { vmServiceRegistration } = await import('../api/grpc/vm-service.js');
      grpc.addService(vmServiceRegistration(() => vms));
      registered = true;
    },
    health: () =>
      registered
        ? { status: 'up', detail: 'novacron.v1.VmService' }
        : { status: 'down', detail: 'not registered' },
  };
}
