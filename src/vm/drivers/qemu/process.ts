// Host process checks for QEMU: is a pid alive (zombies count as dead), and is it the QEMU we think it is.
import { readFile } from 'node:fs/promises';

/** Process state letter from /proc/<pid>/stat, or undefined when there is no such process. */
async function procState(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ...": comm may contain spaces and parentheses, so read after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

/** True while `pid` is a live (non-zombie) process. */
export async function isAlive(pid: number): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const s = await procState(pid);
  return s !== undefined && s !== 'Z' && s !== 'X';
}

/** The argv of `pid`, or undefined when it has gone. */
export async function processArgv(pid: number): Promise<string[] | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter((a) => a.length > 0);
  } catch {
    return undefined;
  }
}

/**
 * True when `pid` is alive and is a QEMU whose QMP socket is `qmpSocket` (so a recycled pid is never
 * mistaken for our VM).
 */
export async function isQemuOwning(pid: number, qmpSocket: string): Promise<boolean> {
  if (!(await isAlive(pid))) return false;
  const argv = await processArgv(pid);
  if (argv === undefined) return false;
  const wanted = `path=${qmpSocket.replaceAll(',', ',,')},`;
  return argv.some((a) => a.startsWith('socket,id=qmp,') && a.includes(wanted));
}

/** Pids of all live processes whose argv mentions a QMP socket under `root` (for leftover discovery). */
export async function findQemuPidsUnder(root: string): Promise<Map<number, string>> {
  const { readdir } = await import('node:fs/promises');
  const found = new Map<number, string>();
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return found;
  }
  const prefix = `path=${(root.endsWith('/') ? root : `${root}/`).replaceAll(',', ',,')}`;
  await Promise.all(
    entries
      .filter((e) => /^\d+$/.test(e))
      .map(async (e) => {
        const pid = Number(e);
        const argv = await processArgv(pid);
        const chardev = argv?.find((a) => a.startsWith('socket,id=qmp,') && a.includes(prefix));
        if (chardev === undefined || !(await isAlive(pid))) return;
        const m = /path=((?:[^,]|,,)*)/.exec(chardev);
        if (m?.[1] !== undefined) found.set(pid, m[1].replaceAll(',,', ','));
      }),
  );
  return found;
}

/**
 * Resolves once `pid` is gone or `timeoutMs` passed (true when gone). Polls /proc: a daemonized QEMU is
 * not our child, so there is no exit event to await.
 */
export async function waitForExit(pid: number, timeoutMs: number, intervalMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await isAlive(pid))) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
