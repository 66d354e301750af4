/**
 * Token keeping: the access token stays fresh, one refresh runs at a time across every tab, and a refresh
 * token is never presented twice.
 *
 * A port of clients/python/src/sessionflow/client/credentials.py. Tokens are refreshed at `refreshAt` of
 * their life whatever else is going on, after an expiry the server reported, and on `token_expiring`
 * (followed by `reauth` on the open connection). The refresh runs under the tabs' refresh lock and only if
 * no fresher tokens arrived since the caller looked ({@link TokenKeeping.rotate}): a tab that waited for the
 * lock while another refreshed takes the tokens the other one shared, and does not refresh again.
 *
 * The access token lives in this object only (page memory), never in storage.
 *
 * @module
 */

import { Core, TransportError } from "./core.js";
import type { CredentialsMode } from "./core.js";
import type { Backoff } from "./backoff.js";
import { sleep } from "./environment.js";
import type { Environment, TimerHandle } from "./environment.js";
import type { ClientState } from "./generated/lifecycle.js";
import { GONE_PROBLEMS } from "./refusals.js";
import { stoppedRecord } from "./records.js";
import type { Stopped } from "./records.js";
import { allowedEvents, statesKeptBy } from "./machine.js";
import type { Tabs, TokensMessage } from "./tabs.js";

/** The tokens held now. Never emitted, logged or stored. */
export interface Tokens {
  readonly access: string;
  /** Body mode only; null in cookie mode, where the browser keeps it in an HttpOnly cookie. */
  readonly refresh: string | null;
  /** Seconds: the access token's whole life. */
  readonly lifetime: number;
  /** Clock reading (ms) when the access token expires. */
  readonly expiresAt: number;
  /** Clock reading (ms) when to refresh it. */
  refreshDue: number;
}

/** What a refresh came to: done here, done by someone else meanwhile, or not now (server busy or failing). */
export type Rotation = "rotated" | "already" | "failed";

/** An HTTP refusal no retry fixes; the client stops with it. */
export class Refused extends Error {
  constructor(readonly stopped: Stopped) {
    super(stopped.reason);
    this.name = "Refused";
  }
}

/** How long (ms) the tab that refreshed keeps the lock after sharing the tokens, so they reach the others first. */
export const SETTLE_MS = 50;

/** States in which a refresh leaves the machine where it is (`refreshed` stays): active, connected, reconnecting. */
export const REFRESH_IN_PLACE: readonly ClientState[] = statesKeptBy("refreshed");

/** The client's tokens, rotated one at a time and kept fresh while the client runs. */
export abstract class TokenKeeping extends Core {
  protected tokens: Tokens | null = null;
  /** Counts token changes (our refreshes and the other tabs'): a refresh goes ahead only if it has not moved. */
  protected generation = 0;
  /** The token generation the server holds for this tab's socket: its ticket's, or the last reauth it confirmed. */
  protected credentialGeneration: number | null = null;
  /** The generation of the last `reauth` sent, which the server's `reauthenticated` confirms. */
  protected reauthGeneration: number | null = null;
  protected readonly tabs: Tabs;
  private readonly refreshAt: number;
  private refreshTimer: TimerHandle | null = null;

  protected constructor(
    env: Environment,
    baseUrl: string,
    mode: CredentialsMode,
    timeoutMs: number,
    refreshAt: number,
    tabs: Tabs,
    backoff?: Backoff,
  ) {
    super(env, baseUrl, mode, timeoutMs, backoff);
    if (!(refreshAt > 0 && refreshAt < 1)) throw new RangeError("refreshAt is a fraction of the token's life, in (0, 1)");
    this.refreshAt = refreshAt;
    this.tabs = tabs;
  }

  /** Problem codes of a refused call that a refresh cures. */
  protected refreshable(problem: string | null): boolean {
    if (problem === "token_expired" || problem === "session_expired") return true;
    // Cookie mode: another tab rotated the tokens and its message is on the way. Refreshing (under the lock,
    // after the generation check) takes its tokens, or presents the cookie, which the browser keeps current.
    return this.mode === "cookie" && problem === "token_superseded";
  }

