// Adaptive stream count for AMST: a hill climber on measured goodput. Pure; the session feeds it one
// goodput sample per interval and applies the count it returns.

export interface StreamCountBounds {
  readonly initial: number;
  readonly min: number;
  readonly max: number;
}

export interface StreamCountTuning {
  /** Relative goodput gain a step up must show to be kept. Default 0.1. */
  readonly gain?: number;
  /** Samples held at the best count before probing upward again (doubles after each failed probe, up to 8×). Default 5. */
  readonly probeEvery?: number;
  /** Samples ignored at the start: TCP slow start makes early goodput rise whatever the count. Default 2. */
  readonly warmup?: number;
  /** Samples ignored after each change of count (new streams are in slow start, retired ones drain). Default 1. */
  readonly settle?: number;
  /** Samples averaged to judge a probe. Default 2. */
  readonly probeSamples?: number;
  /** Probe upward right after the warm-up (true), or only after `probeEvery` holds. Default true. */
  readonly probeAtStart?: boolean;
}

/**
 * After the warm-up, grows the number of streams (×1.5) while each step up raises goodput by more
 * than `gain`, steps back when a step up did not pay, and holds otherwise; every `probeEvery` holds
 * it probes upward again, since the link may have changed. A probe is judged on the mean of
 * `probeSamples` samples taken after `settle` samples, since one sample is noisy and the sample
 * right after a change mixes the old and new counts. Failed probes back off exponentially, so a
 * link that one stream fills is disturbed rarely.
 */
export class StreamCountController {
  private current: number;
  private best: { count: number; goodput: number } | undefined;
  private probing = false;
  private holds = 0;
  private holdTarget: number;
  private skip: number;
  private samples: number[] = [];
  private readonly gain: number;
  private readonly probeEvery: number;
  private readonly settle: number;
  private readonly probeSamples: number;
  private readonly probeAtStart: boolean;

  constructor(
    private readonly bounds: StreamCountBounds,
    tuning: StreamCountTuning = {},
  ) {
    this.current = clamp(bounds.initial, bounds.min, bounds.max);
    this.gain = tuning.gain ?? 0.1;
    this.probeEvery = Math.max(1, tuning.probeEvery ?? 5);
    this.holdTarget = this.probeEvery;
    this.skip = tuning.warmup ?? 2;
    this.settle = tuning.settle ?? 1;
    this.probeSamples = Math.max(1, tuning.probeSamples ?? 2);
    this.probeAtStart = tuning.probeAtStart ?? true;
  }

  get count(): number {
    return this.current;
  }

  /** Records the goodput (bytes/s) measured at the current count; returns the count to use next. */
  observe(goodput: number): number {
    if (this.skip > 0) {
      this.skip--;
      return this.current;
    }
    if (!this.best) {
      this.best = { count: this.current, goodput };
      if (this.probeAtStart) return this.probeUp();
      this.holds = 1;
      return this.current;
    }
    if (this.probing) {
      this.samples.push(goodput);
      if (this.samples.length < this.probeSamples) return this.current;
      const mean = this.samples.reduce((a, b) => a + b, 0) / this.samples.length;
      this.samples = [];
      if (mean > this.best.goodput * (1 + this.gain)) {
        this.best = { count: this.current, goodput: mean };
        this.holdTarget = this.probeEvery;
        return this.probeUp();
      }
      // The extra streams did not pay: go back to the best count seen, probe again later.
      this.probing = false;
      this.holds = 0;
      this.holdTarget = Math.min(this.holdTarget * 2, this.probeEvery * 8);
      if (this.current !== this.best.count) this.skip = this.settle;
      this.current = this.best.count;
      return this.current;
    }
    // Holding at the best count: track its goodput, probe upward now and then.
    this.best = { count: this.current, goodput };
    if (++this.holds >= this.holdTarget) return this.probeUp();
    return this.current;
  }

  private probeUp(): number {
    this.holds = 0;
    const next = Math.min(this.bounds.max, Math.max(this.current + 1, Math.ceil(this.current * 1.5)));
    this.probing = next > this.current;
    if (this.probing) {
      this.skip = this.settle;
      this.samples = [];
    }
    this.current = next;
    return next;
  }
}

function clamp(n: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, n));
}
