/**
 * The live feed (/api/inspector/feed): every transition and refusal the store records, in order.
 *
 * It resumes from the last ``seq`` it delivered after a drop or a server restart, reconnecting with
 * full-jitter backoff (0.5 s doubling to a 5 s cap), and stops on the codes that no retry can cure.
 */

import { Api, ApiError } from "./api.js";

export interface FeedTransition {
  seq: number;
  machine: string;
  id: string;
  session_id: string | null;
  version: number;
  event: string;
  from: string;
  to: string;
  actor: string;
  request_id: string | null;
  at: string;
}

export interface FeedRefusal {
  seq: number;
  machine: string;
  id: string;
  event: string;
  state: string;
  code: string;
  reason: string;
  request_id: string | null;
  at: string;
}

export interface Position {
  seq: number;
  refusal_seq: number;
}

export interface FeedHandlers {
  transitions(items: FeedTransition[]): void;
  refusals(items: FeedRefusal[]): void;
  /** The feed could not replay what was missed: reload the counts, and say where they stand. */
  reload(): Promise<Position>;
  status(text: string, live: boolean): void;
  /** The feed will not come back by itself (logged out, not an admin). */
  stopped(reason: string): void;
}

const STOP = new Map<number, string>([
  [1008, "this origin may not open the feed"],
  [4400, "the feed refused the request"],
  [4401, "not logged in"],
  [4403, "the session was revoked; log in again"],
  [4406, "the inspector needs the admin role"],
  [4410, "the session is closed; log in again"],
]);

export class Feed {
  private socket: WebSocket | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private ended = false;

  constructor(
    private readonly api: Api,
    private readonly handlers: FeedHandlers,
    private position: Position,
  ) {}

  start(): void {
    void this.open(true);
  }

  stop(): void {
    this.ended = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.socket?.close(1000, "inspector closed");
  }

  private async open(resume: boolean): Promise<void> {
    let ticket: string;
    try {
      ticket = await this.api.ticket();
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        this.end(error.message);
      } else {
        this.retry();
      }
      return;
    }
    if (this.ended) return;
    const url = new URL("/api/inspector/feed", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("ticket", ticket);
    if (resume) {
      url.searchParams.set("after", String(this.position.seq));
      url.searchParams.set("refusals_after", String(this.position.refusal_seq));
    }
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener("message", (message) => void this.receive(socket, JSON.parse(String(message.data))));
    socket.addEventListener("close", (event) => void this.closed(socket, event.code));
  }

  private async receive(socket: WebSocket, message: { type: string; [key: string]: unknown }): Promise<void> {
    if (socket !== this.socket) return;
    if (message.type === "welcome") {
      this.attempt = 0;
      if (message.recovered === false) {
        this.socket = null;
        socket.close(1000, "reloading");
        this.position = await this.handlers.reload();
        void this.open(true);
        return;
      }
      this.handlers.status("live", true);
    } else if (message.type === "transitions") {
      const items = message.items as FeedTransition[];
      const last = items.at(-1);
      if (last !== undefined) this.position = { ...this.position, seq: last.seq };
      this.handlers.transitions(items);
    } else if (message.type === "refusals") {
      const items = message.items as FeedRefusal[];
      const last = items.at(-1);
      if (last !== undefined) this.position = { ...this.position, refusal_seq: last.seq };
      this.handlers.refusals(items);
    }
  }

  private async closed(socket: WebSocket, code: number): Promise<void> {
    if (socket !== this.socket || this.ended) return;
    this.socket = null;
    const stop = STOP.get(code);
    if (stop !== undefined) {
      this.end(stop);
    } else if (code === 4419) {
      if (await this.api.refresh()) void this.open(true);
      else this.end("the session expired; log in again");
    } else {
      this.retry();
    }
  }

  private retry(): void {
    if (this.ended) return;
    const delay = Math.random() * Math.min(5, 0.5 * 2 ** this.attempt);
    this.attempt += 1;
    this.handlers.status(`reconnecting in ${delay.toFixed(1)} s`, false);
    this.timer = setTimeout(() => void this.open(true), delay * 1000);
  }

  private end(reason: string): void {
    this.ended = true;
    this.handlers.status("stopped", false);
    this.handlers.stopped(reason);
  }
}
