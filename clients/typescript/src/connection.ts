/**
 * The connection loop: get a ticket, open the WebSocket, converse, wait out the backoff, refresh after an
 * expiry, and again, for as long as the machine says so.
 *
 * A port of clients/python/src/sessionflow/client/connection.py. The loop connects only while the machine
 * says `connecting` (a ticket over HTTP, then `new WebSocket(url?ticket=...)`: browsers cannot set headers
 * on a WebSocket), resumes with `last_seq` after the first welcome, answers heartbeats, and on every close
 * moves the machine as the shared close-code table says. Waits are the machine's timers (`backoff`, armed in
 * `reconnecting`), on the injected clock; the page coming back online or into view cuts a wait short.
 *
 * @module
 */

import { TransportError } from "./core.js";
import { TokenKeeping } from "./credentials.js";
import type { TimerHandle, WebSocketLike } from "./environment.js";
import { timersArmedIn } from "./machine.js";
import { answerRetryAfter, closeAction, closeName, closeRetryAfter } from "./refusals.js";
import type { Answer } from "./refusals.js";
import { stoppedRecord } from "./records.js";
import type { SessionTransition } from "./records.js";

type Message = Readonly<Record<string, unknown>>;

/** The live channel to the server, run as one loop while the client machine needs it. */
export abstract class ConnectionLoop extends TokenKeeping {
  /** The last session transition received; a resume asks for what follows. */
  lastSeq: number | null = null;
  /** The session's seq when the server last said welcome. */
  announcedSeq: number | null = null;
  protected welcomed = false;
  /** The close code of the last connection, once it closed. */
  protected lastClose: number | null = null;
  /** Resolves when the current socket is done with (closed, or given up on). */
  protected conversation: Promise<void> | null = null;
  /** Whether the first connect asks for the session's whole history (`last_seq=0`). */
  protected replayHistory = false;
  protected abstract readonly wsUrl: string;
  private running: Promise<void> | null = null;
  private interruptWait: ((why: string) => void) | null = null;
  /** A wake that came while a wait was due but not yet begun (the loop had not got to it). */
  private pendingWake: string | null = null;
  private hangUp: ((code: number, reason: string) => void) | null = null;

  /** Run the loop unless it runs already. */
  protected startLoop(): void {
    if (this.running !== null) return;
    this.running = this.run().finally(() => {
      this.running = null;
    });
  }

  /** Whether the connection loop runs now. */
  protected loopRunning(): boolean {
    return this.running !== null;
  }

  /** The page is back (online, or visible): a backoff wait ends now; overdue tokens are refreshed. */
  protected wake(why: string): void {
    if (this.interruptWait !== null) this.interruptWait(why);
    else if (timersArmedIn(this.state).length > 0) this.pendingWake = why;
    if (this.tokens !== null && this.tokens.refreshDue <= this.env.now()) void this.onRefreshDue();
  }

  /** Close the socket now (the client stopped, or logged out and the server did not close it). */
  protected closeSocket(code: number, reason: string): void {
    this.hangUp?.(code, reason);
  }

  private async run(): Promise<void> {
    try {
      await this.drive();
    } catch (error) {
      // A bug, or a server breaking the protocol: stop and say so rather than hang.
      if (this.state !== "stopped") {
        const reason = `client error: ${error instanceof Error ? error.message : String(error)}`;
        this.finish("stop", "client", stoppedRecord("stop", reason));
      }
    }
  }

  private async drive(): Promise<void> {
    for (;;) {
      if (this.state === "connecting") await this.connectOnce();
      else if (this.state === "refreshing") await this.refreshAfterExpiry();
      else if (timersArmedIn(this.state).length > 0) await this.waitForTimer();
      else return;
    }
  }

