// Adaptive stream count for AMST: a hill climber on measured goodput. Pure; the session feeds it one
// goodput sample per interval and applies the count it returns.

export interface StreamCountBounds {
  readonly initial: number;
  readonly min: number;
  readonly max: number;
}

/**
 * After `warmup` samples, grows the number of streams while each step up raises goodput by more than `gain` (10 %), steps
 * back when a step up did not pay, and holds otherwise; every `probeEvery` holds it probes upward
 * again, since the link may have changed.
 */
export class StreamCountController {
  private current: number;
  private best: { count: number; goodput: number } | undefined;
  private probing = false;
  private holds = 0;
  private warmups: number;

  constructor(
    private readonly bounds: StreamCountBounds,
    private readonly gain = 0.1,
    private readonly probeEvery = 5,
    /** Samples ignored at the start: TCP slow start makes early goodput rise whatever the count. */
    warmup = 2,
  ) {
    this.current = clamp(bounds.initial, bounds.min, bounds.max);
    this.warmups = warmup;
  }

  get count(): number {
    return this.current;
  }

  /** Records the goodput (bytes/s) measured at the current count; returns the count to use next. */
  observe(goodput: number): number {
    if (this.warmups > 0) {
      this.warmups--;
      return this.current;
    }
    if (!this.best) {
      this.best = { count: this.current, goodput };
      return this.probeUp();
    }
    if (this.probing) {
      if (goodput > this.best.goodput * (1 + this.gain)) {
        this.best = { count: this.current, goodput };
        return this.probeUp();
      }
      // The extra streams did not pay: go back to the best count seen.
      this.probing = false;
      this.holds = 0;
      this.current = this.best.count;
      return this.current;
    }
    // Holding at the best count: track its goodput, probe upward now and then.
    this.best = { count: this.current, goodput };
    if (++this.holds >= this.probeEvery) return this.probeUp();
    return this.current;
  }

  private probeUp(): number {
    this.holds = 0;
    const next = Math.min(this.bounds.max, Math.max(this.current + 1, Math.ceil(this.current * 1.5)));
    this.probing = next > this.current;
    this.current = next;
    return next;
  }
}

function clamp(n: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, n));
}
