/**
 * A manual clock with timers: nothing waits for real time. `advance(ms)` runs every timer that comes due,
 * in order, letting promises settle between them.
 */

import type { TimerHandle } from "../../src/environment.js";

interface Timer {
  id: number;
  due: number;
  callback: () => void;
}

/** Let pending promise callbacks and immediates run (a few macrotask turns; no real delay). */
export async function flush(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class FakeClock {
  private current: number;
  private timers: Timer[] = [];
  private nextId = 1;

  constructor(start = 1_700_000_000_000) {
    this.current = start;
  }

  now = (): number => this.current;

  setTimeout = (callback: () => void, ms: number): TimerHandle => {
    const timer = { id: this.nextId++, due: this.current + Math.max(0, ms), callback };
    this.timers.push(timer);
    return timer.id;
  };

  clearTimeout = (handle: TimerHandle): void => {
    this.timers = this.timers.filter((timer) => timer.id !== handle);
  };

  /** Timers still armed, soonest first (their delays from now, ms). */
  pending(): number[] {
    return this.timers.map((timer) => timer.due - this.current).sort((a, b) => a - b);
  }

  /** Move time forward by `ms`, running the timers that come due on the way. */
  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    await flush();
    for (;;) {
      const next = [...this.timers].sort((a, b) => a.due - b.due || a.id - b.id)[0];
      if (next === undefined || next.due > target) break;
      this.timers = this.timers.filter((timer) => timer !== next);
      this.current = Math.max(this.current, next.due);
      next.callback();
      await flush();
    }
    this.current = target;
    await flush();
  }
}
