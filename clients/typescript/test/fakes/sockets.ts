/** A fake WebSocket: the test plays the server (open, send, close) and reads what the client sent. */

import type { WebSocketLike } from "../../src/environment.js";
import { flush } from "./clock.js";

export class FakeSocket implements WebSocketLike {
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string; wasClean?: boolean }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  /** Messages the client sent, parsed. */
  readonly sent: Record<string, unknown>[] = [];
  /** The close the client asked for, if it did. */
  closedByClient: { code: number | undefined; reason: string | undefined } | null = null;
  readonly query: URLSearchParams;

  constructor(readonly url: string) {
    this.query = new URL(url).searchParams;
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }

  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
    if (this.readyState >= 2) return;
    this.readyState = 2;
    queueMicrotask(() => this.finish(code ?? 1005, reason ?? ""));
  }

  // -- the server's side ---------------------------------------------------------------

  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  message(message: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }

  /** Open and say welcome. */
  welcome(fields: Record<string, unknown> = {}): void {
    if (this.readyState === 0) this.open();
    this.message({
      type: "welcome",
      session_id: "s-1",
      state: "ws_connected",
      connection_id: "c-1",
      heartbeat_interval: 25,
      last_seq: 3,
      recovered: null,
      token_expires_in: 900,
      ...fields,
    });
  }

  /** The server closes with `code` (1006: the connection is lost, no close frame). */
  serverClose(code: number, reason = ""): void {
    this.finish(code, reason);
  }

  private finish(code: number, reason: string): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean: code !== 1006 });
  }
}

/** A WebSocket constructor whose sockets the test can reach. */
export class SocketFactory {
  readonly sockets: FakeSocket[] = [];
  readonly WebSocket: new (url: string) => FakeSocket;

  constructor() {
    const sockets = this.sockets;
    this.WebSocket = class extends FakeSocket {
      constructor(url: string) {
        super(url);
        sockets.push(this);
      }
    };
  }

  get last(): FakeSocket {
    const socket = this.sockets.at(-1);
    if (socket === undefined) throw new Error("no socket was opened");
    return socket;
  }

  /** Wait until the `n`-th socket (1-based) exists. */
  async opened(n: number): Promise<FakeSocket> {
    for (let i = 0; i < 50 && this.sockets.length < n; i += 1) await flush(1);
    const socket = this.sockets[n - 1];
    if (socket === undefined) throw new Error(`socket ${n} was never opened (${this.sockets.length} were)`);
    return socket;
  }
}