  /** Wait for the earliest timer armed in this state and fire its event (the `backoff` timer fires `retry`). */
  private async waitForTimer(): Promise<void> {
    const state = this.state;
    const timer = timersArmedIn(state)
      .map((armed) => ({ armed, due: this.timerDue.get(armed.name) ?? this.env.now() }))
      .sort((a, b) => a.due - b.due)[0];
    if (timer === undefined) return;
    let handle: TimerHandle = null;
    const pending = this.pendingWake;
    this.pendingWake = null;
    const why = pending ?? await Promise.race([
      new Promise<string>((resolve) => {
        handle = this.env.setTimeout(() => resolve("due"), Math.max(0, timer.due - this.env.now()));
        this.interruptWait = resolve;
      }),
      this.nextMove().then(() => "moved"),
    ]);
    this.env.clearTimeout(handle);
    this.interruptWait = null;
    if (why === "moved" || this.state !== state) return; // the loop looks again
    const reason = why === "due" ? "" : `${why}: not waiting out the ${timer.armed.name}`;
    this.fire(timer.armed.event, "timer", { reason });
  }

  private async connectOnce(): Promise<void> {
    const tokens = this.tokens;
    if (tokens === null || this.sessionId === null) throw new Error("connecting without a session");
    this.lastClose = null;
    this.pendingWake = null; // this attempt is what it asked for
    let answer: Answer;
    this.credentialGeneration = this.generation; // the ticket stands for this token
    try {
      answer = await this.http("POST", "/api/session/{id}/ws-ticket", { token: tokens.access });
    } catch (error) {
      if (!(error instanceof TransportError)) throw error;
      if (this.state === "connecting") {
        this.fire("drop", "server", { reason: `no ticket: ${error.message}`, delay: this.backoff.next() });
      }
      return;
    }
    if (this.state !== "connecting") return;
    const ticket = answer.body?.["ticket"];
    if (answer.status !== 201 || typeof ticket !== "string") {
      this.httpRefusal(answer, "no ticket");
      return;
    }
    const query = new URLSearchParams({ ticket });
    const resume = this.welcomed ? this.lastSeq : this.replayHistory ? 0 : null;
    if (resume !== null) {
      query.set("last_seq", String(resume));
      query.set("session_id", this.sessionId);
    }
    this.conversation = this.converse(`${this.wsUrl}?${query.toString()}`);
    await this.conversation;
  }

  /** Open the socket and read until it closes; then move the machine as the close code says. */
  private converse(url: string): Promise<void> {
    return new Promise((resolve) => {
      let socket: WebSocketLike;
      try {
        socket = new this.env.WebSocket(url);
      } catch (error) {
        const reason = `handshake failed (${error instanceof Error ? error.name : "error"})`;
        if (this.state === "connecting") this.fire("drop", "server", { reason, delay: this.backoff.next() });
        resolve();
        return;
      }
      this.socket = socket;
      let retryAfter: number | null = null;
      let silenceMs = this.timeoutMs; // until welcome; then three heartbeat intervals
      let silence: TimerHandle = null;
      const done = (): void => {
        this.env.clearTimeout(silence);
        socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
        if (this.socket === socket) this.socket = null;
        if (this.hangUp === hangUp) this.hangUp = null;
        resolve();
      };
      const hangUp = (code: number, reason: string): void => {
        done(); // detach first: this close is ours, not the server's verdict
        try {
          socket.close(code, reason);
        } catch {
          // already closing
        }
      };
      const arm = (): void => {
        this.env.clearTimeout(silence);
        silence = this.env.setTimeout(() => {
          hangUp(4504, "no message for three heartbeat intervals");
          if (this.state === "connecting" || this.state === "connected") {
            this.report({ code: "heartbeat_timeout", status: null, closeCode: 4504, action: "reconnect", message: "the server went silent" });
            this.fire("drop", "server", { code: 4504, reason: "the server went silent", delay: this.backoff.next() });
          }
        }, silenceMs);
      };
      this.hangUp = hangUp;
      arm();
      socket.onmessage = (event) => {
        arm();
        const message = parse(event.data);
        if (message === null) return; // the server speaks JSON objects; anything else is ignored
        if (message["type"] === "welcome") {
          silenceMs = 3 * 1000 * (Number(message["heartbeat_interval"]) || 25);
          arm();
        } else if (message["type"] === "error") {
          const value = message["retry_after"];
          retryAfter = typeof value === "number" ? value : null;
        }
        this.onMessage(message);
      };
      socket.onclose = (event) => {
        done();
        this.closed(event.code, event.reason, retryAfter);
      };
      socket.onerror = () => {
        // the close event follows, with its code
      };
    });
  }

