// Pre-init component "log-file": besides stdout, keeps JSON lines in <data_dir>/logs/novacron.log,
// so a node started in the background still leaves a readable record of its boot and its work.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import type { Component } from '../boot/component.js';
import { requireService } from '../boot/services.js';
import type { NodeLogger } from '../observability/logger.js';

export function logFileComponent(nodeLogger: NodeLogger): Component {
  let dest: ReturnType<typeof pino.destination> | null = null;
  let path = '';
  return {
    name: 'log-file',
    phase: 'pre',
    dependsOn: ['data-dir'],
    critical: false,
    async start(ctx) {
      const dir = join(requireService(ctx.services, 'dataDir'), 'logs');
      await mkdir(dir, { recursive: true, mode: 0o700 });
      path = join(dir, 'novacron.log');
      dest = pino.destination({ dest: path, append: true, mkdir: true, sync: false });
      await new Promise<void>((resolve, reject) => {
        dest!.once('ready', () => resolve());
        dest!.once('error', reject);
      });
      nodeLogger.addStream(dest);
    },
    async stop() {
      dest?.flushSync();
    },
    health: () => ({ status: 'up', detail: path }),
  };
}
