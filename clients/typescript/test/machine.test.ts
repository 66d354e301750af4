import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { CLIENT_MACHINE } from "../src/generated/lifecycle.js";
import {
  ActorNotPermitted,
  CLIENT_EVENTS,
  CLIENT_STATES,
  INITIAL_STATE,
  TransitionNotAllowed,
  UnknownName,
  allowedEvents,
  isTerminal,
  statesKeptBy,
  step,
  timersArmedIn,
} from "../src/machine.js";
import type { Actor, ClientEvent, ClientState } from "../src/machine.js";

const ACTORS: readonly Actor[] = ["client", "server", "timer"];

/** The destination the generated table gives, or undefined: read straight from the table, not from the engine. */
function expected(state: ClientState, event: ClientEvent): ClientState | undefined {
  for (const row of CLIENT_MACHINE.transitions) {
    if (row.event === event && (row.sources as readonly string[]).includes(state)) return row.dest ?? state;
  }
  return undefined;
}

describe("the client machine", () => {
  it("starts in the generated initial state and knows every state and event of the table", () => {
    assert.equal(INITIAL_STATE, "logged_out");
    assert.deepEqual([...CLIENT_STATES], [...CLIENT_MACHINE.states]);
    assert.deepEqual([...CLIENT_EVENTS], Object.keys(CLIENT_MACHINE.events));
    assert.ok(isTerminal("stopped"));
    assert.ok(!isTerminal("connected"));
  });

  it("steps every transition of the generated table where it says, for every actor that may fire it", () => {
    let steps = 0;
    for (const row of CLIENT_MACHINE.transitions) {
      for (const source of row.sources) {
        for (const actor of CLIENT_MACHINE.events[row.event].firedBy) {
          assert.equal(step(source, row.event, actor), row.dest ?? source, `${source} -${row.event}(${actor})->`);
          steps += 1;
        }
      }
    }
    const pairs = CLIENT_MACHINE.transitions.reduce((n, row) => n + row.sources.length, 0);
    assert.equal(steps, pairs, "each event has one actor in the client machine: one step per (source, event)");
  });

  it("refuses every other (state, event, actor): no transition, or an actor the event does not allow", () => {
    for (const state of CLIENT_STATES) {
      for (const event of CLIENT_EVENTS) {
        for (const actor of ACTORS) {
          const dest = expected(state, event);
          const permitted = (CLIENT_MACHINE.events[event].firedBy as readonly Actor[]).includes(actor);
          if (dest === undefined) {
            assert.throws(() => step(state, event, actor), TransitionNotAllowed, `${state} ${event} ${actor}`);
          } else if (!permitted) {
            assert.throws(() => step(state, event, actor), ActorNotPermitted, `${state} ${event} ${actor}`);
          } else {
            assert.equal(step(state, event, actor), dest);
          }
        }
      }
    }
  });

  it("says what it would accept instead, and checks the transition before the actor (like the Python engine)", () => {
    try {
      step("logged_out", "welcome", "client");
      assert.fail("stepped");
    } catch (refused) {
      assert.ok(refused instanceof TransitionNotAllowed);
      assert.equal(refused.code, "transition_not_allowed");
      assert.deepEqual(refused.allowedEvents, ["login", "stop"]);
      assert.match(refused.message, /no transition from this state/);
    }
    try {
      step("reconnecting", "retry", "client");
      assert.fail("stepped");
    } catch (refused) {
      assert.ok(refused instanceof ActorNotPermitted);
      assert.match(refused.message, /client may not fire it \(fired by: timer\)/);
    }
  });

  it("refuses names that are not in the machine", () => {
    assert.throws(() => step("nowhere" as ClientState, "login", "client"), UnknownName);
    assert.throws(() => step("logged_out", "jump" as ClientEvent, "client"), UnknownName);
  });

  it("lists allowed events per state and actor, and the timers armed in a state", () => {
    assert.deepEqual(allowedEvents("reconnecting", "timer"), ["retry"]);
    assert.deepEqual(allowedEvents("stopped"), []);
    assert.deepEqual(
      timersArmedIn("reconnecting").map((timer) => [timer.name, timer.event]),
      [["backoff", "retry"]],
    );
    assert.deepEqual(timersArmedIn("connected"), []);
    assert.deepEqual(statesKeptBy("refreshed"), ["active", "connected", "reconnecting"]);
  });
});
