// Starts the real `novacron start` CLI in a child process on free loopback ports over a given data
// dir (so a test can SIGKILL it and start it again on the same state), and calls its VM API.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, type CliProcess } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';
import { openStore, type Store } from '../../src/store/index.js';

export interface NodeProcess {
  readonly cli: CliProcess;
  readonly url: string;
  readonly token: string;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM, and wait for the exit code. */
  stop(): Promise<number | string>;
}

export async function startNodeProcess(
  dataDir: string,
  sets: Record<string, string | number>,
): Promise<NodeProcess> {
  const args = ['start', '--data-dir', dataDir];
  const all: Record<string, string | number> = {
    'api.rest_port': await freePort(),
    'api.grpc_port': await freePort(),
    'dwcp.listen_port': await freePort(),
    ...sets,
  };
  for (const [k, v] of Object.entries(all)) args.push('--set', `${k}=${v}`);
  const cli = runCli(args);
  try {
    const ready = JSON.parse(await cli.waitFor(/"msg":"ready in/, 120_000)) as { url: string };
    const token = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
    return {
      cli,
      url: ready.url,
      token,
      async kill() {
        cli.child.kill('SIGKILL');
        await cli.exited;
      },
      async stop() {
        cli.child.kill('SIGTERM');
        return cli.exited;
      },
    };
  } catch (err) {
    cli.child.kill('SIGKILL');
    throw err;
  }
}

/** Opens the node's SQLite store (for assertions once the node is stopped). */
export function openNodeStore(dataDir: string): Promise<Store> {
  return openStore({
    type: 'sqlite',
    path: '',
    dataDir,
    host: '',
    port: 0,
    database: '',
    user: '',
    password: '',
    poolSize: 1,
    ssl: false,
  });
}

export async function api(
  node: Pick<NodeProcess, 'url' | 'token'>,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${node.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${node.token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as unknown) : null };
}
