// `novacron vm create|list|get|start|stop|restart|delete|console`: the VM API of a running node over
// REST. The URL defaults to api.host/api.rest_port of the config; the token is found by itself
// (--token, NOVACRON_TOKEN, or the node's admin.token). Heavy modules load inside the actions.
import { InvalidArgumentError, type Command } from 'commander';
import { ValidationError } from '../errors.js';
import { action, output, renderTable } from './run.js';
import { registerVmMigrateCommand } from './vm-migrate.js';

interface ConnFlags {
  url?: string;
  token?: string;
  config?: string;
  dataDir?: string;
  output?: string;
}

interface VmRow {
  id: string;
  name: string;
  node: string | null;
  state: string;
  cpus: number;
  memoryMib: number;
  labels: Record<string, string>;
  error: string | null;
}

const COLUMNS = ['name', 'id', 'node', 'state', 'cpus', 'memoryMib', 'labels'];

async function client(
  flags: ConnFlags,
): Promise<
  (method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<unknown>
> {
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
  return async (method, path, body, headers = {}) => {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
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
    const json: unknown = text ? JSON.parse(text) : null;
    if (!res.ok) {
      const e = (
        json as {
          error?: { code?: string; message?: string; details?: unknown; retryable?: boolean };
        } | null
      )?.error;
      const code = (e?.code ?? 'internal') as (typeof ErrorCode)[keyof typeof ErrorCode];
      const retryable = e?.retryable === true;
      throw new NovaCronError(code, `${res.status}: ${e?.message ?? text}`, {
        details: e?.details,
        retryable,
        ...(retryable ? { hint: retryHint(code) } : {}),
      });
    }
    return json;
  };
}

/** What the CLI says about an error the node marked retryable (exit code 2, see run.ts). */
export function retryHint(code: string): string {
  return code === 'resource_exhausted'
    ? 'retryable: the node is full now; the same command can succeed once VMs are deleted or capacity is added'
    : 'retryable: the same command can succeed later, unchanged';
}

function conn(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'REST API of the node (default: http://api.host:api.rest_port from the config)')
    .option('--token <token>', 'API token (default: NOVACRON_TOKEN, else the node admin.token)')
    .option('-c, --config <file>', 'configuration file of the node')
    .option('-d, --data-dir <dir>', 'data directory of the node (for its admin.token)')
    .option('-o, --output <format>', 'table or json', 'table');
}

const json = (f: ConnFlags) => f.output === 'json';
const one = (vm: VmRow) => renderTable([vm as unknown as Record<string, unknown>], COLUMNS);

/** Parses `256`, `256Mi`, `1Gi`, `512M`, `2G` into MiB; anything else is a clear error. */
export function parseMemoryMib(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(mi?b?|gi?b?)?$/i.exec(value.trim());
  if (!m) {
    throw new InvalidArgumentError(`"${value}" is not a size: write MiB (256) or 256Mi, 1Gi`);
  }
  const n = Number(m[1]);
  const unit = (m[2] ?? 'm').toLowerCase();
  const mib = unit.startsWith('g') ? n * 1024 : n;
  if (!Number.isInteger(mib) || mib <= 0) {
    throw new InvalidArgumentError(`"${value}" must be a positive whole number of MiB`);
  }
  return mib;
}

