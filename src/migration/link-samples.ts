// What a migration measured of the link, as bandwidth samples (pure): the wire bytes DWCP had put on
// the link, read at each progress report, become one sample per interval of at least `intervalMs`
// (wire goodput in bytes/s over that interval). The manager appends them to the bandwidth_samples
// table when the transfer ends, so `novacron ml train bandwidth --db` learns from real transfers.
import type { BandwidthSample } from '../store/types.js';

export interface LinkSamplerOptions {
  readonly sourceNode: string;
  readonly targetNode: string;
  /** Shortest interval one sample covers (default 1000 ms). */
  readonly intervalMs?: number;
  /** Round trip measured before the transfer, recorded with every sample. */
  readonly rttMs?: number | null;
  readonly streams?: number | null;
  /** Most samples kept (default 3600: an hour of one-second samples); later ones are dropped. */
  readonly maxSamples?: number;
}

export class LinkSampler {
  readonly #o: LinkSamplerOptions;
  readonly #samples: BandwidthSample[] = [];
  #lastAt: number | undefined;
  #lastBytes = 0;

  constructor(options: LinkSamplerOptions) {
    this.#o = options;
  }

  /**
   * The cumulative wire bytes at time `atMs` (epoch ms). The first call only sets the start;
   * a report that goes back in bytes or time is ignored.
   */
  observe(atMs: number, wireBytes: number): void {
    if (!Number.isFinite(atMs) || !Number.isFinite(wireBytes)) return;
    if (this.#lastAt === undefined) {
      this.#lastAt = atMs;
      this.#lastBytes = wireBytes;
      return;
    }
    this.#emitIfCovers(atMs, wireBytes, this.#o.intervalMs ?? 1000);
  }

  /**
   * The transfer ended at `atMs` with `wireBytes` on the wire: the tail since the last sample
   * becomes one more sample when it covers at least `minTailMs` (default 200 ms), so a transfer
   * shorter than one interval still leaves a measurement.
   */
  finish(atMs: number, wireBytes: number, minTailMs = 200): void {
    if (this.#lastAt === undefined || !Number.isFinite(atMs) || !Number.isFinite(wireBytes)) return;
    this.#emitIfCovers(atMs, wireBytes, minTailMs);
  }

  #emitIfCovers(atMs: number, wireBytes: number, minMs: number): void {
    const dt = atMs - this.#lastAt!;
    if (dt < minMs || dt <= 0 || wireBytes < this.#lastBytes) return;
    if (this.#samples.length < (this.#o.maxSamples ?? 3600)) {
      this.#samples.push({
        at: new Date(atMs).toISOString(),
        sourceNode: this.#o.sourceNode,
        targetNode: this.#o.targetNode,
        bytesPerSecond: ((wireBytes - this.#lastBytes) * 1000) / dt,
        rttMs: this.#o.rttMs ?? null,
        streams: this.#o.streams ?? null,
      });
    }
    this.#lastAt = atMs;
    this.#lastBytes = wireBytes;
  }

  /** The samples so far (oldest first). */
  samples(): readonly BandwidthSample[] {
    return this.#samples;
  }
}
