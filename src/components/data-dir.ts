// Pre-init component "data-dir": creates the data directory (0700) and takes its lock file, so two
// NovaCron processes can never share one data dir (and so one SQLite file and one set of VM sockets).
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { NovaCronError, ErrorCode } from '../errors.js';
import type { Component } from '../boot/component.js';

declare module '../boot/services.js' {
  interface Services {
    /** Absolute path of the node's data directory. */
    dataDir?: string;
  }
}

/** Takes `<dir>/novacron.lock` for this process; a lock held by a live process is an error naming its pid. */
export async function lockDataDir(dir: string, pid = process.pid): Promise<string> {
  const lockPath = join(dir, 'novacron.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(lockPath, 'wx', 0o600);
      await fh.writeFile(`${pid}\n`);
      await fh.close();
      return lockPath;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number.parseInt((await readFile(lockPath, 'utf8').catch(() => '')).trim(), 10);
      if (Number.isInteger(holder) && holder > 0 && holder !== pid && isAlive(holder)) {
        throw new NovaCronError(
          ErrorCode.Conflict,
          `data dir ${dir} is in use by another NovaCron process (pid ${holder})`,
          {
            key: 'system.data_dir',
            hint: 'stop that process, or start this node with another --data-dir (NOVACRON_SYSTEM__DATA_DIR)',
          },
        );
      }
      // Stale lock from a process that died (e.g. kill -9): take it over.
      await rm(lockPath, { force: true });
    }
  }
  throw new NovaCronError(ErrorCode.Conflict, `could not take the lock ${lockPath}`, {
    key: 'system.data_dir',
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function dataDirComponent(): Component {
  let lockPath: string | null = null;
  return {
    name: 'data-dir',
    phase: 'pre',
    dependsOn: [],
    critical: true,
    async start(ctx) {
      const dir = resolve(ctx.config.system.data_dir);
      try {
        await mkdir(dir, { recursive: true, mode: 0o700 });
      } catch (err) {
        throw new NovaCronError(
          ErrorCode.ResourceUnavailable,
          `cannot create data dir ${dir}: ${(err as Error).message}`,
          {
            key: 'system.data_dir',
            hint: 'choose a writable directory with --data-dir or system.data_dir',
            cause: err,
          },
        );
      }
      lockPath = await lockDataDir(dir);
      ctx.services.dataDir = dir;
    },
    async stop() {
      if (lockPath) await rm(lockPath, { force: true });
      lockPath = null;
    },
    health: () => ({ status: 'up', detail: lockPath ?? '' }),
  };
}
