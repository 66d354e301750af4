/**
 * The client machine, stepped: `(state, event, actor) -> destination`, or a typed refusal.
 *
 * A port of the Python `Engine.step` (lifecycle/engine.py) for the client machine only. Everything
 * it knows comes from the generated `CLIENT_MACHINE` (src/generated/lifecycle.ts): the states, the
 * events and who may fire them, the transitions (`dest: null` means stay) and the timers. Refusals
 * are checked in the Python order, so the most useful reason wins: an unknown name, then no
 * transition from this state, then an actor the event does not allow.
 *
 * @module
 */

import { CLIENT_MACHINE } from "./generated/lifecycle.js";
import type { ClientEvent, ClientState } from "./generated/lifecycle.js";

export type { ClientEvent, ClientState } from "./generated/lifecycle.js";

/** Who fires a client event: the application (`client`), the server's answers (`server`), or a timer. */
export type Actor = (typeof CLIENT_MACHINE.events)[ClientEvent]["firedBy"][number];

/** A timer the machine declares: armed in some states, it fires `event` when it comes due. */
export type MachineTimer = (typeof CLIENT_MACHINE.timers)[number];

/** Root of the machine's refusals; carries the state, the event and what the machine would accept instead. */
export class EventRefused extends Error {
  /** A stable code, like the Python error classes' `code`. */
  readonly code: string = "event_refused";

  constructor(
    readonly state: string,
    readonly event: string,
    /** Events the machine accepts from `state` for the actor that asked. */
    readonly allowedEvents: readonly ClientEvent[],
    readonly reason: string,
  ) {
    super(
      `client: event '${event}' refused in state '${state}': ${reason} (allowed events: ${allowedEvents.join(", ") || "none"})`,
    );
    this.name = new.target.name;
  }
}

/** The event or the state is not part of the machine (a bug in the caller). */
export class UnknownName extends EventRefused {
  override readonly code = "unknown_name";
}

/** The machine has no transition for this event from this state. */
export class TransitionNotAllowed extends EventRefused {
  override readonly code = "transition_not_allowed";
}

/** The event exists from this state, but this actor may not fire it. */
export class ActorNotPermitted extends EventRefused {
  override readonly code = "actor_not_permitted";
}

const STATES: ReadonlySet<string> = new Set(CLIENT_MACHINE.states);
const EVENTS: ReadonlySet<string> = new Set(Object.keys(CLIENT_MACHINE.events));

/** `event@state` -> destination, built once from the table (a transition row lists several sources). */
const DESTINATIONS: ReadonlyMap<string, ClientState> = (() => {
  const table = new Map<string, ClientState>();
  for (const row of CLIENT_MACHINE.transitions) {
    for (const source of row.sources) {
      table.set(`${row.event}@${source}`, row.dest ?? source);
    }
  }
  return table;
})();

function firedBy(event: ClientEvent): readonly Actor[] {
  return CLIENT_MACHINE.events[event].firedBy;
}

/** The initial state of every client. */
export const INITIAL_STATE: ClientState = CLIENT_MACHINE.initial;

/** Every state, in declaration order. */
export const CLIENT_STATES: readonly ClientState[] = CLIENT_MACHINE.states;

/** Every event, in declaration order. */
export const CLIENT_EVENTS: readonly ClientEvent[] = Object.keys(CLIENT_MACHINE.events) as ClientEvent[];

/** Whether nothing leaves `state`. */
export function isTerminal(state: ClientState): boolean {
  return (CLIENT_MACHINE.terminal as readonly ClientState[]).includes(state);
}

/** Events the machine accepts from `state` (for `actor`, when given), in declaration order. */
export function allowedEvents(state: ClientState, actor?: Actor): ClientEvent[] {
  return CLIENT_EVENTS.filter(
    (event) => DESTINATIONS.has(`${event}@${state}`) && (actor === undefined || firedBy(event).includes(actor)),
  );
}

/** The states in which `event` leaves the machine where it is (a `dest: null` row), e.g. `refreshed`. */
export function statesKeptBy(event: ClientEvent): ClientState[] {
  return CLIENT_MACHINE.transitions.filter((row) => row.event === event && row.dest === null).flatMap((row) => [...row.sources]);
}

/** The timers armed while the machine is in `state` (the client's waits: `backoff` in `reconnecting`). */
export function timersArmedIn(state: ClientState): MachineTimer[] {
  return CLIENT_MACHINE.timers.filter((timer) => (timer.armedIn as readonly ClientState[]).includes(state));
}

/**
 * Decide `event` in `state` for `actor`: the destination (the same state for a `dest: null` row), or a
 * refusal ({@link UnknownName}, {@link TransitionNotAllowed}, {@link ActorNotPermitted}).
 */
export function step(state: ClientState, event: ClientEvent, actor: Actor): ClientState {
  if (!STATES.has(state)) {
    throw new UnknownName(String(state), String(event), [], "unknown state");
  }
  if (!EVENTS.has(event)) {
    throw new UnknownName(state, String(event), allowedEvents(state, actor), "unknown event");
  }
  const dest = DESTINATIONS.get(`${event}@${state}`);
  if (dest === undefined) {
    throw new TransitionNotAllowed(state, event, allowedEvents(state, actor), "no transition from this state");
  }
  if (!firedBy(event).includes(actor)) {
    const actors = [...firedBy(event)].sort().join(", ");
    throw new ActorNotPermitted(
      state,
      event,
      allowedEvents(state, actor),
      `${actor} may not fire it (fired by: ${actors})`,
    );
  }
  return dest;
}
