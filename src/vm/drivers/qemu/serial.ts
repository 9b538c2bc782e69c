// The serial console log of a VM: wait for a line (ready markers, heartbeats) and read the tail for `vm console`.
import { watch, type FSWatcher } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { ErrorCode, NovaCronError } from '../../../errors.js';

/** Safety-net re-read interval; file change notifications do the real work. */
const RECHECK_MS = 250;

export interface WaitForSerialOptions {
  readonly timeoutMs: number;
  /** Only look at bytes from this offset on (e.g. the log size before an action). */
  readonly fromOffset?: number;
  readonly signal?: AbortSignal;
}

/**
 * Resolves with the first complete line of `path` matching `pattern` (from `fromOffset`), waiting for the
 * file to be created and written. Rejects with DeadlineExceeded (quoting the log's last line) on timeout.
 */
export function waitForSerialLine(
  path: string,
  pattern: RegExp,
  options: WaitForSerialOptions,
): Promise<string> {
  const from = options.fromOffset ?? 0;
  return new Promise((resolve, reject) => {
    let done = false;
    let checking = false;
    let again = false;
    let lastLine = '';
    const watchers: FSWatcher[] = [];
    const finish = (err: Error | undefined, line?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(recheck);
      for (const w of watchers) w.close();
      options.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(line ?? '');
    };
    const check = async (): Promise<void> => {
      if (checking) {
        again = true;
        return;
      }
      checking = true;
      try {
        do {
          again = false;
          const buf = await readFile(path).catch(() => undefined);
          if (buf === undefined || buf.length <= from) continue;
          const lines = buf.subarray(from).toString('utf8').split('\n');
          lines.pop(); // incomplete last line
          for (const l of lines) {
            const line = l.replace(/\r$/, '');
            if (pattern.test(line)) {
              finish(undefined, line);
              return;
            }
          }
          lastLine = lines.at(-1) ?? lastLine;
        } while (again && !done);
      } finally {
        checking = false;
      }
    };
    const trigger = (): void => void check();
    const onAbort = (): void =>
      finish(new NovaCronError(ErrorCode.Cancelled, `wait for ${pattern} in ${path} aborted`));
    const timer = setTimeout(
      () =>
        finish(
          new NovaCronError(
            ErrorCode.DeadlineExceeded,
            `no serial line matching ${pattern} in ${path} within ${options.timeoutMs} ms (last line: ${JSON.stringify(lastLine)})`,
          ),
        ),
      options.timeoutMs,
    );
    const recheck = setInterval(trigger, RECHECK_MS);
    options.signal?.addEventListener('abort', onAbort);
    try {
      // Watch the directory: the log may not exist yet, and QEMU may recreate it.
      watchers.push(watch(dirname(path), (_e, name) => name === basename(path) && trigger()));
    } catch {
      // Directory missing: the periodic re-check still covers it.
    }
    trigger();
  });
}

/** The last `maxBytes` of a serial log (whole lines), or '' when there is none. */
export async function readSerialTail(path: string, maxBytes = 64 * 1024): Promise<string> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return '';
  }
  try {
    const { size } = await fh.stat();
    const start = Math.max(0, size - maxBytes);
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    const text = buf.toString('utf8');
    return start > 0 ? text.slice(text.indexOf('\n') + 1) : text;
  } finally {
    await fh.close();
  }
}
