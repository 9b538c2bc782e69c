// Circuit breaker for calls to the ML service: closed, open after N consecutive failures, half-open trial after a pause.

export const BreakerState = { Closed: 'closed', Open: 'open', HalfOpen: 'half-open' } as const;
export type BreakerState = (typeof BreakerState)[keyof typeof BreakerState];

export interface BreakerOptions {
  /** Consecutive failures that open the breaker. */
  readonly failureThreshold: number;
  /** How long the breaker stays open before one trial call is let through. */
  readonly resetMs: number;
  /** Injected clock (ms); Date.now by default. */
  readonly now?: () => number;
  readonly onChange?: (from: BreakerState, to: BreakerState) => void;
}

/**
 * A classic three-state breaker. Contract: call `allow()` before a call; when it returns true,
 * report the outcome with exactly one `success()` or `failure()`. In half-open state only one
 * trial is in flight at a time; its outcome closes or re-opens the breaker.
 */
export class CircuitBreaker {
  #state: BreakerState = BreakerState.Closed;
  #failures = 0;
  #openedAt = 0;
  #trialInFlight = false;
  readonly #opts: BreakerOptions;
  readonly #now: () => number;

  constructor(opts: BreakerOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** The state, moving open to half-open when the pause has passed. */
  get state(): BreakerState {
    if (this.#state === BreakerState.Open && this.#now() - this.#openedAt >= this.#opts.resetMs) {
      this.#set(BreakerState.HalfOpen);
    }
    return this.#state;
  }

  get consecutiveFailures(): number {
    return this.#failures;
  }

  /** Whether a call may go to the service now. */
  allow(): boolean {
    switch (this.state) {
      case BreakerState.Closed:
        return true;
      case BreakerState.Open:
        return false;
      case BreakerState.HalfOpen:
        if (this.#trialInFlight) return false;
        this.#trialInFlight = true;
        return true;
    }
  }

  success(): void {
    this.#failures = 0;
    this.#trialInFlight = false;
    if (this.#state !== BreakerState.Closed) this.#set(BreakerState.Closed);
  }

  failure(): void {
    this.#failures++;
    this.#trialInFlight = false;
    if (this.#state === BreakerState.HalfOpen || this.#failures >= this.#opts.failureThreshold) {
      this.#openedAt = this.#now();
      if (this.#state !== BreakerState.Open) this.#set(BreakerState.Open);
    }
  }

  #set(to: BreakerState): void {
    const from = this.#state;
    this.#state = to;
    this.#opts.onChange?.(from, to);
  }
}
