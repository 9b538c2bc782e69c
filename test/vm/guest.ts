// Test helpers for real-QEMU tests: find QEMU (failing loudly in CI), build or reuse the cached test guest.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { detectQemu } from '../../src/vm/drivers/qemu/driver.js';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;

export const GUEST_READY_LINE = 'NOVACRON-GUEST-READY';
/** Quiet console on ttyS0; cryptomgr.notests skips the crypto self-tests, about a second under TCG. */
export const DEFAULT_CMDLINE = 'console=ttyS0 quiet panic=-1 cryptomgr.notests';

export interface TestGuest {
  readonly kernel: string;
  readonly initrd: string;
  /** Kernel command line that boots quickly and quietly on ttyS0. */
  readonly cmdline: string;
  readonly kernelPackage: string;
}

/**
 * Undefined when QEMU can be used; otherwise the reason to skip. Throws in CI (env CI set): there a
 * missing binary is a broken runner, not a reason to skip.
 */
export async function qemuUnavailable(): Promise<string | undefined> {
  const missing: string[] = [];
  const q = await detectQemu('qemu-system-x86_64');
  if (q.status !== 'found') missing.push(q.detail);
  try {
    await run('qemu-img', ['--version']);
  } catch {
    missing.push('qemu-img not found (Debian package qemu-utils)');
  }
  if (missing.length === 0) return undefined;
  const why = missing.join('; ');
  if (process.env['CI']) throw new Error(`CI requires QEMU for test/vm: ${why}`);
  return why;
}

let guest: Promise<TestGuest> | undefined;

/** Builds (or takes from the cache) the test guest via scripts/build-test-guest.sh. Once per process. */
export function ensureTestGuest(): Promise<TestGuest> {
  guest ??= (async (): Promise<TestGuest> => {
    const out = join(tmpdir(), `novacron-test-guest-${process.getuid?.() ?? 0}`);
    await run(join(root, 'scripts/build-test-guest.sh'), [out], { timeout: 600_000 });
    const env = await readFile(join(out, 'guest.env'), 'utf8');
    return {
      kernel: join(out, 'vmlinuz'),
      initrd: join(out, 'initrd.img'),
      cmdline: /NOVACRON_GUEST_CMDLINE='([^']*)'/.exec(env)?.[1] ?? DEFAULT_CMDLINE,
      kernelPackage: /NOVACRON_GUEST_KERNEL_PKG=(\S+)/.exec(env)?.[1] ?? 'unknown',
    };
  })();
  return guest;
}
