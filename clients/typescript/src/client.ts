/**
 * The browser client of one server-created session: {@link SessionClient}.
 *
 * A port of clients/python/src/sessionflow/client/session.py. Every move goes through the generated client
 * machine, so the client can only do what lifecycle/client.py (and its diagram) says. The server creates
 * the session at login; the client connects only once the session is active, keeps the access token fresh
 * (shared with the app's other tabs), answers heartbeats, resumes with `last_seq`, and on every close does
 * what the shared close-code table says. Reconnects wait a full-jitter backoff and never give up while the
 * session can still be used; refusals that no retry can fix stop the client, and `stopped` says why.
 * Tokens and tickets never reach an event, a log or storage.
 *
 * @module
 */

import { Backoff } from "./backoff.js";
import type { BackoffOptions } from "./backoff.js";
import { ConnectionLoop } from "./connection.js";
import { TransportError } from "./core.js";
import type { CredentialsMode } from "./core.js";
import { REFRESH_IN_PLACE, Refused } from "./credentials.js";
import { browserEnvironment, cancellableSleep } from "./environment.js";
import type { Environment } from "./environment.js";
import { SESSION_ACCESS } from "./generated/lifecycle.js";
import type { ClientState } from "./generated/lifecycle.js";
import { allowedEvents } from "./machine.js";
import { ClientError, stoppedRecord } from "./records.js";
import type { ClientEvents, Stopped } from "./records.js";
import type { Listener } from "./emitter.js";
import { connectTabs } from "./tabs.js";
import type { LogoutMessage, Received } from "./tabs.js";

/** What each session state allows its holder: usable, login_pending, refreshable, ended, revoked. */
export type SessionAccess = (typeof SESSION_ACCESS)[keyof typeof SESSION_ACCESS];

/** How to log in: a username and password, or an ID token from the configured identity provider. */
export type LoginCredentials = { username: string; password: string } | { idToken: string };

/** Options of {@link SessionClient}. */
export interface ClientOptions {
  /** Where the API is (`https://api.example.com`); default: the page's own origin. */
  baseUrl?: string;
  /** The WebSocket URL; default: `baseUrl` with ws(s) and `/api/ws`. */
  wsUrl?: string;
  /** `cookie` (browsers, the default): the refresh token in an HttpOnly cookie; `body`: in memory, sent as JSON. */
  credentials?: CredentialsMode;
  /** Connect right after login or resume (default true). */
  autoConnect?: boolean;
  /** Refresh at this fraction of the access token's life (default 0.8). */
  refreshAt?: number;
  /** Milliseconds an HTTP call, or a socket before its welcome, may take (default 10 000). */
  timeoutMs?: number;
  /** Ask the first connect for the session's whole history (`last_seq=0`). */
  replayHistory?: boolean;
  /** Share tokens, the refresh lock and logout with the app's other tabs (cookie mode only; default true). */
  shareAcrossTabs?: boolean;
  /** BroadcastChannel name (default `sessionflow`) and Web Lock name (default `sessionflow-refresh`). */
  channelName?: string;
  lockName?: string;
  /** The reconnect backoff, or its options. */
  backoff?: Backoff | BackoffOptions;
  /** Replace parts of the browser environment (tests: fetch, WebSocket, clock, timers, random, locks...). */
  environment?: Partial<Environment>;
}

/** A client for one server-created session. Create a new one to log in again after it stopped. */
export class SessionClient extends ConnectionLoop {
  protected readonly wsUrl: string;
  private readonly autoConnect: boolean;
  private readonly unhook: (() => void)[] = [];

  constructor(options: ClientOptions = {}) {
    const env: Environment = { ...browserEnvironment(), ...options.environment };
    const mode = options.credentials ?? "cookie";
    const baseUrl = options.baseUrl ?? pageOrigin();
    const backoff =
      options.backoff instanceof Backoff ? options.backoff : new Backoff({ random: env.random, now: env.now, ...options.backoff });
    const share = mode === "cookie" && (options.shareAcrossTabs ?? true);
    const tabs = connectTabs(env, { channel: options.channelName ?? "sessionflow", lock: options.lockName ?? "sessionflow-refresh" }, share);
    super(env, baseUrl, mode, options.timeoutMs ?? 10_000, options.refreshAt ?? 0.8, tabs, backoff);
    this.wsUrl = options.wsUrl ?? webSocketUrl(this.baseUrl);
    this.autoConnect = options.autoConnect ?? true;
    this.replayHistory = options.replayHistory ?? false;
    this.unhook.push(
      tabs.subscribe((message) => this.fromTab(message)),
      env.onOnline(() => this.wake("online")),
      env.onVisible(() => this.wake("visible")),
    );
  }