export function registerVmCommand(program: Command): void {
  const vm = program.command('vm').description('Manage VMs on a running node');
  registerVmMigrateCommand(vm, conn, client);

  conn(
    vm
      .command('create [name]')
      .description('Create and start a VM')
      .option('--name <name>', 'VM name (or give it as the argument)')
      .requiredOption('--cpus <n>', 'vCPUs', (v) => Number(v))
      .requiredOption('--memory <size>', 'memory: MiB, or with a unit (256Mi, 1Gi, 512M, 2G)', parseMemoryMib)
      .option('--image <dir>', 'guest directory holding vmlinuz and initrd.img (e.g. the test guest)')
      .option('--kernel <path>', 'kernel image (direct boot)')
      .option('--initrd <path>', 'initrd image')
      .option('--cmdline <text>', 'kernel command line')
      .option('--disk <path>', 'disk image (repeatable)', (v: string, prev: string[]) => [...prev, v], [])
      .option('--label <k=v>', 'label (repeatable)', (v: string, prev: string[]) => [...prev, v], [])
      .option('--restart-policy <policy>', 'never or always')
      .option('--idempotency-key <key>', 'retry-safe create: the same key and body return the same VM'),
  ).action(
    action(
      async (
        positional: string | undefined,
        f: ConnFlags & {
          name?: string;
          cpus: number;
          memory: number;
          image?: string;
          kernel?: string;
          initrd?: string;
          cmdline?: string;
          disk: string[];
          label: string[];
          restartPolicy?: string;
          idempotencyKey?: string;
        },
      ) => {
        const { resolve, join } = await import('node:path');
        const name = positional ?? f.name;
        if (name === undefined) {
          throw new ValidationError('vm create: a name is required', {
            hint: 'novacron vm create web1 … or --name web1',
          });
        }
        if (f.image !== undefined) {
          f.kernel ??= join(f.image, 'vmlinuz');
          f.initrd ??= join(f.image, 'initrd.img');
        }
        const labels = Object.fromEntries(
          f.label.map((l) => {
            const i = l.indexOf('=');
            return i > 0 ? [l.slice(0, i), l.slice(i + 1)] : [l, ''];
          }),
        );
        const body = {
          name,
          cpus: f.cpus,
          memoryMib: f.memory,
          ...(f.kernel ? { kernel: resolve(f.kernel) } : {}),
          ...(f.initrd ? { initrd: resolve(f.initrd) } : {}),
          ...(f.cmdline !== undefined ? { cmdline: f.cmdline } : {}),
          ...(f.disk.length ? { disks: f.disk.map((p) => ({ path: resolve(p) })) } : {}),
          ...(f.label.length ? { labels } : {}),
          ...(f.restartPolicy ? { restartPolicy: f.restartPolicy } : {}),
        };
        const call = await client(f);
        const r = (await call(
          'POST',
          '/api/v1/vms',
          body,
          f.idempotencyKey ? { 'idempotency-key': f.idempotencyKey } : {},
        )) as VmRow;
        output(r, json(f), () => one(r));
      },
    ),
  );

  conn(
    vm
      .command('list')
      .description('List VMs')
      .option('--state <states>', 'comma-separated states')
      .option('--selector <k=v,...>', 'label selector')
      .option('--prefix <name>', 'name prefix')
      .option('--all', 'follow every page (default: first 100)'),
  ).action(
    action(async (f: ConnFlags & { state?: string; selector?: string; prefix?: string; all?: boolean }) => {
      const call = await client(f);
      const items: VmRow[] = [];
      let next: string | null = null;
      do {
        const q = new URLSearchParams();
        if (f.state) q.set('state', f.state);
        if (f.selector) q.set('labels', f.selector);
        if (f.prefix) q.set('name', f.prefix);
        if (next) q.set('cursor', next);
        const page = (await call('GET', `/api/v1/vms?${q.toString()}`)) as {
          items: VmRow[];
          next: string | null;
        };
        items.push(...page.items);
        next = f.all ? page.next : null;
      } while (next);
      output(items, json(f), () => renderTable(items as unknown as Record<string, unknown>[], COLUMNS));
    }),
  );

  conn(vm.command('get <vm>').description('Show a VM (id or name)')).action(
    action(async (id: string, f: ConnFlags) => {
      const r = (await (await client(f))('GET', `/api/v1/vms/${encodeURIComponent(id)}`)) as VmRow;
      output(r, json(f), () => one(r) + (r.error ? `error: ${r.error}\n` : ''));
    }),
  );

  for (const op of ['start', 'restart'] as const) {
    conn(vm.command(`${op} <vm>`).description(`${op === 'start' ? 'Start' : 'Restart'} a VM`)).action(
      action(async (id: string, f: ConnFlags) => {
        const r = (await (await client(f))('POST', `/api/v1/vms/${encodeURIComponent(id)}/${op}`)) as VmRow;
        output(r, json(f), () => one(r));
      }),
    );
  }

  conn(
    vm
      .command('stop <vm>')
      .description('Stop a VM (graceful, then forced)')
      .option('--force', 'no grace period'),
  ).action(
    action(async (id: string, f: ConnFlags & { force?: boolean }) => {
      const r = (await (
        await client(f)
      )('POST', `/api/v1/vms/${encodeURIComponent(id)}/stop`, {
        force: f.force === true,
      })) as VmRow;
      output(r, json(f), () => one(r));
    }),
  );

  conn(vm.command('delete <vm>').description('Delete a VM (stop, destroy, free resources)')).action(
    action(async (id: string, f: ConnFlags) => {
      await (
        await client(f)
      )('DELETE', `/api/v1/vms/${encodeURIComponent(id)}`);
      output({ deleted: id }, json(f), () => `deleted ${id}\n`);
    }),
  );

  conn(vm.command('console <vm>').description('Print the serial console log (last 64 KiB)')).action(
    action(async (id: string, f: ConnFlags) => {
      const r = (await (
        await client(f)
      )('GET', `/api/v1/vms/${encodeURIComponent(id)}/console`)) as {
        log: string;
        simulated: boolean;
      };
      output(r, json(f), () => (r.simulated ? '(simulated VM: no console)\n' : r.log));
    }),
  );
}
