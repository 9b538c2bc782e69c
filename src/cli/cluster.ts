// `novacron cluster status`: the region as a running node sees it (leader, members, etcd session,
// per-node state) over REST. Also the shared client of `novacron node …` (src/cli/node.ts).
import type { Command } from 'commander';
import { action, output, renderTable } from './run.js';

export interface ConnFlags {
  url?: string;
  token?: string;
  config?: string;
  dataDir?: string;
  output?: string;
}

export interface ClusterAnswer {
  mode: 'single' | 'etcd';
  self: string;
  leader: string | null;
  nodes: { id: string; status: string; address: string }[];
  etcd: {
    endpoints: string[];
    prefix: string;
    region: string;
    session: string;
    leaseTtlSeconds: number;
    lastKeepaliveAgoMs: number;
    registered: boolean;
  } | null;
}

export type Call = (
  method: string,
  path: string,
  body?: unknown,
) => Promise<{ status: number; json: unknown }>;

/** A REST caller for the node named by the flags (URL from --url or the config, token found by itself). */
export async function nodeClient(flags: ConnFlags): Promise<{ base: string; call: Call }> {
  const [{ loadConfig }, { findAdminToken }, { NovaCronError, ErrorCode }] = await Promise.all([
    import('../config/loader.js'),
    import('../security/find-token.js'),
    import('../errors.js'),
  ]);
  const overrides: Record<string, unknown> = {};
  if (flags.dataDir !== undefined) overrides['system.data_dir'] = flags.dataDir;
  const { config } = await loadConfig({ file: flags.config, flags: overrides });
  const host = config.api.host.includes(':') ? `[${config.api.host}]` : config.api.host;
  const base = (
    flags.url ?? `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${config.api.rest_port}`
  ).replace(/\/$/, '');
  const { token } = await findAdminToken(config, { flag: flags.token });
  const call: Call = async (method, path, body) => {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (err) {
      throw new NovaCronError(
        ErrorCode.Unavailable,
        `cannot reach the node at ${base}: ${(err as Error).message}`,
        {
          retryable: true,
          hint: 'is the node running? pass --url or --config of the node',
        },
      );
    }
    const text = await res.text();
    return { status: res.status, json: text ? (JSON.parse(text) as unknown) : null };
  };
  return { base, call };
}

/** Throws the API's error for a non-2xx answer, else returns its body. */
export async function expectOk(r: { status: number; json: unknown }): Promise<unknown> {
  if (r.status >= 200 && r.status < 300) return r.json;
  const { NovaCronError } = await import('../errors.js');
  const e = (r.json as { error?: { code?: string; message?: string; details?: unknown } } | null)?.error;
  const code = (e?.code ?? 'internal') as ConstructorParameters<typeof NovaCronError>[0];
  throw new NovaCronError(code, `${r.status}: ${e?.message ?? JSON.stringify(r.json)}`, {
    details: e?.details,
  });
}

export function connFlags(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'REST API of the node (default: http://api.host:api.rest_port from the config)')
    .option('--token <token>', 'API token (default: NOVACRON_TOKEN, else the node admin.token)')
    .option('-c, --config <file>', 'configuration file of the node')
    .option('-d, --data-dir <dir>', 'data directory of the node (for its admin.token)')
    .option('-o, --output <format>', 'table or json', 'table');
}

/** The node table with a leader and self marker. Pure. */
export function nodeRows(c: ClusterAnswer): Record<string, unknown>[] {
  return c.nodes.map((n) => ({
    id: n.id,
    status: n.status,
    address: n.address,
    role: n.id === c.leader ? 'leader' : '',
    self: n.id === c.self ? '*' : '',
  }));
}

export const NODE_COLUMNS = ['id', 'status', 'address', 'role', 'self'];

/** Text of `cluster status`. Pure. */
export function renderStatus(c: ClusterAnswer, readiness: string): string {
  const lines = [
    `mode:      ${c.mode}`,
    `this node: ${c.self} (${readiness})`,
    `leader:    ${c.leader ?? 'none'}`,
  ];
  if (c.etcd) {
    lines.push(
      `etcd:      ${c.etcd.endpoints.join(', ')} (prefix ${c.etcd.prefix}, region ${c.etcd.region})`,
      `session:   ${c.etcd.session}, lease TTL ${c.etcd.leaseTtlSeconds} s, last keepalive ${c.etcd.lastKeepaliveAgoMs} ms ago${c.etcd.registered ? '' : ', not registered'}`,
    );
  }
  const live = c.nodes.filter((n) => n.status === 'ready' || n.status === 'draining').length;
  lines.push(`members:   ${live} live of ${c.nodes.length} known`, '');
  return lines.join('\n') + renderTable(nodeRows(c), NODE_COLUMNS);
}

export function registerClusterCommand(program: Command): void {
  const cluster = program.command('cluster').description('Region (cluster mode) as a running node sees it');
  connFlags(cluster.command('status').description('Leader, members, etcd session and per-node state')).action(
    action(async (f: ConnFlags) => {
      const { call } = await nodeClient(f);
      // readiness is public and answers 503 while partitioned: read it, do not fail on it
      const [view, ready] = await Promise.all([call('GET', '/api/v1/cluster'), call('GET', '/health/ready')]);
      const c = (await expectOk(view)) as ClusterAnswer;
      const readiness = (ready.json as { status?: string } | null)?.status ?? `http ${ready.status}`;
      output({ ...c, readiness }, f.output === 'json', () => renderStatus(c, readiness));
    }),
  );
}