  /** Take a login or refresh answer; tell the other tabs. */
  protected takeTokens(body: Readonly<Record<string, unknown>>): void {
    const lifetime = Number(body["expires_in"]);
    const expiresAt = this.env.now() + lifetime * 1000;
    const refresh = typeof body["refresh_token"] === "string" ? body["refresh_token"] : null;
    this.sessionId = String(body["session_id"]);
    if (typeof body["state"] === "string") this.sessionState = body["state"];
    this.setTokens(String(body["access_token"]), refresh, lifetime, expiresAt);
    const message: TokensMessage = {
      kind: "tokens",
      sessionId: this.sessionId,
      accessToken: String(body["access_token"]),
      lifetime,
      expiresAt,
    };
    this.tabs.post(message);
  }

  /** Take the tokens another tab got, if they are for our session and fresher than ours. */
  protected adoptTokens(message: TokensMessage): void {
    // The session is held where the application may log out of it (the machine's `logout` sources).
    const held = allowedEvents(this.state, "client").includes("logout");
    if (message.sessionId !== this.sessionId || !held) return;
    if (this.tokens !== null && message.expiresAt <= this.tokens.expiresAt) return;
    this.setTokens(message.accessToken, null, message.lifetime, message.expiresAt);
    if (REFRESH_IN_PLACE.includes(this.state)) this.fire("refreshed", "server", { reason: "rotated by another tab" });
    // The open socket's credential is the token it was opened or last reauthenticated with: hand it this
    // one, or the server closes it with 4419 when the old one expires, and this tab refreshes again.
    this.reauth();
  }

  private setTokens(access: string, refresh: string | null, lifetime: number, expiresAt: number): void {
    const refreshDue = expiresAt - (1 - this.refreshAt) * lifetime * 1000;
    this.tokens = { access, refresh, lifetime, expiresAt, refreshDue };
    this.generation += 1;
    this.scheduleRefresh();
  }

  /**
   * Refresh unless the tokens changed since generation `seen` (ours or another tab's refresh).
   * One refresh at a time across tabs. Throws {@link Refused} when no retry can help and
   * {@link TransportError} when the server is unreachable.
   */
  protected rotate(seen: number): Promise<Rotation> {
    return this.tabs.withRefreshLock(async () => {
      if (this.generation !== seen || this.state === "stopped") return "already";
      const rotation = await this.rotateLocked();
      if (rotation === "rotated" && this.tabs.lockKind !== "local") await sleep(this.env, SETTLE_MS);
      return rotation;
    });
  }

  /** `POST /api/auth/refresh`: no body in cookie mode (the cookie carries the token), else `{refresh_token}`. */
  protected async rotateLocked(): Promise<Rotation> {
    let body: { refresh_token: string } | undefined;
    if (this.mode === "body") {
      const refresh = this.tokens?.refresh;
      if (refresh == null) throw new Refused(stoppedRecord("end", "no refresh token held: log in again", { logInAgain: true }));
      body = { refresh_token: refresh };
    }
    const answer = await this.http("POST", "/api/auth/refresh", body === undefined ? {} : { body });
    if (answer.status === 200 && answer.body !== null) {
      this.takeTokens(answer.body);
      return "rotated";
    }
    const { status, problem } = answer;
    if (status === 429 || status >= 500) {
      this.report({ code: problem ?? `http_${status}`, status, closeCode: null, action: "retry later", message: "refresh failed for now" });
      return "failed";
    }
    const gone = problem !== null && GONE_PROBLEMS.has(problem);
    const reason = `refresh refused (${problem ?? status})${gone || status === 401 ? ": log in again" : ""}`;
    this.report({ code: problem ?? `http_${status}`, status, closeCode: null, action: "stopped", message: reason });
    throw new Refused(stoppedRecord("end", reason, { status, problem, logInAgain: status === 401 || gone }));
  }

