/**
 * What the application sees of the client: its moves, the session's transitions, errors, and why it stopped.
 *
 * Plain values, built by the client and handed out; none of them carries a token, a ticket or a
 * credential. A port of clients/python/src/sessionflow/client/records.py and errors.py.
 *
 * @module
 */

import type { Delay } from "./backoff.js";
import type { ClientEvent, ClientState } from "./generated/lifecycle.js";
import type { Actor } from "./machine.js";
import type { CloseAction } from "./refusals.js";

/** The client machine moved: `from --event--> to`, with the close code and the wait behind it (`state` event). */
export interface StateChange {
  readonly event: ClientEvent;
  readonly from: ClientState;
  readonly to: ClientState;
  readonly actor: Actor;
  /** Clock reading (ms since the epoch with the default clock). */
  readonly at: number;
  readonly closeCode: number | null;
  readonly reason: string;
  /** The backoff wait that begins with this move (into `reconnecting`). */
  readonly delay: Delay | null;
}

/** The server's session machine moved (a `transition` message; `replayed` after a resume). */
export interface SessionTransition {
  readonly seq: number;
  readonly event: string;
  readonly from_state: string;
  readonly to_state: string;
  readonly actor: string;
  /** ISO 8601, UTC. */
  readonly at: string;
  readonly replayed: boolean;
}

/** Something went wrong (`error` event): a refused HTTP call, an `error` message, a close the client acts on. */
export interface ClientErrorEvent {
  /** The stable problem code (`token_expired`, `rate_limited`, ...), the `error` message's code, or the close name. */
  readonly code: string;
  /** HTTP status, when an HTTP call was refused. */
  readonly status: number | null;
  /** WebSocket close code, when a close caused it. */
  readonly closeCode: number | null;
  /** What the client does, or what the application should do, about it. */
  readonly action: string;
  readonly message: string;
}

/** Why the client stopped (`stopped` event): `end` (the server's doing) or `stop` (the application's). */
export interface Stopped {
  readonly event: "end" | "stop";
  /** For a person: "logged out", "session revoked: log in again", ... */
  readonly reason: string;
  readonly closeCode: number | null;
  /** HTTP status of the refusal. */
  readonly status: number | null;
  /** Its problem-details code. */
  readonly problem: string | null;
  /** The close-code action behind it (`log_in`, `stop`, `finish_login`), when a close stopped the client. */
  readonly action: CloseAction | null;
  /** Whether the session is gone for good and the user must log in again for a new one. */
  readonly logInAgain: boolean;
}

/** The events a client emits, by type. */
export interface ClientEvents {
  state: StateChange;
  transition: SessionTransition;
  error: ClientErrorEvent;
  stopped: Stopped;
}

/** A call the client refuses now (the machine says no), or that failed; `stopped` when the client stopped. */
export class ClientError extends Error {
  constructor(
    message: string,
    readonly stopped: Stopped | null = null,
    /** The machine's refusal behind it, when there is one. */
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = "ClientError";
  }
}

/** Build a {@link Stopped} with defaults for what is not known. */
export function stoppedRecord(
  event: "end" | "stop",
  reason: string,
  details: Partial<Omit<Stopped, "event" | "reason">> = {},
): Stopped {
  return {
    event,
    reason,
    closeCode: details.closeCode ?? null,
    status: details.status ?? null,
    problem: details.problem ?? null,
    action: details.action ?? null,
    logInAgain: details.logInAgain ?? false,
  };
}
