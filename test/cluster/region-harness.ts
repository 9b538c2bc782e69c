// A region for tests and bench/cluster: a private etcd (1 or 3 members), a fresh PostgreSQL database
// on the machine's server (dropped afterwards), and real `novacron start` processes (sim driver) that
// reach etcd only through TCP proxies the caller controls (one per node and etcd member), so any node
// can be partitioned. Everything started is stopped by `close()`.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { findQemuPidsUnder } from '../../src/vm/drivers/qemu/process.js';
import { freePort } from '../helpers/ports.js';
import { runCli, type CliProcess } from '../helpers/cli.js';
import { EtcdCluster } from './etcd-harness.js';
import { TcpProxy } from './tcp-proxy.js';

export const PG = { host: '127.0.0.1', port: 5432, user: 'postgres' } as const;

export interface RegionNode {
  readonly id: string;
  readonly dataDir: string;
  cli: CliProcess;
  url: string;
  /** One proxy per etcd member: pause them all to partition this node from etcd. */
  readonly proxies: TcpProxy[];
  /** Lines of output matching `re` so far. */
  count(re: RegExp): number;
  /** Resolves when `re` has matched `n` lines of output in total. */
  waitCount(re: RegExp, n: number, timeoutMs?: number): Promise<void>;
  auth(): Record<string, string>;
}

export interface VmRow {
  id: string;
  name: string;
  state: string;
  node: string | null;
  restartPolicy?: string;
}

export interface ClusterBody {
  mode: string;
  self: string;
  leader: string | null;
  nodes: { id: string; status: string; address: string }[];
}

export interface RegionOptions {
  readonly etcdMembers: 1 | 3;
  readonly nodes: readonly string[];
  readonly ttlSeconds?: number;
  readonly graceSeconds?: number;
  /** Per node: cpus offered (memory is 64 GiB, so cpus decide). */
  readonly cpus?: number;
  readonly logLevel?: string;
  /** Scheduler strategy (default spread: the tests want VMs on every node). */
  readonly strategy?: string;
  /** More `--set` keys for every node, applied last (e.g. the QEMU driver and a join token). */
  readonly settings?: Readonly<Record<string, string | number>>;
}

export class Region {
  readonly nodes = new Map<string, RegionNode>();
  readonly database: string;
  readonly prefix: string;

  private constructor(
    readonly etcd: EtcdCluster,
    private readonly options: RegionOptions,
    database: string,
  ) {
    this.database = database;
    this.prefix = `/novacron-region-${process.pid}-${Date.now()}`;
  }

  static async start(options: RegionOptions): Promise<Region> {
    const database = `nc_region_${process.pid}_${Date.now()}`;
    const admin = new pg.Client({ ...PG, database: 'postgres' });
    await admin.connect();
    try {
      await admin.query(`create database ${database}`);
    } finally {
      await admin.end();
    }
    let etcd: EtcdCluster;
    try {
      etcd = await EtcdCluster.start(options.etcdMembers);
    } catch (err) {
      await dropDatabase(database);
      throw err;
    }
    const region = new Region(etcd, options, database);
    try {
      for (const id of options.nodes) await region.startNode(id);
    } catch (err) {
      await region.close();
      throw err;
    }
    return region;
  }

