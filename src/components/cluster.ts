// Core component "cluster": in `cluster.mode: etcd` opens the region's etcd session (self-fencing), follows
// members and leader by watch, registers this node (as `services.nodeRegistrar`) and campaigns; in `single`
// mode it only answers the cluster view with this node as its own leader. Publishes `services.cluster`.
import { performance } from 'node:perf_hooks';
import type { Component, ComponentHealth } from '../boot/component.js';
import type { Services } from '../boot/services.js';
import type { NovaCronConfig } from '../config/schema.js';
import { UnavailableError } from '../errors.js';
import type {
  ClusterView,
  Election,
  EtcdConnection,
  LeaderWatch,
  MemberWatch,
  Membership,
  NodeInfo,
  Session,
  SessionState,
} from '../cluster/index.js';
import type { NodeAnnouncement, NodeRegistrar } from './registration.js';
import { nodeCapacityOf } from './vms.js';
import { migrateVmTo } from './migration.js';
import type { NodeUsage } from '../store/types.js';
// Type-only: declares services.api, services.store and services.vms read here.
import type {} from './api.js';
import type {} from '../store/index.js';

/** What the rest of the node (API, CLI through the API) knows about the region. */
export interface ClusterService {
  readonly mode: 'single' | 'etcd';
  readonly nodeId: string;
  /** True while this node is cut off from etcd (its session fenced): writes must be refused. */
  isFenced(): boolean;
  /** The leader as last seen (null when unknown or while fenced). */
  leader(): string | null;
  /** Live members, from the membership watch (single mode: this node). */
  members(): readonly NodeInfo[];
  /** The `GET /api/v1/cluster` view (no etcd round trip: built from the watches). */
  view(): ClusterView;
  /** etcd connection facts, null in single mode. */
  etcd(): ClusterEtcdInfo | null;
  /**
   * Marks this node draining (or not) in its membership record. Draining, in a region with shared
   * records, also moves its running VMs away one by one: live migration to another member where
   * this node can migrate, else handed back (stopped here, then placed elsewhere by the leader).
   */
  setDraining(draining: boolean): Promise<DrainOutcome>;
}

export interface DrainOutcome {
  /**
   * `live-migration`: each VM is live-migrated to another member (one that cannot go live is
   * stopped and restarted elsewhere); `stop-and-restart`: live migration is unavailable on this
   * node (sim driver, no cluster.join_token …); `none`: only the mark (no shared records, or uncordon).
   */
  readonly method: 'live-migration' | 'stop-and-restart' | 'none';
  /** VMs being moved off this node. */
  readonly moving: number;
}

export interface ClusterEtcdInfo {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly region: string;
  readonly session: SessionState;
  readonly leaseTtlSeconds: number;
  /** ms since the last keepalive etcd confirmed was sent. */
  readonly lastKeepaliveAgoMs: number;
  readonly registered: boolean;
}

declare module '../boot/services.js' {
  interface Services {
    cluster?: ClusterService;
  }
}

/** host:port of a base URL (`http://127.0.0.1:8080` → `127.0.0.1:8080`); the input when it is no URL. */
export function hostPortOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** The membership record of this node from its announcement. Pure. */
export function nodeInfoOf(node: NodeAnnouncement): NodeInfo {
  return {
    id: node.id,
    addresses: [hostPortOf(node.apiUrl), ...(node.grpcAddress ? [node.grpcAddress] : [])].filter(
      (a) => a !== '',
    ),
    capacity: {
      cpus: node.capacity.cpus,
      memoryMiB: node.capacity.memoryMib,
      diskGiB: Math.floor(node.capacity.diskMib / 1024),
    },
    labels: node.labels,
    driver: node.driver,
    ...(node.grpcAddress ? { grpcUrl: `${schemeOf(node.apiUrl)}://${node.grpcAddress}` } : {}),
    ...(node.apiUrl ? { apiUrl: node.apiUrl } : {}),
  };
}

/** `https` when the API serves TLS (the gRPC server shares its certificate), else `http`. */
function schemeOf(apiUrl: string): 'http' | 'https' {
  return apiUrl.startsWith('https:') ? 'https' : 'http';
}

