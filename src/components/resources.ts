// Pre-init component "resources": checks the host can run a node before anything binds or writes:
// CPUs, memory, free disk in the data dir, and that every configured port is free (a taken port
// is an error naming the port and the key that sets it). Publishes what it measured as host facts.
import { statfs } from 'node:fs/promises';
import { createServer } from 'node:net';
import { availableParallelism, freemem, totalmem } from 'node:os';
import { NovaCronError, ErrorCode } from '../errors.js';
import type { Component } from '../boot/component.js';
import type { NovaCronConfig } from '../config/schema.js';
import { requireService } from '../boot/services.js';

/** Minimums below which a node cannot do useful work. */
export const MIN_FREE_MEMORY_MIB = 128;
export const MIN_FREE_DISK_MIB = 256;

export interface HostResources {
  readonly cpus: number;
  readonly memoryMib: number;
  readonly freeMemoryMib: number;
  readonly diskFreeGib: number;
}

declare module '../boot/services.js' {
  interface Services {
    host?: HostResources;
  }
}

/** The ports a node will bind, each with the config key that sets it. Port 0 (pick any) is skipped. */
export function configuredPorts(config: NovaCronConfig): { key: string; host: string; port: number }[] {
  const ports = [
    { key: 'api.rest_port', host: config.api.host, port: config.api.rest_port },
    { key: 'api.grpc_port', host: config.api.host, port: config.api.grpc_port },
  ];
  if (config.dwcp.enabled)
    ports.push({ key: 'dwcp.listen_port', host: config.api.host, port: config.dwcp.listen_port });
  return ports.filter((p) => p.port !== 0);
}

/** Env variable name that overrides a dotted config key. */
export function envNameOf(key: string): string {
  return `NOVACRON_${key.toUpperCase().replaceAll('.', '__')}`;
}

/** Rejects with a clear error when host:port cannot be bound right now. */
export async function assertPortFree(host: string, port: number, key: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      const inUse = err.code === 'EADDRINUSE';
      reject(
        new NovaCronError(
          inUse ? ErrorCode.PortInUse : ErrorCode.ResourceUnavailable,
          inUse
            ? `port ${port} (${key}) is already in use on ${host}`
            : `cannot bind ${host}:${port} (${key}): ${err.code ?? err.message}`,
          {
            key,
            hint: `stop what uses it, or set ${key} (env ${envNameOf(key)}) to a free port`,
            cause: err,
          },
        ),
      );
    });
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve()));
  });
}

export function resourcesComponent(): Component {
  let facts: HostResources | null = null;
  return {
    name: 'resources',
    phase: 'pre',
    dependsOn: ['data-dir'],
    critical: true,
    async start(ctx) {
      const dataDir = requireService(ctx.services, 'dataDir');
      const fs = await statfs(dataDir);
      const diskFreeMib = (fs.bavail * fs.bsize) / 2 ** 20;
      const freeMemoryMib = freemem() / 2 ** 20;
      if (diskFreeMib < MIN_FREE_DISK_MIB) {
        throw new NovaCronError(
          ErrorCode.ResourceUnavailable,
          `only ${diskFreeMib.toFixed(0)} MiB free in ${dataDir} (need ${MIN_FREE_DISK_MIB} MiB)`,
          { key: 'system.data_dir', hint: 'free disk space or choose another --data-dir' },
        );
      }
      if (freeMemoryMib < MIN_FREE_MEMORY_MIB) {
        throw new NovaCronError(
          ErrorCode.ResourceUnavailable,
          `only ${freeMemoryMib.toFixed(0)} MiB of memory free (need ${MIN_FREE_MEMORY_MIB} MiB)`,
        );
      }
      await Promise.all(configuredPorts(ctx.config).map((p) => assertPortFree(p.host, p.port, p.key)));
      facts = {
        cpus: availableParallelism(),
        memoryMib: Math.floor(totalmem() / 2 ** 20),
        freeMemoryMib: Math.floor(freeMemoryMib),
        diskFreeGib: Math.floor((diskFreeMib / 1024) * 10) / 10,
      };
      ctx.services.host = facts;
    },
    health: () =>
      facts
        ? {
            status: 'up',
            detail: `${facts.cpus} cpus, ${facts.memoryMib} MiB memory, ${facts.diskFreeGib} GiB free disk`,
          }
        : { status: 'down', detail: 'not checked' },
  };
}
