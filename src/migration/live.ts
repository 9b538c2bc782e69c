// Live migration of a QEMU VM over DWCP: source QEMU → unix socket we own → DWCP byte stream →
// destination QEMU's migrate-incoming socket. Phases, progress, cancel, rollback; one running copy.
//
// The two sides are separate objects (MigrationSource on the source node, MigrationDestination on the
// destination node) so a control plane can run them in two processes; runLiveMigration() is the
// coordinator and only needs the `DestinationControl` surface of the destination.
import { EventEmitter } from 'node:events';
import { rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { ErrorCode, MigrationError, errorMessage } from '../errors.js';
import type { DwcpStreamWriter } from '../dwcp/stream.js';
import type { QmpClient, QmpEvent, QmpMigrationInfo } from '../vm/drivers/qemu/qmp.js';

export type MigrationPhase = 'prepare' | 'transfer' | 'switchover' | 'commit' | 'rollback';

/** One progress sample, from query-migrate on the source plus the DWCP sender's counters. */
export interface MigrationProgress {
  readonly phase: MigrationPhase;
  readonly elapsedMs: number;
  /** QEMU's migration status (setup, active, device, completed, failed, cancelled …). */
  readonly status: string;
  readonly transferredBytes: number;
  readonly remainingBytes: number;
  readonly totalBytes: number;
  readonly dirtyPagesRate: number;
  readonly mbps: number;
  readonly expectedDowntimeMs: number;
  readonly dirtySyncCount: number;
  /** Bytes the DWCP sender put on the wire so far (after encoding, with framing). */
  readonly wireBytes: number;
}

export interface MigrationSourceOptions {
  /** QMP session of the running source QEMU. */
  readonly qmp: QmpClient;
  /** Unix socket the source QEMU migrates into; created (and removed) here. Put it in the VM directory. */
  readonly socketPath: string;
  /** Opens the DWCP byte stream to the destination node's receiver. */
  readonly openStream: () => Promise<DwcpStreamWriter>;
  /** Longest acceptable pause at switchover (QEMU `downtime-limit`). */
  readonly maxDowntimeMs: number;
  /** Pre-copy must complete within this; otherwise the migration is cancelled as not converging. */
  readonly convergeTimeoutMs: number;
  /** Let QEMU throttle the vCPUs when the guest dirties memory faster than the link (default true). */
  readonly autoConverge?: boolean;
  /**
   * QEMU `max-bandwidth` in bytes/s. Default: unlimited in practice (64 GiB/s) — QEMU's own default
   * (128 MiB/s) would cap a compressible stream, and DWCP's window already paces QEMU to the link.
   */
  readonly maxBandwidthBytesPerSec?: number;
  /**
   * Time the switchover needs besides QEMU's final pass, in ms: control round trips (e.g. the
   * destination's resume call) and its database commit. Subtracted from `maxDowntimeMs`, together
   * with the measured drain time of the DWCP backlog, for QEMU's `downtime-limit` (default 0).
   */
  readonly controlOverheadMs?: number;
  /** Interval between query-migrate samples (default 250 ms). */
  readonly progressIntervalMs?: number;
}

/** What the source saw once QEMU completed and the receiver took every byte. */
export interface SourceSummary {
  /** query-migrate when the status turned completed (the final totals come from `commit()`). */
  readonly info: QmpMigrationInfo;
  /** QEMU's STOP event on the source (switchover began), microseconds since the epoch. */
  readonly stoppedAtUs: number | undefined;
  readonly wireBytes: number;
  readonly streamBytes: number;
  /** The last `downtime-limit` given to QEMU (ms). */
  readonly downtimeLimitMs: number;
}

/**
 * DWCP send window for a migration stream over a path with round trip `rttMs`: the bytes in flight
 * that keep a link of up to ~400 Mbit/s busy (50 MiB/s × RTT, with BBR keeping the queue short),
 * between 1 and 32 MiB; a link whose rate is predicted faster (from the samples of earlier
 * transfers, `predictedBytesPerSecond`) gets two bandwidth-delay products, up to 32 MiB. What is in
 * the window when the guest pauses must cross during the pause; MigrationSource takes its drain
 * time off QEMU's downtime-limit. Pure.
 */
export function migrationWindowBytes(rttMs: number, predictedBytesPerSecond?: number): number {
  const MIB = 1024 * 1024;
  const w = Math.round((Math.max(0, rttMs) / 1000) * 50 * MIB);
  const base = Math.min(32 * MIB, Math.max(MIB, w));
  if (predictedBytesPerSecond === undefined || !(predictedBytesPerSecond > 0)) return base;
  // A link predicted faster than the rule's 50 MiB/s gets two of its bandwidth-delay products
  // (never less than the rule gives: a prediction only lifts the ceiling, it does not shrink it).
  const bdp2 = Math.round(2 * predictedBytesPerSecond * (Math.max(0, rttMs) / 1000));
  return Math.max(base, Math.min(32 * MIB, bdp2));
}

/** QEMU `max-bandwidth` when none is given: far above any link, so DWCP's window does the pacing. */
export const UNLIMITED_QEMU_BANDWIDTH = 64 * 1024 ** 3;

/**
 * QEMU's `downtime-limit` for a wanted pause of `maxDowntimeMs`. QEMU only counts its own final
 * pass into our socket, so the time to drain what DWCP has in flight and the control round trips
 * after it are taken off. And QEMU times that pass with the rate our socket took its stream at,
 * which on zero or compressible pages is far above the link: `rateFactor` (link rate ÷ QEMU's
 * rate, at most 1) scales the limit so that the final dirty set — assumed not to compress — fits
 * at the link's rate. Never below a tenth of the wanted pause (or 10 ms). Pure.
 */
export function qemuDowntimeLimit(
  maxDowntimeMs: number,
  backlogMs: number,
  controlOverheadMs: number,
  rateFactor = 1,
): number {
  const floor = Math.max(10, Math.round(maxDowntimeMs / 10));
  const f = Math.min(1, Math.max(0, rateFactor));
  return Math.max(floor, Math.round((maxDowntimeMs - backlogMs - controlOverheadMs) * f));
}

const TERMINAL_FAILURES = new Set(['failed', 'cancelled', 'cancelling']);

function migrationStatus(e: QmpEvent): string | undefined {
  const s = (e.data as { status?: unknown } | null)?.status;
  return typeof s === 'string' ? s : undefined;
}

/** Source node side: streams the source QEMU's migration into DWCP and reports progress. */
export class MigrationSource extends EventEmitter<{ progress: [MigrationProgress] }> {
  /** Resolves once QEMU reports completed and the DWCP receiver acknowledged the whole stream. */
  readonly sent: Promise<SourceSummary>;
  private phase: MigrationPhase = 'prepare';
  private readonly startedAt = Date.now();
  private last: MigrationProgress | undefined;
  private stoppedAtUs: number | undefined;
  private cancelRequested = false;
  private finished = false;
  private readonly offEvents: () => void;
  private wake: (() => void) | undefined;
  private statusChanged = false;
  private downtimeLimit = 0;
  /** QEMU's reported Mbit/s of the last three samples. */
  private readonly qemuMbps: number[] = [];
  /** Acked-bytes samples of the last ~2 s: the wire rate the backlog drains at. */
  private readonly ackSamples: { t: number; acked: number }[] = [];

  private constructor(
    private readonly opts: MigrationSourceOptions,
    private readonly server: Server,
    private readonly writer: DwcpStreamWriter,
    private readonly wasRunning: boolean,
    private readonly streamBytes: () => number,
    streamDone: Promise<void>,
  ) {
    super();
    this.offEvents = opts.qmp.onEvent((e) => {
      if (e.name === 'STOP' && this.stoppedAtUs === undefined) {
        this.stoppedAtUs = e.timestampUs;
        if (this.phase === 'transfer') this.phase = 'switchover';
      }
      // A status change (completed, failed …) wakes the sampling loop: switchover waits on it.
      if (e.name === 'MIGRATION') {
        if (this.wake) this.wake();
        else this.statusChanged = true;
      }
    });
    this.sent = this.run(streamDone);
    this.sent.catch(() => undefined); // observed by the coordinator; never an unhandled rejection
  }

  /** Creates the socket, opens the DWCP stream, sets capabilities and parameters, starts `migrate`. */
  static async start(opts: MigrationSourceOptions): Promise<MigrationSource> {
    const status = await opts.qmp.queryStatus();
    await rm(opts.socketPath, { force: true });
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.socketPath, () => resolve());
    });
    let writer: DwcpStreamWriter;
    try {
      writer = await opts.openStream();
    } catch (err) {
      server.close();
      await rm(opts.socketPath, { force: true });
      throw new MigrationError(`cannot open the DWCP stream to the destination: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    let counted = 0;
    const streamDone = new Promise<void>((resolve, reject) => {
      server.once('connection', (sock: Socket) => {
        server.close();
        sock.on('data', (c: Buffer) => (counted += c.length));
        pipeline(sock, writer).then(resolve, reject);
      });
    });
    const src = new MigrationSource(opts, server, writer, status.running, () => counted, streamDone);
    try {
      await opts.qmp.migrateSetCapabilities({ events: true, 'auto-converge': opts.autoConverge ?? true });
      src.downtimeLimit = qemuDowntimeLimit(opts.maxDowntimeMs, 0, opts.controlOverheadMs ?? 0);
      await opts.qmp.migrateSetParameters({
        'downtime-limit': src.downtimeLimit,
        'max-bandwidth': opts.maxBandwidthBytesPerSec ?? UNLIMITED_QEMU_BANDWIDTH,
      });
      src.phase = 'transfer';
      await opts.qmp.migrate(`unix:${opts.socketPath}`);
    } catch (err) {
      src.finished = true;
      await src.cleanup(err as Error);
      throw new MigrationError(`source QEMU refused to migrate: ${errorMessage(err)}`, { cause: err });
    }
    return src;
  }

  /** True once cancel() was called. */
  get cancelled(): boolean {
    return this.cancelRequested;
  }

  get currentPhase(): MigrationPhase {
    return this.phase;
  }

  /**
   * Stream counters for tracing: bytes QEMU wrote into the socket so far, and DWCP bytes on the
   * wire not yet acknowledged by the receiver (framing included, so an upper bound of the backlog).
   */
  streamStats(): { readonly streamBytes: number; readonly unackedBytes: number } {
    const st = this.writer.amst.stats;
    return { streamBytes: this.streamBytes(), unackedBytes: Math.max(0, st.wireBytes - st.ackedBytes) };
  }

  /** Bytes DWCP put on the wire so far (the stream's tail may still be crossing after `sent`). */
  wireBytes(): number {
    return this.writer.amst.stats.wireBytes;
  }

  /** The latest progress sample. */
  progress(): MigrationProgress | undefined {
    return this.last;
  }

  /** Asks QEMU to cancel (migrate_cancel); `sent` then rejects with a `cancelled` MigrationError. */
  async cancel(): Promise<void> {
    this.cancelRequested = true;
    if (!this.finished) await this.opts.qmp.migrateCancel();
  }

  /** Rollback: cancels a running migration and resumes the source if it was running before. */
  async rollback(): Promise<void> {
    this.phase = 'rollback';
    try {
      const info = await this.opts.qmp.queryMigrate();
      if (info.status === 'active' || info.status === 'setup' || info.status === 'device')
        await this.opts.qmp.migrateCancel();
      // migrate_cancel returns before QEMU has left the migration; wait for a final status.
      for (let i = 0; i < 200; i++) {
        const s = (await this.opts.qmp.queryMigrate()).status;
        if (s === undefined || !['active', 'setup', 'device', 'cancelling', 'pre-switchover'].includes(s))
          break;
        await delay(25);
      }
    } finally {
      this.offEvents();
      await this.cleanup(new MigrationError('migration rolled back'));
    }
    const st = await this.opts.qmp.queryStatus();
    if (this.wasRunning && !st.running) await this.opts.qmp.cont();
  }

  /**
   * Quits the source QEMU once the destination runs. Returns query-migrate's final figures, read
   * just before: QEMU fills in `downtime` and `total-time` a moment after the status turns
   * `completed` (its migration thread, after the QMP-visible state change), so they are waited for
   * here, where the wait costs no downtime; undefined if QEMU did not answer.
   */
  async commit(): Promise<QmpMigrationInfo | undefined> {
    this.phase = 'commit';
    this.offEvents();
    const info = await this.finalInfo().catch(() => undefined);
    await this.cleanup(undefined);
    await this.opts.qmp.quit();
    return info;
  }

  /** query-migrate until QEMU has filled in the completed migration's totals (at most about 2 s). */
  private async finalInfo(): Promise<QmpMigrationInfo> {
    let info = await this.opts.qmp.queryMigrate();
    for (let i = 0; i < 80 && info.status === 'completed' && !((info['total-time'] ?? 0) > 0); i++) {
      await delay(25);
      info = await this.opts.qmp.queryMigrate();
    }
    return info;
  }

  private sample(info: QmpMigrationInfo): MigrationProgress {
    const p: MigrationProgress = {
      phase: this.phase,
      elapsedMs: Date.now() - this.startedAt,
      status: info.status ?? 'none',
      transferredBytes: info.ram?.transferred ?? 0,
      remainingBytes: info.ram?.remaining ?? 0,
      totalBytes: info.ram?.total ?? 0,
      dirtyPagesRate: info.ram?.['dirty-pages-rate'] ?? 0,
      mbps: info.ram?.mbps ?? 0,
      expectedDowntimeMs: info['expected-downtime'] ?? info.downtime ?? 0,
      dirtySyncCount: info.ram?.['dirty-sync-count'] ?? 0,
      wireBytes: this.writer.amst.stats.wireBytes,
    };
    this.last = p;
    this.emit('progress', p);
    return p;
  }

  /** Waits for the next sample: the interval, or sooner when QEMU reports a new migration status. */
  private nextSample(ms: number): Promise<void> {
    if (this.statusChanged) {
      this.statusChanged = false;
      return Promise.resolve();
    }
    const ac = new AbortController();
    return new Promise<void>((resolve) => {
      this.wake = () => {
        ac.abort();
        resolve();
      };
      delay(ms, undefined, { signal: ac.signal }).then(resolve, () => undefined);
    }).finally(() => {
      this.wake = undefined;
      ac.abort();
    });
  }

  private async run(streamDone: Promise<void>): Promise<SourceSummary> {
    let streamError: Error | undefined;
    streamDone.catch((err: Error) => (streamError = err));
    const interval = this.opts.progressIntervalMs ?? 250;
    let info: QmpMigrationInfo;
    for (;;) {
      info = await this.opts.qmp.queryMigrate();
      if (info.status === 'device' || info.status === 'completed') this.phase = 'switchover';
      const p = this.sample(info);
      if (info.status === 'completed') break;
      if (info.status !== undefined && TERMINAL_FAILURES.has(info.status)) {
        if (info.status === 'cancelling') {
          await this.nextSample(interval);
          continue;
        }
        this.finished = true;
        if (this.cancelRequested)
          throw new MigrationError('migration cancelled', { code: ErrorCode.Cancelled });
        throw new MigrationError(
          `source QEMU migration ${info.status}: ${info['error-desc'] ?? streamError?.message ?? 'no detail'}`,
          { cause: streamError },
        );
      }
      if (streamError) {
        this.finished = true;
        await this.opts.qmp.migrateCancel().catch(() => undefined);
        throw new MigrationError(`DWCP stream to the destination failed: ${streamError.message}`, {
          cause: streamError,
        });
      }
      if (info.status === 'active') {
        this.qemuMbps.push(p.mbps);
        if (this.qemuMbps.length > 3) this.qemuMbps.shift();
        await this.retuneDowntimeLimit();
      }
      if (p.elapsedMs > this.opts.convergeTimeoutMs && info.status === 'active') {
        this.finished = true;
        await this.opts.qmp.migrateCancel().catch(() => undefined);
        throw new MigrationError(
          `pre-copy did not converge within ${this.opts.convergeTimeoutMs} ms: ` +
            `${p.remainingBytes} bytes remaining, dirty rate ${p.dirtyPagesRate} pages/s, ` +
            `${p.mbps.toFixed(1)} Mbit/s, expected downtime ${p.expectedDowntimeMs} ms > limit ${this.opts.maxDowntimeMs} ms`,
          {
            code: ErrorCode.DeadlineExceeded,
            hint: 'raise maxDowntimeMs, give the migration more bandwidth, or reduce the guest write load',
          },
        );
      }
      await this.nextSample(interval);
    }
    // QEMU wrote everything into our socket. The tail is still crossing the link: not waited for
    // here — the destination reporting `loaded` (its QEMU parsed the stream up to the end marker) is
    // what proves the stream arrived, and waiting for DWCP's acks, stream-end and close would add
    // round trips to the downtime. A stream that fails now fails the destination's load instead.
    this.finished = true;
    // `downtime` and the totals are read again by commit(), once the destination runs.
    if (streamError)
      throw new MigrationError(`DWCP stream failed after QEMU completed: ${errorMessage(streamError)}`, {
        cause: streamError,
      });
    return {
      info,
      stoppedAtUs: this.stoppedAtUs,
      wireBytes: this.writer.amst.stats.wireBytes,
      streamBytes: this.streamBytes(),
      downtimeLimitMs: this.downtimeLimit,
    };
  }

  /**
   * Keeps QEMU's `downtime-limit` at maxDowntimeMs minus what follows QEMU's own final pass: the
   * DWCP backlog (unacknowledged wire bytes at the measured ack rate) and the control overhead.
   * QEMU reads the parameter at every iteration, so a change applies to the next switchover check.
   */
  private async retuneDowntimeLimit(): Promise<void> {
    const now = Date.now();
    const st = this.writer.amst.stats;
    this.ackSamples.push({ t: now, acked: st.ackedBytes });
    while (this.ackSamples.length > 2 && now - this.ackSamples[0]!.t > 2000) this.ackSamples.shift();
    const first = this.ackSamples[0]!;
    if (now - first.t < 400) return;
    const rate = (st.ackedBytes - first.acked) / ((now - first.t) / 1000);
    if (rate <= 0) return;
    const backlogMs = (Math.max(0, st.wireBytes - st.ackedBytes) / rate) * 1000;
    // QEMU's own rate (query-migrate mbps), the highest of the last samples: what it will use.
    const qemuRate = (Math.max(...this.qemuMbps) * 1e6) / 8;
    const factor = qemuRate > 0 ? rate / qemuRate : 1;
    const limit = qemuDowntimeLimit(
      this.opts.maxDowntimeMs,
      backlogMs,
      this.opts.controlOverheadMs ?? 0,
      factor,
    );
    if (Math.abs(limit - this.downtimeLimit) < 10) return;
    this.downtimeLimit = limit;
    await this.opts.qmp.migrateSetParameters({ 'downtime-limit': limit }).catch(() => undefined);
  }

  private async cleanup(err: Error | undefined): Promise<void> {
    this.server.close();
    if (err && !this.writer.destroyed) this.writer.destroy(err);
    await rm(this.opts.socketPath, { force: true });
  }
}

export interface MigrationDestinationOptions {
  /** QMP session of a QEMU started with `{ incoming: 'defer', paused: true }`. */
  readonly qmp: QmpClient;
  /** Where the destination QEMU listens for the stream (`migrate-incoming unix:<path>`); in its VM dir. */
  readonly socketPath: string;
  /** Removes the destination QEMU (e.g. driver.destroy with force). Must be idempotent. */
  readonly kill: () => Promise<void>;
}

/** What the coordinator needs from the destination (local object now, a gRPC stub later). */
export interface DestinationControl {
  /** Resolves once the destination QEMU loaded the whole state (still paused). */
  readonly loaded: Promise<void>;
  /** Starts the destination's vCPUs; returns the RESUME event time (µs since the epoch). */
  resume(): Promise<number>;
  /** Kills the destination QEMU. Idempotent. */
  abort(): Promise<void>;
}

/** Destination node side: a QEMU waiting on migrate-incoming, fed from a DWCP stream. */
export class MigrationDestination implements DestinationControl {
  readonly loaded: Promise<void>;
  private failLoad!: (e: Error) => void;
  private attached = false;
  private aborted = false;
  private socket: Socket | undefined;

  private constructor(private readonly opts: MigrationDestinationOptions) {
    this.loaded = new Promise<void>((resolve, reject) => {
      this.failLoad = reject;
      const off = opts.qmp.onEvent((e) => {
        if (e.name !== 'MIGRATION') return;
        const s = migrationStatus(e);
        if (s === 'completed') {
          off();
          resolve();
        } else if (s === 'failed') {
          off();
          reject(new MigrationError('destination QEMU failed to load the migration stream'));
        }
      });
      void opts.qmp.closed.then((why) => {
        off();
        reject(new MigrationError(`destination QEMU went away: ${why}`));
      });
    });
    this.loaded.catch(() => undefined);
  }

  /** Sets capabilities and starts QEMU listening on the unix socket. */
  static async prepare(opts: MigrationDestinationOptions): Promise<MigrationDestination> {
    await rm(opts.socketPath, { force: true });
    const d = new MigrationDestination(opts);
    try {
      await opts.qmp.migrateSetCapabilities({ events: true });
      await opts.qmp.migrateIncoming(`unix:${opts.socketPath}`);
    } catch (err) {
      await d.abort();
      throw new MigrationError(`destination QEMU refused migrate-incoming: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    return d;
  }

  /** Feeds the DWCP stream (from streamReceiver) into the destination QEMU. */
  attach(stream: Readable): void {
    if (this.attached || this.aborted) {
      stream.destroy(new MigrationError('destination already has a stream or was aborted'));
      return;
    }
    this.attached = true;
    const sock = createConnection(this.opts.socketPath);
    this.socket = sock;
    pipeline(stream, sock).catch((err: unknown) => {
      this.failLoad(
        new MigrationError(`migration stream to the destination QEMU broke: ${errorMessage(err)}`),
      );
    });
  }

  async resume(): Promise<number> {
    const resumed = this.opts.qmp.waitForEvent('RESUME', { timeoutMs: 10_000 });
    await this.opts.qmp.cont();
    return (await resumed).timestampUs;
  }

  async abort(): Promise<void> {
    this.aborted = true;
    this.socket?.destroy();
    this.failLoad(new MigrationError('destination aborted'));
    await this.opts.kill();
    await rm(this.opts.socketPath, { force: true });
  }
}