/** Single mode: this node alone, its own leader. */
function singleService(config: NovaCronConfig, services: Services): ClusterService {
  const id = config.system.node_id;
  return {
    mode: 'single',
    nodeId: id,
    isFenced: () => false,
    leader: () => id,
    members: () => [],
    view: () => ({
      leader: id,
      nodes: [{ id, status: 'ready', address: hostPortOf(services.api?.url ?? '') }],
    }),
    etcd: () => null,
    setDraining: (): Promise<DrainOutcome> =>
      Promise.reject(
        new UnavailableError('drain needs cluster.mode etcd: a single node has nowhere to send its VMs', {
          key: 'cluster.mode',
        }),
      ),
  };
}

export function clusterComponent(options: { dependsOn: readonly string[] }): Component {
  let conn: EtcdConnection | null = null;
  let session: Session | null = null;
  let members: MemberWatch | null = null;
  let leaders: LeaderWatch | null = null;
  let membership: Membership | null = null;
  let election: Election | null = null;
  let registerError = '';
  /** Region work of this node (cluster mode on a shared PostgreSQL): agent, leader, fencing. */
  let regionStop: (() => Promise<void>) | null = null;
  /** Hands this node's running VMs back to the leader (drain); null without shared records. */
  let drainVms: (() => Promise<DrainOutcome>) | null = null;
  let mode: 'single' | 'etcd' = 'single';
  let service: ClusterService | null = null;

  const release = async (): Promise<void> => {
    await regionStop?.().catch(() => undefined);
    regionStop = null;
    await election?.stop().catch(() => undefined);
    election = null;
    if (session?.state === 'ready') await membership?.leave().catch(() => undefined);
    membership = null;
    await members?.close().catch(() => undefined);
    await leaders?.close().catch(() => undefined);
    members = null;
    leaders = null;
    await session?.close();
    session = null;
    conn?.close();
    conn = null;
  };

  return {
    name: 'cluster',
    phase: 'core',
    dependsOn: options.dependsOn,
    critical: true,
    async start(ctx) {
      const cfg = ctx.config.cluster;
      mode = cfg.mode;
      if (cfg.mode === 'single') {
        service = singleService(ctx.config, ctx.services);
        ctx.services.cluster = service;
        return;
      }
      const {
        LeaderWatch,
        MemberWatch,
        Membership,
        Election,
        Session,
        connectEtcd,
        loadEtcdSecurity,
        diagnoseEtcd,
        buildClusterView,
        listKnownNodes,
        AssignmentAgent,
        RegionLeader,
        Keys,
        drainTargets,
      } = await import('../cluster/index.js');
      const { schedulerOptionsFromConfig } = await import('../scheduler/index.js');
      const { parseStoredSpec } = await import('../vm/model.js');
      const nodeId = ctx.config.system.node_id;
      const region = ctx.config.system.cluster_id;
      const endpoints = cfg.etcd.endpoints;
      // TLS and auth keys checked against the endpoints and the PEM files read before any connection
      const security = await loadEtcdSecurity(cfg.etcd);
      const connectOptions = { endpoints, prefix: cfg.etcd.prefix, ...security };
      const c = connectEtcd(connectOptions);
      conn = c;
      let s: Session;
      try {
        s = await Session.open(c, { ttlSeconds: cfg.etcd.lease_ttl_seconds });
        session = s;
        const watchTrouble = (what: string) => (message: string) =>
          ctx.logger.warn({ watch: what }, `etcd ${what} watch: ${message}`);
        members = await MemberWatch.start(c, { onTrouble: watchTrouble('member') });
        leaders = await LeaderWatch.start(c, region);
      } catch (err) {
        await release();
        // which endpoint failed and why (TLS, credentials, refused), each tried alone
        const detail = await diagnoseEtcd(connectOptions, err);
        throw new UnavailableError(`etcd unavailable: ${detail}`, {
          key: 'cluster.etcd.endpoints',
          hint: 'start etcd or fix cluster.etcd.endpoints (env NOVACRON_CLUSTER__ETCD__ENDPOINTS), cluster.etcd.tls.* or cluster.etcd.username/password; or use cluster.mode single',
          cause: err,
        });
      }
      if (ctx.signal.aborted) {
        await release();
        throw new UnavailableError('cluster start abandoned');
      }
      // durable records read once; later joins are added from the watch
      const known = new Map<string, NodeInfo>();
      for (const n of await listKnownNodes(c).catch(() => [])) known.set(n.id, n);
      const mw = members;
      const lw = leaders;
      for (const n of mw.nodes()) known.set(n.id, n);
      mw.onChange((ch) => {
        if (ch.node) known.set(ch.id, ch.node);
        ctx.events.publish('cluster.member', { change: ch.type, id: ch.id });
        ctx.logger.info({ node: ch.id, change: ch.type }, `cluster member ${ch.id}: ${ch.type}`);
      });
      lw.onChange((leader) => {
        ctx.events.publish('cluster.leader', { leader });
        ctx.logger.info({ leader }, leader ? `cluster leader is ${leader}` : 'cluster has no leader');
      });
      let lastView: ClusterView | undefined;
      s.onFence((e) => {
        ctx.logger.warn(
          { leaseId: e.leaseId, earliestExpiryInMs: Math.round(e.earliestExpiry - e.at) },
          'partitioned from etcd: fenced; writes refused until it rejoins',
        );
        ctx.events.publish('cluster.fenced', { id: nodeId });
      });
      s.onRejoin((lease) => {
        ctx.logger.info({ leaseId: lease }, 'rejoined etcd with a new lease');
        ctx.events.publish('cluster.rejoined', { id: nodeId });
      });
      // This node's own election answers for itself at once (the txn that made it leader or the
      // fence or resignation that ended it); the watch of the leader key shows either a moment later.
      const leaderNow = (): string | null => {
        if (election?.term) return nodeId;
        const watched = lw.leader();
        return watched === nodeId && election ? null : watched;
      };
      const view = (): ClusterView => {
        const fenced = s.state !== 'ready';
        if (fenced && lastView) {
          const self = { id: nodeId, partitioned: true };
          const last = lastView.nodes;
          const asInfo = (n: { id: string; address: string }): NodeInfo => ({
            id: n.id,
            addresses: [n.address],
            capacity: { cpus: 0, memoryMiB: 0 },
            labels: {},
            driver: '',
          });
          return buildClusterView({
            known: last.map(asInfo),
            live: last.filter((n) => n.status === 'ready' || n.status === 'draining').map(asInfo),
            leader: null,
            self,
          });
        }
        const v = buildClusterView({
          known: [...known.values()],
          live: mw.nodes(),
          leader: leaderNow(),
          self: { id: nodeId, partitioned: fenced },
        });
        if (!fenced) lastView = v;
        return v;
      };
      service = {
        mode: 'etcd',
        nodeId,
        isFenced: () => s.state === 'partitioned',
        leader: () => (s.state === 'ready' ? leaderNow() : null),
        members: () => mw.nodes(),
        view,
        etcd: () => ({
          endpoints,
          prefix: c.prefix,
          region,
          session: s.state,
          leaseTtlSeconds: s.ttlSeconds,
          lastKeepaliveAgoMs: Math.round(performance.now() - s.lastKeepaliveOkAt),
          registered: membership !== null,
        }),
        async setDraining(draining) {
          if (!membership) throw new UnavailableError('this node is not registered in the region yet');
          if (s.state !== 'ready')
            throw new UnavailableError('node is partitioned from etcd: writes refused until it rejoins');
          await membership.setDraining(draining);
          if (!draining || !drainVms) return { method: 'none', moving: 0 };
          return drainVms();
        },
      };
      const registrar: NodeRegistrar = {
        kind: 'etcd',
        async register(node) {
          // announce what the node offers to VMs (overcommit applied), as the local scheduler does
          const offered = nodeCapacityOf(ctx.config, ctx.services.host);
          try {
            membership = await Membership.join(c, s, {
              ...nodeInfoOf(node),
              capacity: {
                cpus: offered.cpus,
                memoryMiB: offered.memoryMib,
                diskGiB: Math.floor(offered.diskMib / 1024),
              },
            });
          } catch (err) {
            registerError = (err as Error).message;
            throw err;
          }
          registerError = '';
          // Records shared by the region: the leader places, agents start what they are assigned.
          const vms = ctx.services.vms;
          const store = ctx.services.store;
          const shared =
            ctx.config.database.type === 'postgresql' && vms !== undefined && store !== undefined;
          let leader: InstanceType<typeof RegionLeader> | null = null;
          if (shared) {
            const policies = new Map<string, string>();
            const refreshPolicies = async (): Promise<void> => {
              if (s.state !== 'ready') return;
              const page = await store.vms.list({ filters: { node: nodeId }, limit: 1000 });
              policies.clear();
              for (const v of page.items) policies.set(v.id, v.restartPolicy);
            };
            await refreshPolicies().catch(() => undefined);
            const policyTimer = setInterval(() => void refreshPolicies().catch(() => undefined), 2000);
            policyTimer.unref();
            const offFence = s.onFence(() => {
              void vms
                .fence((id) => policies.get(id))
                .then((ids) => {
                  ctx.logger.warn({ vms: ids }, `fenced: stopped ${ids.length} HA VM(s) on this node`);
                  ctx.events.publish('cluster.fenced-vms', { id: nodeId, vms: ids });
                });
            });
            vms.setRegionHooks({
              isFenced: () => s.state !== 'ready',
              placementRequested: (id) => {
                void c.kv
                  .put(Keys.pending(id))
                  .value(nodeId)
                  .catch((err: unknown) =>
                    ctx.logger.warn(
                      { vmId: id, err: (err as Error).message },
                      'could not tell the leader about a create (its periodic pass will place it)',
                    ),
                  );
              },
            });
            const agent = await AssignmentAgent.start(
              c,
              nodeId,
              {
                onAssign: async (a) => {
                  // a VM started here is not in `policies` until the next refresh: fencing then
                  // stops it too (an unknown policy counts as HA)
                  const r = await vms.runAssigned(a.vm);
                  return r === 'ignored' ? 'accepted' : r;
                },
                onRemove: async (vm) => {
                  await vms.dropIfNotOurs(vm);
                },
              },
              {
                onTrouble: (message) =>
                  ctx.logger.warn({ watch: 'assignment' }, `etcd assignment watch: ${message}`),
              },
            );
            leader = new RegionLeader({
              conn: c,
              session: s,
              region,
              nodeId,
              store,
              members: mw,
              scheduler: schedulerOptionsFromConfig(ctx.config.scheduler),
              leaseTtlMs: cfg.etcd.lease_ttl_seconds * 1000,
              graceMs: cfg.ha_grace_seconds * 1000,
              logger: ctx.logger,
              publish: (type, data) => ctx.events.publish(type, data),
            });
            const l = leader;
            let drainRun: Promise<void> = Promise.resolve();
            const scheduler = schedulerOptionsFromConfig(ctx.config.scheduler);
            /**
             * Live-migrates one VM off this draining node: to the scheduler's choice among the members
             * that can take it, then the next best. Resolves with how it ended, or with why it could
             * not go live (the caller then hands it back: stop here, restart elsewhere).
             */
            const migrateOff = async (id: string): Promise<{ to: string } | { reason: string }> => {
              const mig = ctx.services.migrations;
              if (!mig?.manager)
                return { reason: mig?.unavailable ?? 'the migrations component is not running' };
              const self = membership?.self;
              const vm = await store.vms.get(id);
              if (!self || !vm) return { reason: 'the VM or this node left the region meanwhile' };
              const spec = parseStoredSpec(vm.spec);
              const live = mw.nodes();
              const usage = new Map<string, NodeUsage>();
              for (const n of live) if (n.id !== nodeId) usage.set(n.id, await store.allocations.usage(n.id));
              const { targets, excluded } = drainTargets({
                self,
                members: live,
                usage,
                vm,
                resources: { cpus: spec.cpus, memoryMib: spec.memoryMib },
                scheduler,
              });
              if (targets.length === 0)
                return {
                  reason: `no member can take it live (${excluded.map((e) => `${e.node}: ${e.reason}`).join('; ') || 'no other live member'})`,
                };
              const failures: string[] = [];
              for (const target of targets) {
                if (membership?.self.draining !== true || s.state !== 'ready') break;
                try {
                  const done = await migrateVmTo(ctx.services, id, target, { wait: true });
                  if (done.state === 'completed') return { to: target };
                  failures.push(`${target}: ${done.state}${done.error ? ` (${done.error})` : ''}`);
                } catch (err) {
                  failures.push(`${target}: ${(err as Error).message}`);
                }
                // a migration that failed leaves the VM running here; anything else: stop trying
                const now = await store.vms.get(id);
                if (now?.node !== nodeId || now.state !== 'running') return { reason: failures.join('; ') };
              }
              return { reason: failures.join('; ') || 'drain ended (uncordoned, or this node was cut off)' };
            };
            drainVms = async () => {
              const page = await store.vms.list({
                filters: { node: nodeId, state: 'running', desiredState: 'running' },
                limit: 1000,
              });
              const ids = page.items.map((v) => v.id);
              const live = ctx.services.migrations?.manager !== undefined;
              ctx.logger.info(
                { vms: ids.length },
                live
                  ? `draining: live-migrating ${ids.length} VM(s) away (stop-and-restart for any that cannot go live)`
                  : `draining: handing ${ids.length} VM(s) back (stop, then restart elsewhere): ${ctx.services.migrations?.unavailable ?? 'live migration unavailable'}`,
              );
              drainRun = drainRun.then(async () => {
                for (const id of ids) {
                  if (membership?.self.draining !== true || s.state !== 'ready') break;
                  try {
                    if (live) {
                      const r = await migrateOff(id);
                      if ('to' in r) {
                        ctx.logger.info({ vmId: id, to: r.to }, `draining: live-migrated to ${r.to}`);
                        ctx.events.publish('cluster.drained', { id, to: r.to, method: 'live-migration' });
                        continue;
                      }
                      ctx.logger.warn(
                        { vmId: id, reason: r.reason },
                        'draining: cannot live-migrate; stopping it here to restart elsewhere',
                      );
                      const still = await store.vms.get(id);
                      if (still?.node !== nodeId || still.state !== 'running') continue;
                      if (membership?.self.draining !== true || s.state !== 'ready') break;
                    }
                    if (await vms.handBack(id)) {
                      await c.kv.put(Keys.pending(id)).value(nodeId);
                      ctx.events.publish('cluster.drained', { id, method: 'stop-and-restart' });
                    }
                  } catch (err) {
                    ctx.logger.warn(
                      { vmId: id, err: (err as Error).message },
                      'draining: could not move a VM away',
                    );
                  }
                }
              });
              return { method: live ? 'live-migration' : 'stop-and-restart', moving: ids.length };
            };
            regionStop = async () => {
              drainVms = null;
              await drainRun;
              clearInterval(policyTimer);
              offFence();
              vms.setRegionHooks(undefined);
              await l.stop();
              await agent.close();
            };
          }
          election = new Election(c, s, {
            region,
            nodeId,
            onElected: (t) => {
              ctx.logger.info({ term: t.revision }, `this node leads region ${region}`);
              ctx.events.publish('cluster.elected', { id: nodeId, term: t.revision });
              void leader?.lead(t);
            },
            onDeposed: (t, reason) => {
              ctx.logger.warn({ term: t.revision, reason }, `this node no longer leads region ${region}`);
              ctx.events.publish('cluster.deposed', { id: nodeId, term: t.revision, reason });
              void leader?.stop();
            },
          });
          election.start();
        },
        async deregister() {
          await regionStop?.().catch(() => undefined);
          regionStop = null;
          await election?.stop().catch(() => undefined);
          election = null;
          if (s.state === 'ready') await membership?.leave().catch(() => undefined);
          membership = null;
        },
      };
      ctx.services.cluster = service;
      ctx.services.fence = service;
      ctx.services.nodeRegistrar = registrar;
      ctx.logger.info(
        { endpoints, region, leaseTtlSeconds: cfg.etcd.lease_ttl_seconds },
        `connected to etcd; ${mw.nodes().length} live member(s), leader ${lw.leader() ?? 'none'}`,
      );
    },
    async stop(ctx) {
      if (ctx.services.cluster === service) delete ctx.services.cluster;
      if (ctx.services.fence === service) delete ctx.services.fence;
      service = null;
      await release();
    },
    health(): ComponentHealth {
      if (mode === 'single' || !service) return { status: 'up', detail: 'single node: its own leader' };
      const e = service.etcd();
      if (service.isFenced())
        return { status: 'down', detail: 'partitioned: cut off from etcd, writes refused until it rejoins' };
      if (registerError) return { status: 'down', detail: `not registered: ${registerError}` };
      const leader = service.leader();
      const count = service.members().length;
      return {
        status: 'up',
        detail: `etcd ${e?.endpoints.join(',') ?? ''}; leader ${leader ?? 'none'}; ${count} member(s)${e?.registered ? '' : '; not registered yet'}`,
      };
    },
  };
}
