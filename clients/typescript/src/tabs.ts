/**
 * Tabs of one app share one session: one refresh at a time across all of them, and what one learns
 * (fresh tokens, a logout) reaches the others.
 *
 * - The refresh lock is the Web Locks API (`navigator.locks.request("sessionflow-refresh", ...)`): the
 *   browser grants it to one tab at a time, in request order, and releases it when a tab closes.
 * - Where Web Locks are missing, {@link BroadcastLock} stands in: a claim-and-lease protocol over the
 *   BroadcastChannel (see there); it is best effort.
 * - Without a BroadcastChannel there are no other tabs to hear from: a local mutex serializes the
 *   refreshes of this page only.
 *
 * The messages carry the access token (never the refresh token: in cookie mode the page never has it).
 * A BroadcastChannel reaches only pages of the same origin, which could read the page's memory anyway.
 *
 * @module
 */

import type { Environment, TimerHandle } from "./environment.js";

/** Fresh credentials one tab got from the server, for the others. */
export interface TokensMessage {
  readonly kind: "tokens";
  readonly sessionId: string;
  readonly accessToken: string;
  /** Seconds: the token's whole life. */
  readonly lifetime: number;
  /** Clock reading (ms) when it expires. */
  readonly expiresAt: number;
}

/** A tab logs out (`start`) and the server confirmed it, or could not be reached (`done`). */
export interface LogoutMessage {
  readonly kind: "logout";
  readonly sessionId: string;
  readonly phase: "start" | "done";
  readonly reason: string;
}

/** The fallback lock's traffic (see {@link BroadcastLock}). */
export interface LockMessage {
  readonly kind: "lock";
  readonly op: "claim" | "held" | "released";
  /** Clock reading (ms) until which a claim or a hold counts. */
  readonly until: number;
}

/** What tabs tell each other. */
export type TabMessage = TokensMessage | LogoutMessage | LockMessage;

/** A message as received: with the sending tab's id. */
export type Received = TabMessage & { readonly from: string };

/** How the refresh lock is held: Web Locks, the BroadcastChannel fallback, or within this page only. */
export type LockKind = "web-locks" | "broadcast" | "local";

/** One tab's link to the others. */
export interface Tabs {
  /** This tab's id (random, per client). */
  readonly id: string;
  readonly lockKind: LockKind;
  /** Run `task` while this tab holds the refresh lock; other tabs' refreshes wait. */
  withRefreshLock<T>(task: () => Promise<T>): Promise<T>;
  /** Tell every other tab. */
  post(message: TabMessage): void;
  /** Hear what the other tabs tell; returns the unsubscribe function. */
  subscribe(listener: (message: Received) => void): () => void;
  /** Leave: no more messages either way. */
  close(): void;
}

/** Names shared by the tabs of one app. */
export interface TabNames {
  /** The BroadcastChannel name (default `sessionflow`). */
  channel: string;
  /** The Web Lock name (default `sessionflow-refresh`). */
  lock: string;
}

/** Runs tasks one after another within this page. */
export class LocalMutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/**
 * The tabs link: a BroadcastChannel when the environment has one, and the best lock it offers.
 * `share: false` (body mode, or tabs turned off) keeps everything within this page.
 */
export function connectTabs(env: Environment, names: TabNames, share: boolean): Tabs {
  const id = randomId(env.random);
  const channel = share && env.BroadcastChannel !== null ? new env.BroadcastChannel(names.channel) : null;
  const listeners = new Set<(message: Received) => void>();
  if (channel !== null) {
    channel.onmessage = (event) => {
      const message = event.data as Received | null;
      if (message === null || typeof message !== "object" || message.from === id) return;
      for (const listener of [...listeners]) listener(message);
    };
  }
  let closed = false;
  // A closed BroadcastChannel throws on postMessage; a client that stopped mid-refresh has nothing to tell.
  const post = (message: TabMessage): void => {
    if (!closed) channel?.postMessage({ ...message, from: id });
  };
  const subscribe = (listener: (message: Received) => void): (() => void) => {
    listeners.add(listener);
    return () => listeners.delete(listener);
  };
  const local = new LocalMutex();
  let lockKind: LockKind = "local";
  let withRefreshLock = <T>(task: () => Promise<T>): Promise<T> => local.run(task);
  if (share && env.locks !== null) {
    const locks = env.locks;
    lockKind = "web-locks";
    withRefreshLock = (task) => locks.request(names.lock, () => task());
  } else if (channel !== null) {
    const fallback = new BroadcastLock(id, env, post, subscribe);
    lockKind = "broadcast";
    withRefreshLock = (task) => local.run(() => fallback.run(task));
  }
  return {
    id,
    lockKind,
    withRefreshLock,
    post,
    subscribe,
    close: () => {
      closed = true;
      listeners.clear();
      if (channel !== null) {
        channel.onmessage = null;
        channel.close();
      }
    },
  };
}

