/**
 * `@sessionflow/client`: the browser client of sessionflow.
 *
 * ```ts
 * import { SessionClient } from "@sessionflow/client";
 * const client = new SessionClient({ baseUrl: "https://api.example.com" });
 * client.on("transition", (t) => console.log(t.seq, t.from_state, "->", t.to_state));
 * client.on("stopped", (why) => console.log(why.reason));
 * await client.login({ username: "alice", password });
 * ```
 *
 * @module
 */

export { SessionClient, webSocketUrl } from "./client.js";
export type { ClientOptions, LoginCredentials, SessionAccess } from "./client.js";
export { Backoff } from "./backoff.js";
export type { BackoffOptions, Delay } from "./backoff.js";
export { CSRF_HEADER, TransportError } from "./core.js";
export type { CredentialsMode } from "./core.js";
export { Emitter } from "./emitter.js";
export type { Listener } from "./emitter.js";
export { browserEnvironment } from "./environment.js";
export type {
  BroadcastChannelFactory,
  BroadcastChannelLike,
  Environment,
  Hook,
  LockManagerLike,
  TimerHandle,
  WebSocketFactory,
  WebSocketLike,
} from "./environment.js";
export {
  ActorNotPermitted,
  CLIENT_EVENTS,
  CLIENT_STATES,
  EventRefused,
  INITIAL_STATE,
  TransitionNotAllowed,
  UnknownName,
  allowedEvents,
  isTerminal,
  statesKeptBy,
  step,
  timersArmedIn,
} from "./machine.js";
export type { Actor, ClientEvent, ClientState, MachineTimer } from "./machine.js";
export { ClientError } from "./records.js";
export type { ClientErrorEvent, ClientEvents, SessionTransition, StateChange, Stopped } from "./records.js";
export { ADVICE, EVENT_FOR_ACTION, closeAction, closeName, closeReason } from "./refusals.js";
export type { CloseAction, CloseCodeRow } from "./refusals.js";
export { CLIENT_MACHINE, CLOSE_CODES, SESSION_ACCESS } from "./generated/lifecycle.js";