  // -- what the application reads ----------------------------------------------------

  /** Listen to `state`, `transition`, `error` or `stopped` events; returns the unsubscribe function. */
  on<K extends keyof ClientEvents>(type: K, listener: Listener<ClientEvents[K]>): () => void {
    return this.emitter.on(type, listener);
  }

  /** What the session's current state allows its holder, as last heard (null before login). */
  get sessionAccess(): SessionAccess | null {
    const state = this.sessionState;
    return state !== null && state in SESSION_ACCESS ? SESSION_ACCESS[state as keyof typeof SESSION_ACCESS] : null;
  }

  /** The current access token, for the application's own API calls (it changes on every refresh). */
  get accessToken(): string | null {
    return this.tokens?.access ?? null;
  }

  /** Whether the socket is welcomed and live. */
  get connected(): boolean {
    return this.state === "connected";
  }

  /** Whether every transition up to the last welcome arrived (the replay after a resume is complete). */
  get caughtUp(): boolean {
    return this.announcedSeq !== null && (this.lastSeq ?? 0) >= this.announcedSeq;
  }

  // -- what the application does -----------------------------------------------------

  /** Log in; the server creates the session. Rejects with {@link ClientError} (and stops) if refused. */
  async login(credentials: LoginCredentials, upgrade?: { sessionId: string; anonymousToken: string }): Promise<void> {
    this.fire("login", "client", { reason: "idToken" in credentials ? "id token" : "password" });
    const body: Record<string, unknown> =
      "idToken" in credentials ? { id_token: credentials.idToken } : { username: credentials.username, password: credentials.password };
    if (upgrade !== undefined) Object.assign(body, { session_id: upgrade.sessionId, anonymous_token: upgrade.anonymousToken });
    if (this.mode === "cookie") body["refresh_cookie"] = true;
    let answer;
    try {
      answer = await this.http("POST", "/api/auth/login", { body });
    } catch (error) {
      if (!(error instanceof TransportError)) throw error;
      throw new ClientError("login failed", this.stopIfLoggingIn(`login failed: ${error.message}`));
    }
    if (this.state !== "logging_in") throw new ClientError("stopped while logging in", this.stopped);
    if (answer.status !== 200 || answer.body === null) {
      const stopped = this.end("login refused", { answer });
      throw new ClientError(`login refused: ${answer.problem ?? answer.status}`, stopped);
    }
    this.takeTokens(answer.body);
    this.fire("logged_in", "server");
    if (this.autoConnect) this.startConnecting();
  }

  /**
   * Pick the session up again after a page load: refresh first to get an access token (cookie mode: the
   * cookie carries the refresh token; body mode: pass it). Rejects (and stops) if there is no session to resume.
   */
  async resume(refreshToken?: string): Promise<void> {
    this.fire("login", "client", { reason: this.mode === "cookie" ? "resume with the refresh cookie" : "resume with a refresh token" });
    if (this.mode === "body") {
      if (refreshToken === undefined) throw new ClientError("resume needs the refresh token in body mode", this.stopIfLoggingIn("no refresh token"));
      this.tokens = { access: "", refresh: refreshToken, lifetime: 0, expiresAt: 0, refreshDue: Infinity };
    }
    try {
      const rotation = await this.tabs.withRefreshLock(() => this.rotateLocked());
      if (rotation !== "rotated") throw new ClientError("resume failed for now", this.stopIfLoggingIn("resume failed for now: the server is busy"));
    } catch (error) {
      if (error instanceof Refused) throw new ClientError(error.stopped.reason, this.stopIfLoggingIn(error.stopped));
      if (error instanceof TransportError) throw new ClientError("resume failed", this.stopIfLoggingIn(`resume failed: ${error.message}`));
      throw error;
    }
    if (this.state !== "logging_in") throw new ClientError("stopped while resuming", this.stopped);
    this.fire("logged_in", "server", { reason: "resumed" });
    if (this.autoConnect) this.startConnecting();
  }

  /** Start the live channel and resolve once welcomed; rejects if the client stops first. */
  async connect(): Promise<void> {
    this.startConnecting();
    await this.waitFor("connected");
  }

  /** Rotate the tokens now (and reauthenticate an open connection). */
  async refresh(): Promise<void> {
    if (!REFRESH_IN_PLACE.includes(this.state)) {
      throw new ClientError(`cannot refresh while ${this.state}`, this.stopped);
    }
    const fresh = await this.refreshInPlace();
    if (this.stopped !== null) throw new ClientError("refresh refused", this.stopped);
    if (!fresh) throw new ClientError("refresh failed for now (server unreachable or busy); the client will try again");
  }