/**
 * The refresh lock without Web Locks: claims and leases over the BroadcastChannel.
 *
 * To take the lock a tab waits until no other tab holds a live lease or has a live claim, then posts
 * `claim` and listens for `claimWindow` ms. Claims that crossed in flight are settled the same way in
 * every tab: the lowest tab id wins, the others go back to waiting. The winner posts `held` with a lease
 * (`lease` ms; a tab that closes while holding it cannot block the others for longer) and `released` when
 * done. It is best effort: a message delayed past the claim window can let two tabs refresh at once. That
 * costs one extra rotation, not the session: in cookie mode both present the cookie, which the browser
 * keeps current, and the server answers a race within its reuse window with credentials, not a revocation.
 */
export class BroadcastLock {
  private readonly others = new Map<string, { op: LockMessage["op"]; until: number }>();
  private wake: (() => void) | null = null;

  constructor(
    /** This tab's id: crossing claims are settled by comparing ids. */
    private readonly id: string,
    private readonly env: Pick<Environment, "now" | "setTimeout" | "clearTimeout">,
    private readonly post: (message: TabMessage) => void,
    subscribe: (listener: (message: Received) => void) => void,
    private readonly claimWindow = 50,
    private readonly lease = 10_000,
  ) {
    subscribe((message) => {
      if (message.kind !== "lock") return;
      if (message.op === "released") this.others.delete(message.from);
      else this.others.set(message.from, { op: message.op, until: message.until });
      this.wake?.();
    });
  }

  /** Run `task` holding the lock (one caller at a time per page: callers serialize before this). */
  async run<T>(task: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await task();
    } finally {
      this.post({ kind: "lock", op: "released", until: this.env.now() });
    }
  }

  private async acquire(): Promise<void> {
    for (;;) {
      await this.waitUntilFree();
      const start = this.env.now();
      this.post({ kind: "lock", op: "claim", until: start + 2 * this.claimWindow });
      await this.pause(this.claimWindow, false);
      if (!this.lostTo()) break;
    }
    this.post({ kind: "lock", op: "held", until: this.env.now() + this.lease });
  }

  /** Whether another tab holds the lock, or claimed it too (claims crossed in flight) and has a lower id. */
  private lostTo(): boolean {
    for (const [from, entry] of this.live()) {
      if (entry.op === "held" || from < this.id) return true;
    }
    return false;
  }

  private async waitUntilFree(): Promise<void> {
    for (;;) {
      const live = [...this.live()];
      if (live.length === 0) return;
      const soonest = Math.min(...live.map(([, entry]) => entry.until));
      await this.pause(Math.max(1, soonest - this.env.now()), true);
    }
  }

  private *live(): Generator<[string, { op: LockMessage["op"]; until: number }]> {
    const now = this.env.now();
    for (const [from, entry] of this.others) {
      if (entry.until > now) yield [from, entry];
      else this.others.delete(from);
    }
  }

  /** Resolve after `ms`, or (when `wakeable`) sooner, as soon as a lock message arrives. */
  private pause(ms: number, wakeable: boolean): Promise<void> {
    return new Promise((resolve) => {
      let handle: TimerHandle = null;
      const done = (): void => {
        this.env.clearTimeout(handle);
        if (this.wake === done) this.wake = null;
        resolve();
      };
      handle = this.env.setTimeout(done, ms);
      if (wakeable) this.wake = done;
    });
  }
}

/** A random id for this tab (not a secret: it only orders crossing lock claims). */
export function randomId(random: () => number): string {
  let text = "";
  for (let i = 0; i < 4; i += 1) text += Math.floor(random() * 0x1_0000_0000).toString(16).padStart(8, "0");
  return text;
}
