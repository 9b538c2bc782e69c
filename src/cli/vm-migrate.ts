// `novacron vm migrate NAME --to NODE [--live] [--watch]`: starts a migration on the node that runs
// the VM (POST /api/v1/vms/{id}/migrate) and, with --watch, follows it (GET /api/v1/migrations/{id})
// with a progress bar on a terminal (phase, bytes, rate, dirty rate, ETA) and ends with a summary:
// total time, downtime, bytes on the wire against guest RAM. -o json prints the migration record.
import type { Command } from 'commander';
import { ErrorCode, MigrationError } from '../errors.js';
import { action, output } from './run.js';

/** A migration as GET /api/v1/migrations/{id} returns it (the fields the CLI shows). */
export interface MigrationRecordView {
  readonly id: string;
  readonly vmId: string;
  readonly source: string;
  readonly target: string;
  readonly state: string;
  readonly phase: string;
  readonly bytesSent: number;
  readonly bytesTotal: number | null;
  readonly bytesRemaining: number | null;
  readonly downtimeMs: number | null;
  readonly totalMs: number | null;
  readonly progress: Readonly<Record<string, unknown>>;
  readonly error: string | null;
}

const MIB = 1024 * 1024;
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

function mib(n: number): string {
  return `${(n / MIB).toFixed(1)} MiB`;
}
function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/** Rates between two samples (bytes/s of QEMU's stream and of DWCP's wire bytes). Pure. */
export function ratesOf(
  prev: { at: number; stream: number; wire: number } | undefined,
  cur: { at: number; stream: number; wire: number },
): { streamPerSec: number; wirePerSec: number } {
  if (!prev || cur.at <= prev.at) return { streamPerSec: 0, wirePerSec: 0 };
  const s = (cur.at - prev.at) / 1000;
  return {
    streamPerSec: Math.max(0, (cur.stream - prev.stream) / s),
    wirePerSec: Math.max(0, (cur.wire - prev.wire) / s),
  };
}

/** One progress line: bar, phase, bytes, rate, dirty rate, ETA. Pure. */
export function progressLine(
  m: MigrationRecordView,
  rates: { streamPerSec: number; wirePerSec: number },
  width = 24,
): string {
  const ram = m.bytesTotal ?? num(m.progress['ramBytes']);
  const remaining = m.bytesRemaining ?? ram;
  const done = ram > 0 ? Math.min(1, Math.max(0, 1 - remaining / ram)) : 0;
  const filled = Math.round(done * width);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
  const dirty = num(m.progress['dirtyPagesRate']);
  const eta =
    rates.streamPerSec > 0 && m.phase === 'transfer' ? `${Math.ceil(remaining / rates.streamPerSec)}s` : '-';
  return (
    `${bar} ${String(Math.round(done * 100)).padStart(3)}% ${m.phase.padEnd(10)} ` +
    `stream ${mib(num(m.progress['streamBytes']))} wire ${mib(m.bytesSent)} ` +
    `${(rates.wirePerSec / MIB).toFixed(1)} MiB/s dirty ${Math.round(dirty)} pages/s ETA ${eta}`
  );
}

/** The closing summary of a finished migration. Pure. */
export function summaryText(m: MigrationRecordView): string {
  const ram = num(m.progress['ramBytes']) || (m.bytesTotal ?? 0);
  const stream = num(m.progress['streamBytes']);
  const lines = [`migration ${m.id}: ${m.state} (${m.source} → ${m.target})`];
  if (m.totalMs !== null) lines.push(`  total time   ${m.totalMs} ms`);
  if (m.state === 'completed') {
    lines.push(`  downtime     ${m.downtimeMs ?? '?'} ms`);
    lines.push(
      `  on the wire  ${mib(m.bytesSent)}` +
        (stream > 0 ? ` (QEMU stream ${mib(stream)})` : '') +
        (ram > 0 ? ` for ${mib(ram)} guest RAM: ${(m.bytesSent / ram).toFixed(2)}× RAM` : ''),
    );
  }
  if (m.error) lines.push(`  error        ${m.error}`);
  return lines.join('\n') + '\n';
}

interface Flags {
  url?: string;
  token?: string;
  config?: string;
  dataDir?: string;
  output?: string;
  to: string;
  live?: boolean;
  watch?: boolean;
  maxDowntime?: number;
}

type Call = (method: string, path: string, body?: unknown) => Promise<unknown>;

export function registerVmMigrateCommand(
  vm: Command,
  conn: (cmd: Command) => Command,
  client: (flags: Flags) => Promise<Call>,
): void {
  conn(
    vm
      .command('migrate <vm>')
      .description('Migrate a VM to a peer node (live when running, cold when stopped); --watch follows it')
      .requiredOption('--to <node>', 'target node (a name in cluster.peers of the node running the VM)')
      .option(
        '--live',
        'require a live migration (the VM keeps running); default: live if running, cold if stopped',
      )
      .option('--watch', 'follow the migration until it ends, then print a summary')
      .option('--max-downtime <ms>', 'longest acceptable switchover pause in ms (default 300)', (v) =>
        Number(v),
      ),
  ).action(
    action(async (name: string, f: Flags) => {
      const call = await client(f);
      const json = f.output === 'json';
      const started = (await call('POST', `/api/v1/vms/${encodeURIComponent(name)}/migrate`, {
        target: f.to,
        ...(f.live ? { live: true } : {}),
        ...(f.maxDowntime === undefined ? {} : { maxDowntimeMs: f.maxDowntime }),
      })) as MigrationRecordView;
      if (!f.watch) {
        output(
          started,
          json,
          () => `migration ${started.id} started: ${name} → ${f.to} (${started.state})\n`,
        );
        return;
      }
      const tty = process.stderr.isTTY === true && !json;
      let prev: { at: number; stream: number; wire: number } | undefined;
      let lastPhase = '';
      let m = started;
      for (;;) {
        m = (await call('GET', `/api/v1/migrations/${started.id}`)) as MigrationRecordView;
        const cur = { at: Date.now(), stream: num(m.progress['streamBytes']), wire: m.bytesSent };
        const rates = ratesOf(prev, cur);
        prev = cur;
        if (tty) process.stderr.write(`\r\x1b[2K${progressLine(m, rates)}`);
        else if (!json && m.phase !== lastPhase) process.stderr.write(`phase ${m.phase}\n`);
        lastPhase = m.phase;
        if (TERMINAL.has(m.state)) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      if (tty) process.stderr.write('\n');
      output(m, json, () => summaryText(m));
      if (m.state !== 'completed')
        throw new MigrationError(`migration ${m.id} ${m.state}: ${m.error ?? 'no detail'}`, {
          code: m.state === 'cancelled' ? ErrorCode.Cancelled : ErrorCode.Unavailable,
          retryable: false,
        });
    }),
  );
}
