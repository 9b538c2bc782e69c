// Run-time mode detection: detects once at boot, then (with `system.mode: auto`) re-detects on an
// interval and reports a change of mode to its listeners once it has been seen on consecutive runs.
import { detectNetworkMode, type ModeDecision, type ModeProbes } from './mode-detect.js';
import { gatherModeProbes, type GatherOptions } from './mode-probe.js';
import type { NovaCronConfig } from './schema.js';

export type ModeChangeListener = (next: ModeDecision, previous: ModeDecision) => void;

export interface ModeDetectorOptions {
  /** Gathers the evidence (default: RDMA in sysfs and TCP RTT to `cluster.peers`). */
  readonly probe?: (config: NovaCronConfig, signal: AbortSignal) => Promise<ModeProbes>;
  /** Options of the default probe. */
  readonly gather?: Omit<GatherOptions, 'signal'>;
  /** Re-detection period in ms (default `system.mode_redetect_seconds`; 0 disables). */
  readonly intervalMs?: number;
  /** Consecutive detections of a new mode required before switching (default 2; the first detection is immediate). */
  readonly confirmations?: number;
  /** Called when a periodic detection throws (it never should: probes do not reject). */
  readonly onError?: (err: unknown) => void;
}

/**
 * Holds the mode in force. Contracts: `detect()` may be called at any time and never runs two
 * probes at once (a concurrent call shares the run in flight); listeners are called synchronously
 * after `current` changes; `stop()` is idempotent and leaves no timer behind. An explicit
 * `system.mode` is returned without probing and never changes.
 */
export class ModeDetector {
  readonly #config: NovaCronConfig;
  readonly #probe: (config: NovaCronConfig, signal: AbortSignal) => Promise<ModeProbes>;
  readonly #intervalMs: number;
  readonly #confirmations: number;
  readonly #onError: (err: unknown) => void;
  readonly #listeners = new Set<ModeChangeListener>();
  #current: ModeDecision | undefined;
  #pending: { mode: ModeDecision['mode']; count: number } | undefined;
  #inFlight: Promise<ModeDecision> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #abort = new AbortController(); // replaced after each stop()
  #detectedAt: Date | undefined;

  constructor(config: NovaCronConfig, options: ModeDetectorOptions = {}) {
    this.#config = config;
    const gather = options.gather ?? {};
    this.#probe = options.probe ?? ((c, signal) => gatherModeProbes(c, { ...gather, signal }));
    this.#intervalMs = options.intervalMs ?? config.system.mode_redetect_seconds * 1000;
    this.#confirmations = Math.max(1, options.confirmations ?? 2);
    this.#onError = options.onError ?? (() => undefined);
  }

  /** The decision in force, once `detect()` has resolved. */
  get current(): ModeDecision | undefined {
    return this.#current;
  }

  /** When the decision in force was last confirmed. */
  get detectedAt(): Date | undefined {
    return this.#detectedAt;
  }

  /** Probes and decides; resolves with the decision in force afterwards. */
  detect(): Promise<ModeDecision> {
    this.#inFlight ??= this.#run().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #run(): Promise<ModeDecision> {
    const probes: ModeProbes =
      this.#config.system.mode === 'auto'
        ? await this.#probe(this.#config, this.#abort.signal)
        : { rdmaDevices: [], peers: [] };
    const decision = detectNetworkMode(this.#config, probes);
    const previous = this.#current;
    this.#detectedAt = new Date();
    if (!previous) {
      this.#current = decision;
      return decision;
    }
    if (decision.mode === previous.mode) {
      this.#pending = undefined;
      this.#current = decision; // fresher confidence and reason
      return decision;
    }
    const count = this.#pending?.mode === decision.mode ? this.#pending.count + 1 : 1;
    this.#pending = { mode: decision.mode, count };
    if (count < this.#confirmations) return previous;
    this.#pending = undefined;
    this.#current = decision;
    for (const l of this.#listeners) l(decision, previous);
    return decision;
  }

  /** Registers a listener for mode changes; returns the function that removes it. */
  onChange(listener: ModeChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Starts periodic re-detection (no-op for an explicit mode or a zero interval). The timer does not keep the process alive. */
  start(): void {
    if (this.#timer || this.#config.system.mode !== 'auto' || this.#intervalMs <= 0) return;
    this.#timer = setInterval(() => {
      this.detect().catch(this.#onError);
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** Stops re-detection and aborts a probe in flight. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#abort.abort();
    this.#abort = new AbortController();
  }
}

/** One detection with the default probes, for commands that do not keep a detector. */
export async function detectMode(config: NovaCronConfig, gather: GatherOptions = {}): Promise<ModeDecision> {
  if (config.system.mode !== 'auto') return detectNetworkMode(config, { rdmaDevices: [], peers: [] });
  return detectNetworkMode(config, await gatherModeProbes(config, gather));
}