  /** Log out: the server closes the session and its connections; this tab and the others stop. */
  async logout(): Promise<Stopped> {
    this.fire("logout", "client");
    const sessionId = this.sessionId ?? "";
    this.tabs.post({ kind: "logout", sessionId, phase: "start", reason: "logging out" });
    let reason = "logged out";
    let status: number | null = null;
    let problem: string | null = null;
    try {
      const answer = await this.logoutRequest();
      status = answer.status;
      if (status !== 200) {
        problem = answer.problem;
        reason = `logout refused (${problem ?? status})`;
      }
    } catch (error) {
      if (error instanceof Refused) ({ reason, status, problem } = error.stopped);
      else if (error instanceof TransportError) reason = `logout not confirmed: ${error.message}`;
      else throw error;
    }
    this.tabs.post({ kind: "logout", sessionId, phase: "done", reason });
    if (this.socket !== null && this.conversation !== null) {
      // The server sends the logout transition and closes with 4410: wait for it, not for ever.
      const patience = cancellableSleep(this.env, this.timeoutMs);
      await Promise.race([this.conversation, patience.promise]);
      patience.cancel();
    }
    if (this.state === "logging_out") {
      this.finish("end", "server", stoppedRecord("end", reason, { closeCode: this.lastClose, status, problem, logInAgain: true }), this.lastClose);
    }
    return this.stopped ?? stoppedRecord("end", reason);
  }

  /** Stop the client; the session stays as it is (another tab, or a later page, can go on with it). */
  stop(): Stopped {
    if (this.state !== "stopped") this.finish("stop", "client", stoppedRecord("stop", "stopped by the application"));
    return this.stopped ?? stoppedRecord("stop", "stopped by the application");
  }

  /** Resolve once the client is in one of `states`; reject with {@link ClientError} if it stops first. */
  async waitFor(...states: ClientState[]): Promise<ClientState> {
    while (!states.includes(this.state)) {
      if (this.state === "stopped") throw new ClientError(`client stopped: ${this.stopped?.reason ?? ""}`, this.stopped);
      await this.nextMove();
    }
    return this.state;
  }

  // -- inside ------------------------------------------------------------------------

  /** Fire `connect` unless the loop already runs (reconnecting, say); the machine refuses it before login. */
  private startConnecting(): void {
    if (this.state === "active" || !this.loopRunning()) this.fire("connect", "client");
    this.startLoop();
  }

  /** Stop with `why` if still logging in (a refused or failed login or resume), and return why it stopped. */
  private stopIfLoggingIn(why: string | Stopped): Stopped | null {
    if (this.state !== "logging_in") return this.stopped;
    const stopped = typeof why === "string" ? stoppedRecord("end", why) : why;
    return this.finish("end", "server", stopped);
  }

  private fromTab(message: Received): void {
    if (message.kind === "tokens") this.adoptTokens(message);
    else if (message.kind === "logout") this.peerLogout(message);
  }

  /** Another tab logs out: follow it into `logging_out`, and stop when it is done (or its tab went away). */
  private peerLogout(message: LogoutMessage): void {
    if (message.sessionId !== this.sessionId || this.state === "stopped") return;
    if (message.phase === "start" && allowedEvents(this.state, "client").includes("logout")) {
      this.fire("logout", "client", { reason: "logging out in another tab" });
      // If that tab goes away before it is done, do not wait in logging_out for ever.
      const patience = cancellableSleep(this.env, 2 * this.timeoutMs);
      this.unhook.push(patience.cancel);
      void patience.promise.then(() => {
        if (this.state === "logging_out") this.peerLoggedOut("logged out in another tab (not confirmed)");
      });
    } else if (message.phase === "done") {
      this.peerLoggedOut(message.reason);
    }
  }

  private peerLoggedOut(reason: string): void {
    if (allowedEvents(this.state, "server").includes("end")) {
      this.finish("end", "server", stoppedRecord("end", reason, { closeCode: this.lastClose, logInAgain: true }), this.lastClose);
    }
  }

  protected released(): void {
    this.cancelRefresh();
    this.closeSocket(1000, "client stopped");
    for (const unhook of this.unhook.splice(0)) unhook();
    this.tabs.close();
  }
}

function pageOrigin(): string {
  const location = (globalThis as { location?: { origin?: string } }).location;
  return location?.origin ?? "";
}

/** `http(s)://host/base` -> `ws(s)://host/base/api/ws`. */
export function webSocketUrl(baseUrl: string): string {
  if (baseUrl === "") throw new TypeError("baseUrl is required outside a page (there is no origin to default to)");
  const url = new URL(baseUrl);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/api/ws`;
  url.search = "";
  url.hash = "";
  return url.toString();
}
