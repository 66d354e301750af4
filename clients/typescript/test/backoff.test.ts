import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Backoff } from "../src/backoff.js";

function fixed(value: number): () => number {
  return () => value;
}

describe("backoff: full jitter", () => {
  it("draws uniform(0, min(30 s, 0.5 s * 2^attempt)): bounds and growth", () => {
    const top = new Backoff({ random: fixed(0.999999), now: () => 0 });
    const ceilings = Array.from({ length: 9 }, () => top.next().ceiling);
    assert.deepEqual(ceilings, [0.5, 1, 2, 4, 8, 16, 30, 30, 30]);
    const bottom = new Backoff({ random: fixed(0), now: () => 0 });
    assert.equal(bottom.next().seconds, 0);
    const half = new Backoff({ random: fixed(0.5), now: () => 0 });
    assert.deepEqual(
      Array.from({ length: 4 }, () => half.next().seconds),
      [0.25, 0.5, 1, 2],
    );
  });

  it("stays within [0, ceiling] for any random draw and is capped at 30 s however long it goes", () => {
    let seed = 7;
    const backoff = new Backoff({ random: () => ((seed = (seed * 16807) % 2147483647) / 2147483647), now: () => 0 });
    for (let i = 0; i < 1000; i += 1) {
      const delay = backoff.next();
      assert.ok(delay.seconds >= 0 && delay.seconds <= delay.ceiling && delay.ceiling <= 30);
    }
    assert.equal(backoff.attempt, 1000, "never gives up: attempt 1000 still yields a wait");
    assert.equal(backoff.ceiling(10_000), 30);
  });

  it("waits at least retry_after, and the attempt still counts", () => {
    const backoff = new Backoff({ random: fixed(0.1), now: () => 0 });
    const delay = backoff.next(7);
    assert.equal(delay.seconds, 7);
    assert.equal(delay.retryAfter, 7);
    assert.equal(backoff.attempt, 1);
    const later = new Backoff({ random: fixed(0.99), now: () => 0, base: 20, cap: 30 });
    assert.ok(later.next(2).seconds > 2, "a larger jitter wins over a smaller retry_after");
  });

  it("resets the attempts once a welcomed connection stayed up stableAfter seconds", () => {
    let now = 0;
    const backoff = new Backoff({ random: fixed(0.5), now: () => now });
    backoff.next();
    backoff.next();
    backoff.next();
    backoff.connected();
    now += 1000; // dropped after 1 s: a flapping server keeps the count
    assert.equal(backoff.next().attempt, 3);
    backoff.connected();
    now += 5000; // stayed up 5 s
    assert.equal(backoff.next().attempt, 0);
  });

  it("with stableAfter 0 resets on every welcome", () => {
    const backoff = new Backoff({ random: fixed(0.5), now: () => 0, stableAfter: 0 });
    backoff.next();
    backoff.next();
    backoff.connected();
    assert.equal(backoff.next().attempt, 0);
  });

  it("refuses nonsense settings", () => {
    assert.throws(() => new Backoff({ base: 0 }), RangeError);
    assert.throws(() => new Backoff({ base: 2, cap: 1 }), RangeError);
  });
});
