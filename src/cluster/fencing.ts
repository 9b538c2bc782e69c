// Self-fencing clock (pure): when a node must stop trusting its lease, from its last successful keepalive.

/**
 * Contract: a keepalive that etcd answered with TTL `ttlMs` renews the lease from the moment etcd
 * handled it, which is no earlier than the moment the request was sent. So the lease cannot expire
 * before `sentAt + ttlMs`. The node fences itself at `sentAt + ttlMs - marginMs`, which is strictly
 * before any expiry etcd can decide — as long as the local clock runs no slower than etcd's
 * (monotonic clocks; the margin absorbs drift and timer lateness).
 */
export interface FenceClock {
  /** Monotonic ms of the send time of the last keepalive (or grant) etcd confirmed. */
  readonly lastOkSentAt: number;
  /** TTL etcd reported on that confirmation, in ms. */
  readonly ttlMs: number;
  readonly marginMs: number;
}

/** The monotonic time at which the node must consider itself fenced if no newer keepalive succeeds. */
export function fenceDeadline(clock: FenceClock): number {
  return clock.lastOkSentAt + clock.ttlMs - clock.marginMs;
}

/** Record a confirmed keepalive; ignores confirmations older than the one already recorded (out-of-order replies). */
export function recordKeepalive(clock: FenceClock, sentAt: number, ttlMs: number): FenceClock {
  if (sentAt < clock.lastOkSentAt) return clock;
  return { ...clock, lastOkSentAt: sentAt, ttlMs };
}

/**
 * Default safety margin for a TTL: a third of it, at least 1 s, and never so much that the node
 * fences before its first renewal could arrive (keepalives go out every TTL/4).
 */
export function defaultMarginMs(ttlMs: number): number {
  return Math.min(Math.max(1000, Math.floor(ttlMs / 3)), Math.floor(ttlMs / 2));
}