  node(id: string): RegionNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Starts (or restarts, same id and data dir) a node and waits until it is ready. */
  async startNode(id: string): Promise<RegionNode> {
    const prev = this.nodes.get(id);
    const proxies =
      prev?.proxies ??
      (await Promise.all(
        this.etcd.endpoints.map((e) => {
          const u = new URL(e);
          return TcpProxy.start({ host: u.hostname, port: Number(u.port) });
        }),
      ));
    const dataDir = prev?.dataDir ?? mkdtempSync(join(tmpdir(), `nc-region-${id}-`));
    const o = this.options;
    const set = (k: string, v: string | number) => ['--set', `${k}=${v}`];
    const cli = runCli([
      'start',
      '--data-dir',
      dataDir,
      ...set('api.rest_port', await freePort()),
      ...set('api.grpc_port', await freePort()),
      ...set('dwcp.listen_port', await freePort()),
      ...set('vm.driver', 'sim'),
      ...set('ml.enabled', 'false'),
      ...set('system.node_id', id),
      ...set('system.cluster_id', 'region-test'),
      ...set('system.log_level', o.logLevel ?? 'info'),
      ...set('scheduler.strategy', o.strategy ?? 'spread'),
      ...set('node.capacity.cpus', o.cpus ?? 8),
      ...set('node.capacity.memory_mib', 65536),
      ...set('node.capacity.disk_gib', 100),
      ...set('cluster.mode', 'etcd'),
      ...set('cluster.etcd.endpoints', proxies.map((p) => p.url).join(',')),
      ...set('cluster.etcd.prefix', this.prefix),
      ...set('cluster.etcd.lease_ttl_seconds', o.ttlSeconds ?? 4),
      ...set('cluster.ha_grace_seconds', o.graceSeconds ?? 2),
      ...set('database.type', 'postgresql'),
      ...set('database.host', PG.host),
      ...set('database.port', PG.port),
      ...set('database.user', PG.user),
      ...set('database.database', this.database),
      ...Object.entries(o.settings ?? {}).flatMap(([k, v]) => set(k, v)),
    ]);
    const count = (re: RegExp) =>
      cli
        .output()
        .split('\n')
        .filter((l) => re.test(l)).length;
    const node: RegionNode = {
      id,
      dataDir,
      cli,
      url: '',
      proxies,
      count,
      waitCount(re, n, timeoutMs = 30_000) {
        if (count(re) >= n) return Promise.resolve();
        return new Promise((resolve, reject) => {
          const check = () => {
            if (count(re) >= n) {
              clearTimeout(timer);
              cli.child.stdout.off('data', check);
              resolve();
            }
          };
          const timer = setTimeout(() => {
            cli.child.stdout.off('data', check);
            reject(
              new Error(`${id}: timed out waiting for ${n}× ${re}; output:\n${cli.output().slice(-6000)}`),
            );
          }, timeoutMs);
          timer.unref();
          cli.child.stdout.on('data', check);
        });
      },
      auth: () => ({
        authorization: `Bearer ${readFileSync(join(dataDir, 'admin.token'), 'utf8').trim()}`,
      }),
    };
    this.nodes.set(id, node);
    const ready = JSON.parse(await cli.waitFor(/"msg":"ready in/, 90_000)) as { url: string };
    node.url = ready.url;
    return node;
  }

  kill(id: string): void {
    this.node(id).cli.child.kill('SIGKILL');
  }

  partition(id: string): void {
    for (const p of this.node(id).proxies) p.pause();
  }

  heal(id: string): void {
    for (const p of this.node(id).proxies) p.heal();
  }

  /** Live nodes' answers to a GET (nodes that do not answer are left out). */
  async getJson<T>(id: string, path: string): Promise<T> {
    const n = this.node(id);
    const res = await fetch(`${n.url}${path}`, { headers: n.auth(), signal: AbortSignal.timeout(5000) });
    if (res.status !== 200) throw new Error(`${id} GET ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  async createVm(
    id: string,
    name: string,
    extra: Record<string, unknown> = {},
  ): Promise<{ status: number; body: VmRow & { error?: { message: string } } }> {
    const n = this.node(id);
    const res = await fetch(`${n.url}/api/v1/vms`, {
      method: 'POST',
      headers: { ...n.auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ name, cpus: 1, memoryMib: 64, ...extra }),
    });
    return { status: res.status, body: (await res.json()) as VmRow & { error?: { message: string } } };
  }

  /** Every VM row, straight from the region's database. */
  async rows(): Promise<VmRow[]> {
    const c = new pg.Client({ ...PG, database: this.database });
    await c.connect();
    try {
      const r = await c.query<{
        id: string;
        name: string;
        state: string;
        node_id: string | null;
        restart_policy: string;
      }>('select id, name, state, node_id, restart_policy from vms order by name');
      return r.rows.map((x) => ({
        id: x.id,
        name: x.name,
        state: x.state,
        node: x.node_id,
        restartPolicy: x.restart_policy,
      }));
    } finally {
      await c.end();
    }
  }

  /** Allocations per VM (vm id → node ids holding one). */
  async allocations(): Promise<Map<string, string[]>> {
    const c = new pg.Client({ ...PG, database: this.database });
    await c.connect();
    try {
      const r = await c.query<{ vm_id: string; node_id: string }>('select vm_id, node_id from allocations');
      const m = new Map<string, string[]>();
      for (const x of r.rows) m.set(x.vm_id, [...(m.get(x.vm_id) ?? []), x.node_id]);
      return m;
    } finally {
      await c.end();
    }
  }

  /** Polls until `pred` holds (every 100 ms), or throws after `timeoutMs` with the last value. */
  async until<T>(
    what: string,
    fn: () => Promise<T>,
    pred: (v: T) => boolean,
    timeoutMs = 30_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: T | undefined;
    let lastErr: unknown;
    while (Date.now() < deadline) {
      try {
        last = await fn();
        if (pred(last)) return last;
      } catch (err) {
        lastErr = err;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(
      `timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)} ${lastErr ? String(lastErr) : ''}`,
    );
  }

  async close(): Promise<void> {
    for (const n of this.nodes.values()) n.cli.child.kill('SIGKILL');
    await Promise.all([...this.nodes.values()].map((n) => n.cli.exited.catch(() => undefined)));
    const logDir = process.env['NOVACRON_REGION_LOGS'];
    for (const n of this.nodes.values()) {
      if (logDir) writeFileSync(join(logDir, `${n.id}.log`), n.cli.output());
      for (const p of n.proxies) await p.close();
      // QEMU processes (qemu driver) outlive a SIGKILLed node: stop those under its data dir
      for (const pid of (await findQemuPidsUnder(join(n.dataDir, 'vms'))).keys()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      rmSync(n.dataDir, { recursive: true, force: true });
    }
    await this.etcd.stop();
    await dropDatabase(this.database);
  }
}

async function dropDatabase(database: string): Promise<void> {
  const admin = new pg.Client({ ...PG, database: 'postgres' });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${database} with (force)`);
  } finally {
    await admin.end();
  }
}

/**
 * Polls every node's driver view (`GET /api/v1/cluster/self/vms`) and records any VM seen live on
 * two nodes in the same round: split brain.
 */
export class DoubleRunWatcher {
  readonly violations: string[] = [];
  rounds = 0;
  #stop = false;
  #loop: Promise<void>;

  constructor(private readonly region: Region) {
    this.#loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.#stop) {
      const seen = new Map<string, string>();
      for (const n of this.region.nodes.values()) {
        if (n.cli.child.exitCode !== null || n.cli.child.signalCode !== null || n.url === '') continue;
        let vms: string[];
        try {
          vms = (await this.region.getJson<{ vms: string[] }>(n.id, '/api/v1/cluster/self/vms')).vms;
        } catch {
          continue;
        }
        for (const vm of vms) {
          const other = seen.get(vm);
          if (other !== undefined && other !== n.id)
            this.violations.push(`round ${this.rounds}: vm ${vm} live on ${other} and ${n.id}`);
          seen.set(vm, n.id);
        }
      }
      this.rounds++;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#loop;
  }
}
