/**
 * What every layer of the client shares: the client machine it steps, the events it emits, and its HTTP calls.
 *
 * The client is one object built in layers, each in its own module and each resting on the one before,
 * like the Python reference client: this core, then token keeping (credentials.ts), then the connection
 * loop (connection.ts), then the public {@link SessionClient} (client.ts). Every move goes through
 * {@link step} here ({@link Core.fire}); nothing else assigns the state.
 *
 * @module
 */

import { Backoff } from "./backoff.js";
import type { Delay } from "./backoff.js";
import { Emitter } from "./emitter.js";
import type { Environment, TimerHandle, WebSocketLike } from "./environment.js";
import type { ClientEvent, ClientState } from "./generated/lifecycle.js";
import { EventRefused, INITIAL_STATE, isTerminal, step, timersArmedIn } from "./machine.js";
import type { Actor } from "./machine.js";
import { closeAction, closeName, closeReason, readAnswer } from "./refusals.js";
import type { Answer } from "./refusals.js";
import { ClientError, stoppedRecord } from "./records.js";
import type { ClientErrorEvent, ClientEvents, Stopped } from "./records.js";

/** How the refresh token travels: in an HttpOnly cookie (browsers) or in JSON bodies (everything else). */
export type CredentialsMode = "cookie" | "body";

/** The header every cookie-authenticated request carries (docs/tokens.md). */
export const CSRF_HEADER = "X-Sessionflow-CSRF";

/** `WebSocket.OPEN`. */
export const OPEN = 1;

/** The server could not be reached, or did not answer in time (no HTTP status). */
export class TransportError extends Error {
  constructor(message: string, override readonly cause?: unknown) {
    super(message);
    this.name = "TransportError";
  }
}

/** Options of {@link Core.fire}. */
export interface FireOptions {
  code?: number | null;
  reason?: string;
  delay?: Delay | null;
}

/** The machine, who hears of its moves, and the HTTP channel to the server. */
export abstract class Core {
  /** The client machine's state. Only {@link fire} changes it. */
  state: ClientState = INITIAL_STATE;
  /** Why the client stopped, once it has. */
  stopped: Stopped | null = null;
  /** The session this client holds, once logged in. */
  sessionId: string | null = null;
  /** The server's state of the session, as last heard. */
  sessionState: string | null = null;
  /** The backoff of reconnects. */
  readonly backoff: Backoff;

  protected readonly env: Environment;
  protected readonly emitter = new Emitter<ClientEvents>();
  protected readonly baseUrl: string;
  protected readonly mode: CredentialsMode;
  /** Milliseconds an HTTP call, or a WebSocket before its welcome, may take. */
  protected readonly timeoutMs: number;
  /** Due times (clock ms) of the machine's timers that are armed now, by timer name. */
  protected timerDue = new Map<string, number>();
  /** The open (or opening) WebSocket, while there is one. */
  protected socket: WebSocketLike | null = null;
  private readonly moveWaiters = new Set<() => void>();

  protected constructor(env: Environment, baseUrl: string, mode: CredentialsMode, timeoutMs: number, backoff?: Backoff) {
    this.env = env;
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.mode = mode;
    this.timeoutMs = timeoutMs;
    this.backoff = backoff ?? new Backoff({ random: env.random, now: env.now });
  }

  // -- the machine -------------------------------------------------------------------

  /**
   * Step the client machine and tell the listeners; a refusal throws {@link ClientError} (its `cause` is the
   * machine's {@link EventRefused}). Timers the destination arms are set here (on entry, for the delay given,
   * else their default), so waits are the machine's timers, not the caller's.
   */
  protected fire(event: ClientEvent, actor: Actor, options: FireOptions = {}): void {
    const from = this.state;
    let to: ClientState;
    try {
      to = step(from, event, actor);
    } catch (refused) {
      if (refused instanceof EventRefused) throw new ClientError(refused.message, this.stopped, refused);
      throw refused;
    }
    const now = this.env.now();
    const armed = timersArmedIn(to);
    const due = new Map<string, number>();
    for (const timer of armed) {
      const entering = !(timer.armedIn as readonly ClientState[]).includes(from);
      const kept = this.timerDue.get(timer.name);
      const seconds = options.delay?.seconds ?? timer.defaultSeconds;
      due.set(timer.name, entering || kept === undefined ? now + seconds * 1000 : kept);
    }
    this.timerDue = due;
    this.state = to;
    this.emitter.emit("state", {
      event,
      from,
      to,
      actor,
      at: now,
      closeCode: options.code ?? null,
      reason: options.reason ?? "",
      delay: options.delay ?? null,
    });
    for (const wake of [...this.moveWaiters]) wake();
    if (isTerminal(to)) {
      this.stopped ??= stoppedRecord(event === "stop" ? "stop" : "end", options.reason ?? "");
      this.released();
      this.emitter.emit("stopped", this.stopped);
    }
  }