  /**
   * In `refreshing` (after 4419 or an expired token): refresh, then on to `reconnecting`. When the tokens
   * changed since the expired credential was handed over (another tab's, taken meanwhile), they are what a
   * refresh would give: reconnect with them instead.
   */
  protected async refreshAfterExpiry(): Promise<void> {
    let rotation: Rotation;
    let reason = "";
    try {
      const newer = this.credentialGeneration !== null && this.generation !== this.credentialGeneration;
      rotation = newer ? "already" : await this.rotate(this.generation);
      if (rotation === "failed") reason = "refresh failed for now";
    } catch (error) {
      if (error instanceof Refused) {
        if (this.state === "refreshing") this.finish("end", "server", error.stopped);
        return;
      }
      if (!(error instanceof TransportError)) throw error;
      rotation = "failed";
      reason = `refresh failed: ${error.message}`;
    }
    if (this.state === "refreshing") {
      this.fire(rotation === "failed" ? "drop" : "refreshed", "server", { reason, delay: this.backoff.next() });
    }
  }

  /** Refresh without leaving the state (active, connected, reconnecting), then reauth an open connection. */
  protected async refreshInPlace(): Promise<boolean> {
    if (this.tokens === null) return false;
    let rotation: Rotation;
    try {
      rotation = await this.rotate(this.generation);
    } catch (error) {
      if (error instanceof Refused) {
        if (this.state !== "stopped" && this.state !== "logging_out") {
          this.finish("end", "server", error.stopped);
        }
        return false;
      }
      if (error instanceof TransportError) return false;
      throw error;
    }
    if (rotation === "failed") return false;
    if (rotation === "rotated" && REFRESH_IN_PLACE.includes(this.state)) this.fire("refreshed", "server");
    this.reauth();
    return true;
  }

  /** Hand the open connection the current access token (`reauth`). */
  protected reauth(): void {
    if (this.state === "connected" && this.tokens !== null) {
      this.send({ type: "reauth", access_token: this.tokens.access });
      this.reauthGeneration = this.generation;
    }
  }

  /**
   * `token_expiring`: reauth with a token that outlives the connection's credential, refreshing first if
   * needed. A warning about a credential as fresh as a new token would be needs nothing.
   */
  protected expiring(expiresIn: number): void {
    const tokens = this.tokens;
    if (tokens === null) return;
    if (expiresIn >= tokens.lifetime - 1) {
      this.fire("token_expiring", "server", { reason: "nothing to do: the credential is as fresh as a new token" });
      return;
    }
    const fresher = tokens.expiresAt > this.env.now() + (expiresIn + 1) * 1000;
    this.fire("token_expiring", "server", { reason: fresher ? "reauth" : "refresh, then reauth" });
    if (fresher) this.reauth();
    else void this.refreshInPlace();
  }

  /** Arm the refresh at `refreshAt` of the token's life (replacing the one armed before). */
  protected scheduleRefresh(): void {
    if (this.refreshTimer !== null) this.env.clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (this.tokens === null || this.state === "stopped") return;
    const wait = Math.max(0, this.tokens.refreshDue - this.env.now());
    this.refreshTimer = this.env.setTimeout(() => void this.onRefreshDue(), wait);
  }

  /** The refresh came due: refresh where the machine allows it; elsewhere (or failing) look again shortly. */
  protected async onRefreshDue(): Promise<void> {
    this.refreshTimer = null;
    const tokens = this.tokens;
    if (tokens === null || this.state === "stopped") return;
    if (tokens.refreshDue > this.env.now()) {
      this.scheduleRefresh();
      return;
    }
    if (REFRESH_IN_PLACE.includes(this.state) && (await this.refreshInPlace())) return;
    if (this.tokens !== tokens || this.isStopped()) return; // taken meanwhile: already rescheduled
    const left = (tokens.expiresAt - this.env.now()) / 4;
    tokens.refreshDue = this.env.now() + Math.min(5000, Math.max(500, left));
    this.scheduleRefresh();
  }

  /** Stop the refresh timer (the client stopped). */
  protected cancelRefresh(): void {
    if (this.refreshTimer !== null) this.env.clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
  }

  /** `POST /api/auth/logout` with the access token, after any refresh in flight; refreshed once if it expired. */
  protected logoutRequest(): Promise<{ status: number; problem: string | null }> {
    return this.tabs.withRefreshLock(async () => {
      const first = await this.http("POST", "/api/auth/logout", { token: this.tokens?.access ?? null });
      if (first.status === 401 && this.refreshable(first.problem) && (await this.rotateLocked()) === "rotated") {
        return this.http("POST", "/api/auth/logout", { token: this.tokens?.access ?? null });
      }
      return first;
    });
  }
}
