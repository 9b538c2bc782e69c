// Post-init component "registration": announces this node once everything else is up. The
// registrar is pluggable: a component that starts earlier (the cluster issue's etcd membership)
// publishes `services.nodeRegistrar`; without one, single mode records this node in the store's
// nodes table when the store exists, and does nothing otherwise.
import { hostname } from 'node:os';
import type { Component } from '../boot/component.js';
import type { Services } from '../boot/services.js';
import type { NovaCronConfig } from '../config/schema.js';
// Type-only: these modules declare the services read here (store, api, host, grpc).
import type {} from '../store/index.js';
import type {} from './api.js';
import type {} from './resources.js';
import type {} from '../api/grpc/server.js';

/** What a registrar is told about this node. */
export interface NodeAnnouncement {
  readonly id: string;
  readonly name: string;
  /** Base URL of the REST API. */
  readonly apiUrl: string;
  /** host:port of the gRPC server, or '' when none. */
  readonly grpcAddress: string;
  readonly driver: string;
  readonly capacity: { readonly cpus: number; readonly memoryMib: number; readonly diskMib: number };
  readonly labels: Readonly<Record<string, string>>;
}

/** Where a node announces itself. `register` must be idempotent (a restart registers again). */
export interface NodeRegistrar {
  /** For health and logs, e.g. `store`, `etcd`. */
  readonly kind: string;
  register(node: NodeAnnouncement): Promise<void>;
  /** Called at shutdown; marks the node down or removes it. Must not throw. */
  deregister?(nodeId: string): Promise<void>;
}

declare module '../boot/services.js' {
  interface Services {
    /** Set by the cluster component to replace the single-mode registrar. */
    nodeRegistrar?: NodeRegistrar;
  }
}

/** Builds the announcement from config and the services started. Pure. */
export function announcementOf(config: NovaCronConfig, services: Services): NodeAnnouncement {
  const cap = config.node.capacity;
  const host = services.host;
  return {
    id: config.system.node_id,
    name: hostname(),
    apiUrl: services.api?.url ?? '',
    grpcAddress: services.grpc?.address ?? '',
    driver: config.vm.driver,
    capacity: {
      cpus: cap.cpus > 0 ? cap.cpus : (host?.cpus ?? 0),
      memoryMib: cap.memory_mib > 0 ? cap.memory_mib : (host?.memoryMib ?? 0),
      diskMib: cap.disk_gib > 0 ? cap.disk_gib * 1024 : Math.floor((host?.diskFreeGib ?? 0) * 1024),
    },
    labels: config.node.labels,
  };
}

/** Single mode: the node's row in the store's nodes table (status `ready`; `down` at stop). */
export function storeRegistrar(store: NonNullable<Services['store']>): NodeRegistrar {
  return {
    kind: 'store',
    async register(node) {
      await store.nodes.upsert({
        id: node.id,
        name: node.name,
        address: node.apiUrl,
        status: 'ready',
        driver: node.driver,
        capacity: node.capacity,
        labels: node.labels,
      });
    },
    async deregister(nodeId) {
      await store.nodes.setStatus(nodeId, 'down').catch(() => undefined);
    },
  };
}

export function registrationComponent(options: { dependsOn: readonly string[] }): Component {
  let registrar: NodeRegistrar | null = null;
  let detail = 'not registered';
  let nodeId = '';
  return {
    name: 'registration',
    phase: 'post',
    dependsOn: options.dependsOn,
    critical: false,
    async start(ctx) {
      registrar =
        ctx.services.nodeRegistrar ?? (ctx.services.store ? storeRegistrar(ctx.services.store) : null);
      if (!registrar) {
        detail = 'single node without a store: nothing to register with';
        return;
      }
      const node = announcementOf(ctx.config, ctx.services);
      nodeId = node.id;
      await registrar.register(node);
      detail = `registered ${node.id} with ${registrar.kind}`;
      ctx.events.publish('node.registered', { id: node.id, registrar: registrar.kind, apiUrl: node.apiUrl });
    },
    async stop() {
      if (registrar?.deregister && nodeId) await registrar.deregister(nodeId);
    },
    health: () => ({ status: 'up', detail }),
  };
}