  /** Whether the client stopped (a method, so that checks after an `await` are not narrowed away). */
  protected isStopped(): boolean {
    return this.state === "stopped";
  }

  /** Stop with `stopped` as the reason (through `event`, `end` or `stop`). */
  protected finish(event: "end" | "stop", actor: Actor, stopped: Stopped, code: number | null = null): Stopped {
    this.stopped = stopped;
    this.fire(event, actor, { code, reason: stopped.reason });
    return stopped;
  }

  /** Stop because the server refused for good (`end`): a refused HTTP call, or a terminal close code. */
  protected end(reason: string, details: { answer?: Answer; code?: number } = {}): Stopped {
    const { answer, code } = details;
    if (code !== undefined) {
      const { action } = closeAction(code);
      const stopped = stoppedRecord("end", closeReason(code), {
        closeCode: code,
        action,
        logInAgain: action === "log_in",
      });
      this.report({ code: closeName(code), status: null, closeCode: code, action, message: reason });
      return this.finish("end", "server", stopped, code);
    }
    const problem = answer?.problem ?? null;
    const status = answer?.status ?? null;
    const gone = problem === "session_closed" || problem === "session_revoked";
    const detail = status !== null ? `${reason} (${problem ?? status})` : reason;
    const stopped = stoppedRecord("end", gone ? `${detail}: log in again` : detail, {
      status,
      problem,
      logInAgain: gone || status === 401,
    });
    if (answer !== undefined) {
      this.report({ code: problem ?? `http_${status}`, status, closeCode: null, action: "stopped", message: reason });
    }
    return this.finish("end", "server", stopped);
  }

  /** Tell the application about something that went wrong (never with a credential in it). */
  protected report(error: ClientErrorEvent): void {
    this.emitter.emit("error", error);
  }

  /** Resolve on the next move of the machine. */
  protected nextMove(): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        this.moveWaiters.delete(wake);
        resolve();
      };
      this.moveWaiters.add(wake);
    });
  }

  /** Called once when the machine reaches its terminal state: release timers, sockets, tabs. */
  protected abstract released(): void;

  // -- the channels ------------------------------------------------------------------

  /** Send a message on the open socket; a socket that is closing drops it (its close is acted on instead). */
  protected send(message: Readonly<Record<string, unknown>>): void {
    const socket = this.socket;
    if (socket === null || socket.readyState !== OPEN) return;
    try {
      socket.send(JSON.stringify(message));
    } catch {
      // closing under our feet: the close event says what to do next
    }
  }

  // -- HTTP --------------------------------------------------------------------------

  /**
   * One call to the API. `{id}` in `path` becomes the session id. In cookie mode every call carries the
   * CSRF header and `credentials: "include"`, so the refresh cookie travels (it is scoped to /api/auth).
   * Throws {@link TransportError} when the server cannot be reached in time.
   */
  protected async http(
    method: "GET" | "POST",
    path: string,
    options: { token?: string | null; body?: unknown } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (options.token != null) headers["Authorization"] = `Bearer ${options.token}`;
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    if (this.mode === "cookie") headers[CSRF_HEADER] = "1";
    const url = this.baseUrl + path.replace("{id}", encodeURIComponent(this.sessionId ?? ""));
    const abort = new AbortController();
    const timer: TimerHandle = this.env.setTimeout(() => abort.abort(), this.timeoutMs);
    try {
      const response = await this.env.fetch(url, {
        method,
        headers,
        body: options.body !== undefined ? JSON.stringify(options.body) : null,
        credentials: this.mode === "cookie" ? "include" : "same-origin",
        signal: abort.signal,
      });
      return await readAnswer(response);
    } catch (error) {
      const what = abort.signal.aborted ? "timed out" : "unreachable";
      throw new TransportError(`server ${what}`, error);
    } finally {
      this.env.clearTimeout(timer);
    }
  }
}
