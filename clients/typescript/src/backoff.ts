/**
 * Exponential backoff with full jitter (docs/protocol.md): 0.5 s doubling to a 30 s cap, never a give-up count.
 *
 * A port of clients/python/src/sessionflow/client/backoff.py. Pure: the random source and the clock are
 * injected and nothing here waits. The client asks for a delay each time it has to wait and reports each
 * welcome; tests drive both with a fixed random source and a manual clock.
 *
 * @module
 */

/** One wait: `seconds` from the clock reading `start` (ms); `ceiling` bounded the jitter. */
export interface Delay {
  /** The attempt this wait belongs to, from 0. */
  readonly attempt: number;
  /** The largest jitter of this attempt: `min(cap, base * 2 ** attempt)`, in seconds. */
  readonly ceiling: number;
  /** The wait, in seconds: `max(retryAfter, uniform(0, ceiling))`. */
  readonly seconds: number;
  /** The clock reading (ms) when the wait began. */
  readonly start: number;
  /** The server's `retry_after` (seconds), a floor for the wait, when it gave one. */
  readonly retryAfter: number | null;
}

/** Options of {@link Backoff}; times in seconds, `random` uniform in [0, 1), `now` in ms. */
export interface BackoffOptions {
  base?: number;
  cap?: number;
  /** A connection must stay up this long (seconds) for the attempt count to go back to 0. */
  stableAfter?: number;
  random?: () => number;
  now?: () => number;
}

/**
 * Full-jitter backoff: the n-th wait (from 0) is `uniform(0, min(cap, base * 2 ** n))`.
 *
 * `retryAfter` from the server is a floor: the wait is `max(retryAfter, jitter)`, and the attempt still
 * counts, so repeated refusals keep growing past it. The count goes back to 0 once a connection (a
 * welcome) has stayed up `stableAfter` seconds, so a server that welcomes and drops at once cannot make
 * the client hammer it at the shortest delay; `stableAfter: 0` resets on every welcome. There is no
 * maximum number of attempts: while the session can be used, the client keeps trying.
 */
export class Backoff {
  readonly base: number;
  readonly cap: number;
  readonly stableAfter: number;
  /** The next wait's attempt number. */
  attempt = 0;
  private readonly random: () => number;
  private readonly now: () => number;
  private connectedAt: number | null = null;

  constructor(options: BackoffOptions = {}) {
    this.base = options.base ?? 0.5;
    this.cap = options.cap ?? 30;
    this.stableAfter = options.stableAfter ?? 5;
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    if (!(this.base > 0) || !(this.cap >= this.base) || !(this.stableAfter >= 0)) {
      throw new RangeError("backoff needs 0 < base <= cap and stableAfter >= 0");
    }
  }

  /** The largest wait of `attempt` (0-based), in seconds: `min(cap, base * 2 ** attempt)`. */
  ceiling(attempt: number): number {
    if (attempt >= 64) return this.cap; // far past any cap; keeps the arithmetic finite
    return Math.min(this.cap, this.base * 2 ** attempt);
  }

  /** The next wait; counts one more attempt. */
  next(retryAfter: number | null = null): Delay {
    const now = this.now();
    if (this.connectedAt !== null) {
      if (now - this.connectedAt >= this.stableAfter * 1000) this.attempt = 0;
      this.connectedAt = null;
    }
    const ceiling = this.ceiling(this.attempt);
    let seconds = this.random() * ceiling;
    if (retryAfter !== null) seconds = Math.max(seconds, retryAfter);
    const delay: Delay = { attempt: this.attempt, ceiling, seconds, start: now, retryAfter };
    this.attempt += 1;
    return delay;
  }

  /** A connection was welcomed; the count resets if it lasts `stableAfter` (see {@link next}). */
  connected(): void {
    this.connectedAt = this.now();
    if (this.stableAfter === 0) this.attempt = 0;
  }

  /** Forget every attempt. */
  reset(): void {
    this.attempt = 0;
    this.connectedAt = null;
  }
}
