// Starts a real NovaCron node in-process (the production component graph, on free loopback ports,
// in a temporary data dir) with its log captured, for the API integration tests.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NovaCronNode } from '../../src/boot/node.js';
import type { Component } from '../../src/boot/component.js';
import { loadConfig } from '../../src/config/loader.js';
import { nodeComponents } from '../../src/components/index.js';
import { createNodeLogger } from '../../src/observability/logger.js';
import { freePort } from '../helpers/ports.js';

export interface TestNode {
  readonly node: NovaCronNode;
  readonly dataDir: string;
  /** Base URL of the REST API. */
  readonly url: string;
  readonly restPort: number;
  readonly grpcPort: number;
  /** The admin token the node wrote to its data dir. */
  readonly adminToken: string;
  /** Every log line written so far (JSON). */
  log(): string;
  stop(): Promise<void>;
}

export interface TestNodeOptions {
  /** Extra config overrides (dotted key -> value). */
  readonly set?: Record<string, unknown>;
  /** Rewrites the component list (e.g. to add a test route plugin to the api component). */
  readonly components?: (components: Component[]) => Component[];
}

export async function startTestNode(options: TestNodeOptions = {}): Promise<TestNode> {
  const dataDir = mkdtempSync(join(tmpdir(), 'nc-api-'));
  const restPort = await freePort();
  const grpcPort = await freePort();
  const { config } = await loadConfig({
    env: {},
    flags: {
      'system.data_dir': dataDir,
      'system.log_level': 'debug',
      'system.log_format': 'json',
      'api.rest_port': restPort,
      'api.grpc_port': grpcPort,
      'dwcp.listen_port': await freePort(),
      ...options.set,
    },
  });
  let captured = '';
  const sink = {
    write(chunk: string) {
      captured += chunk;
      return true;
    },
    isTTY: false,
  } as unknown as NodeJS.WriteStream;
  const nodeLogger = createNodeLogger(config.system, sink);
  const base = nodeComponents({ nodeLogger });
  const node = new NovaCronNode({
    config,
    logger: nodeLogger.logger,
    components: options.components ? options.components(base) : base,
  });
  try {
    await node.start();
  } catch (err) {
    await node.stop().catch(() => undefined);
    throw new Error(`test node failed to boot: ${(err as Error).message}\n${captured}`, { cause: err });
  }
  const url = node.services.api?.url ?? '';
  return {
    node,
    dataDir,
    url,
    restPort,
    grpcPort,
    adminToken: readFileSync(join(dataDir, 'admin.token'), 'utf8').trim(),
    log: () => captured,
    stop: () => node.stop(),
  };
}