  private onMessage(message: Message): void {
    const kind = message["type"];
    if (kind === "welcome") this.welcome(message);
    else if (kind === "transition") this.transition(message);
    else if (kind === "ping") this.send({ type: "pong" });
    else if (kind === "error") {
      const code = typeof message["code"] === "string" ? message["code"] : "error";
      const after = message["retry_after"];
      const action = typeof after === "number" ? `retry after ${after} s` : "see the close that follows";
      this.report({ code, status: null, closeCode: null, action, message: String(message["reason"] ?? "") });
    } else if (kind === "token_expiring" && this.state === "connected") {
      this.expiring(Number(message["expires_in"]) || 0);
    } else if (kind === "reauthenticated" && this.state === "connected") {
      this.credentialGeneration = this.reauthGeneration;
      this.fire("reauthenticated", "server");
    }
  }

  private welcome(message: Message): void {
    const recovered = message["recovered"];
    this.sessionState = String(message["state"]);
    this.announcedSeq = Number(message["last_seq"]) || 0;
    if (recovered !== true) {
      // Nothing replayed follows: the welcome's seq is where we are.
      this.lastSeq = Math.max(this.lastSeq ?? 0, this.announcedSeq);
    }
    if (this.state !== "connecting") return;
    this.welcomed = true;
    this.backoff.connected();
    this.fire("welcome", "server", { reason: recovered == null ? "" : `recovered=${String(recovered)}` });
  }

  private transition(message: Message): void {
    const item: SessionTransition = {
      seq: Number(message["seq"]),
      event: String(message["event"]),
      from_state: String(message["from_state"]),
      to_state: String(message["to_state"]),
      actor: String(message["actor"]),
      at: String(message["at"] ?? ""),
      replayed: message["replayed"] === true,
    };
    this.lastSeq = Math.max(this.lastSeq ?? 0, item.seq);
    this.sessionState = item.to_state;
    this.emitter.emit("transition", item);
  }

  private closed(code: number, reason: string, retryAfter: number | null): void {
    this.lastClose = code;
    if (this.state !== "connecting" && this.state !== "connected") return; // logging out, stopped, or moved on
    const { event, action } = closeAction(code);
    if (event === "end") {
      this.end(`closed with ${code} ${closeName(code)}: ${reason}`, { code });
      return;
    }
    this.report({ code: closeName(code), status: null, closeCode: code, action, message: reason });
    if (event === "throttle") {
      const delay = this.backoff.next(closeRetryAfter(reason, retryAfter));
      this.fire(event, "server", { code, reason, delay });
    } else if (event === "expire") {
      this.fire(event, "server", { code, reason });
    } else {
      this.fire(event, "server", { code, reason: `${action}: ${reason}`, delay: this.backoff.next() });
    }
  }

  /** Move the machine for a refused HTTP call made while connecting. */
  private httpRefusal(answer: Answer, what: string): void {
    const { status, problem } = answer;
    if (status === 401 && this.refreshable(problem)) {
      this.fire("expire", "server", { reason: `${what}: ${problem ?? status}` });
    } else if (status === 429) {
      const delay = this.backoff.next(answerRetryAfter(answer));
      this.report({ code: problem ?? "rate_limited", status, closeCode: null, action: `retry after ${delay.seconds} s`, message: what });
      this.fire("throttle", "server", { reason: `${what}: ${status}`, delay });
    } else if (status >= 500) {
      this.report({ code: problem ?? `http_${status}`, status, closeCode: null, action: "reconnect", message: what });
      this.fire("drop", "server", { reason: `${what}: ${status}`, delay: this.backoff.next() });
    } else {
      this.end(what, { answer });
    }
  }
}

function parse(data: unknown): Message | null {
  if (typeof data !== "string") return null;
  try {
    const value: unknown = JSON.parse(data);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Message) : null;
  } catch {
    return null;
  }
}
