// Shared plumbing for CLI actions: turns thrown errors into a clear message and an exit code,
// and prints results as a table or as JSON.
import { NovaCronError, ensureNovaCronError } from '../errors.js';

/** Exit code for errors the operator can fix (bad input, bad config). */
export const EXIT_USAGE = 1;
/** Exit code for errors of the environment (a server down, a port taken). */
export const EXIT_FAILURE = 2;

/**
 * Wraps a commander action: awaits it, prints a NovaCronError as `error: message` plus its hint
 * on stderr and exits non-zero; never prints a stack trace for an expected error.
 */
export function action<A extends unknown[]>(
  fn: (...args: A) => Promise<void> | void,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      const e = ensureNovaCronError(err);
      process.stderr.write(`error: ${e.describe()}\n`);
      if (!(err instanceof NovaCronError) && process.env.NOVACRON_DEBUG) console.error(err);
      process.exitCode = e.code === 'internal' || e.retryable ? EXIT_FAILURE : EXIT_USAGE;
    }
  };
}

/** Renders rows as an aligned text table with the given columns. */
export function renderTable(rows: readonly Record<string, unknown>[], columns: readonly string[]): string {
  const cells = rows.map((r) => columns.map((c) => formatCell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: readonly string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n') + '\n';
}

function formatCell(v: unknown): string {
  if (v === undefined || v === null) return '-';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Prints `value` as JSON when `json` is set, else as the text `render` returns. */
export function output(value: unknown, json: boolean, render: () => string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : render());
}
