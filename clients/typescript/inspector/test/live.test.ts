import assert from "node:assert/strict";
import { describe, it } from "node:test";

import type { Api } from "../src/api.js";
import type { FeedTransition } from "../src/feed.js";
import { Live } from "../src/live.js";

type Overview = { counts: Record<string, Record<string, number>>; seq: number; refusal_seq: number };

/** An Api whose only read is the overview, answered from ``answers`` in turn. */
function fakeApi(answers: Overview[]): Api {
  return { get: async () => answers.shift() } as unknown as Api;
}

let seq = 0;
function move(machine: string, event: string, from: string, to: string, version: number): FeedTransition {
  seq += 1;
  return { seq, machine, id: `i${seq}`, session_id: null, version, event, from, to, actor: "server", request_id: null, at: "" };
}

describe("inspector: counts from the feed", () => {
  it("moves a count from the source state to the destination", async () => {
    seq = 10;
    const live = new Live(fakeApi([{ counts: { session: { session_active: 2, closed: 0 } }, seq: 10, refusal_seq: 0 }]));
    await live.load();
    live.transitions([move("session", "logout", "session_active", "closed", 3)]);
    assert.deepEqual(live.counts.session, { session_active: 1, closed: 1 });
  });

  it("counts an instance's first transition (committed with its creation) without taking from the initial state", async () => {
    seq = 0;
    const live = new Live(fakeApi([{ counts: { session: { anonymous: 0, authenticated: 0, session_active: 0 } }, seq: 0, refusal_seq: 0 }]));
    await live.load();
    live.transitions([
      move("session", "authenticate", "anonymous", "authenticated", 1),
      move("session", "activate", "authenticated", "session_active", 2),
    ]);
    assert.deepEqual(live.counts.session, { anonymous: 0, authenticated: 0, session_active: 1 });
  });

  it("leaves counts alone on a self-transition (refresh)", async () => {
    seq = 0;
    const live = new Live(fakeApi([{ counts: { session: { session_active: 1 } }, seq: 0, refusal_seq: 0 }]));
    await live.load();
    live.transitions([move("session", "refresh", "session_active", "session_active", 4)]);
    assert.deepEqual(live.counts.session, { session_active: 1 });
  });

  it("on a fresh read of the counts, applies again only the transitions after it", async () => {
    seq = 0;
    const live = new Live(
      fakeApi([
        { counts: { session: { session_active: 3, closed: 0 } }, seq: 0, refusal_seq: 0 },
        // Read after the first logout (seq 1) but before the second (seq 2).
        { counts: { session: { session_active: 2, closed: 1 } }, seq: 1, refusal_seq: 0 },
      ]),
    );
    await live.load();
    live.transitions([move("session", "logout", "session_active", "closed", 3), move("session", "logout", "session_active", "closed", 3)]);
    assert.deepEqual(live.counts.session, { session_active: 1, closed: 2 });
    const position = await live.load();
    assert.equal(position.seq, 1);
    assert.deepEqual(live.counts.session, { session_active: 1, closed: 2 });
  });

  it("rates applied events and refusals by event and outcome", async () => {
    seq = 0;
    const live = new Live(fakeApi([{ counts: {}, seq: 0, refusal_seq: 0 }]));
    await live.load();
    live.transitions([move("session", "logout", "session_active", "closed", 3)]);
    live.refusals([
      { seq: 1, machine: "session", id: "x", event: "refresh", state: "closed", code: "transition_not_allowed", reason: "", request_id: null, at: "" },
    ]);
    const rates = live.rates().map((r) => [r.machine, r.event, r.outcome, r.lastMinute, r.total]);
    assert.deepEqual(rates.sort(), [
      ["session", "logout", "applied", 1, 1],
      ["session", "refresh", "transition_not_allowed", 1, 1],
    ]);
    assert.deepEqual(live.rates(Date.now() + 61_000).map((r) => [r.event, r.lastMinute, r.total]).sort(), [
      ["logout", 0, 1],
      ["refresh", 0, 1],
    ]);
  });
});