export interface LiveMigrationResult {
  readonly totalMs: number;
  /** Source STOP → destination RESUME, from QEMU's event timestamps. */
  readonly downtimeMs: number | undefined;
  /** What QEMU's query-migrate reported as downtime on the source. */
  readonly qemuDowntimeMs: number | undefined;
  readonly ramBytes: number;
  /** Bytes QEMU wrote into the migration stream. */
  readonly streamBytes: number;
  /** Bytes DWCP put on the wire for them. */
  readonly wireBytes: number;
  readonly dirtySyncCount: number;
}

/**
 * Coordinates one live migration: waits for the source to finish pre-copy and switchover and the
 * destination to load the state, then resumes the destination and quits the source (commit). On any
 * failure or cancel before the destination was resumed: kills the destination and resumes the source
 * (rollback), then rethrows. The destination is resumed only after the source QEMU completed, so there
 * is never more than one running copy.
 */
export async function runLiveMigration(
  source: MigrationSource,
  destination: DestinationControl,
  options: { readonly signal?: AbortSignal } = {},
): Promise<LiveMigrationResult> {
  const started = Date.now();
  const onAbort = (): void => void source.cancel().catch(() => undefined);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let summary: SourceSummary;
  try {
    if (options.signal?.aborted) await source.cancel();
    [summary] = await Promise.all([source.sent, destination.loaded]);
  } catch (err) {
    options.signal?.removeEventListener('abort', onAbort);
    await destination.abort().catch(() => undefined);
    await source.rollback();
    // A cancelled source closes its socket, so the destination may report the truncated stream first.
    if (source.cancelled || options.signal?.aborted)
      throw new MigrationError('migration cancelled', { code: ErrorCode.Cancelled, cause: err });
    if (err instanceof MigrationError) throw err;
    throw new MigrationError(`live migration failed: ${errorMessage(err)}`, { cause: err });
  }
  options.signal?.removeEventListener('abort', onAbort);
  // Point of no return: the source QEMU completed (vCPUs stopped for good), the destination holds the state.
  let resumedAtUs: number;
  try {
    resumedAtUs = await destination.resume();
  } catch (err) {
    await destination.abort().catch(() => undefined);
    await source.rollback();
    throw new MigrationError(`destination did not resume: ${errorMessage(err)}`, { cause: err });
  }
  const info = (await source.commit()) ?? summary.info;
  return {
    totalMs: Date.now() - started,
    downtimeMs:
      summary.stoppedAtUs === undefined ? undefined : Math.round((resumedAtUs - summary.stoppedAtUs) / 1000),
    qemuDowntimeMs: info.downtime,
    ramBytes: info.ram?.total ?? 0,
    streamBytes: summary.streamBytes,
    wireBytes: source.wireBytes(),
    dirtySyncCount: info.ram?.['dirty-sync-count'] ?? 0,
  };
}
