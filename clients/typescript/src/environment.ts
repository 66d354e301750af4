/**
 * Everything the client takes from its surroundings, injectable so that tests run in node without a DOM
 * and never wait out a real delay: fetch, the WebSocket constructor, the clock and timers, the random
 * source, Web Locks, BroadcastChannel, and the page's `online` / visibility hooks.
 *
 * The interfaces are the small parts of the DOM types the client uses, so a fake needs no more.
 *
 * @module
 */

/** The part of a browser `WebSocket` the client uses. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** `new WebSocket(url)`. */
export type WebSocketFactory = new (url: string) => WebSocketLike;

/** The part of `navigator.locks` (Web Locks API) the client uses: an exclusive lock by name. */
export interface LockManagerLike {
  request<T>(name: string, callback: (lock: unknown) => Promise<T>): Promise<T>;
}

/** The part of a `BroadcastChannel` the client uses. */
export interface BroadcastChannelLike {
  onmessage: ((event: { data: unknown }) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
}

/** `new BroadcastChannel(name)`. */
export type BroadcastChannelFactory = new (name: string) => BroadcastChannelLike;

/** An opaque timer handle. */
export type TimerHandle = unknown;

/** Subscribe to a page signal; returns the unsubscribe function. */
export type Hook = (listener: () => void) => () => void;

/** What the client runs on; every field has a browser default (see {@link browserEnvironment}). */
export interface Environment {
  fetch: (input: string, init: RequestInit) => Promise<Response>;
  WebSocket: WebSocketFactory;
  /** Milliseconds; only differences and the tabs' shared expiry times are read. */
  now: () => number;
  setTimeout: (callback: () => void, ms: number) => TimerHandle;
  clearTimeout: (handle: TimerHandle) => void;
  /** Uniform in [0, 1): the backoff's jitter. */
  random: () => number;
  /** Web Locks, or null where the browser has none (the BroadcastChannel fallback is used then). */
  locks: LockManagerLike | null;
  /** BroadcastChannel, or null (then tabs do not share tokens or logout). */
  BroadcastChannel: BroadcastChannelFactory | null;
  /** The network came back (`window` `online`). */
  onOnline: Hook;
  /** The page became visible (`document.visibilityState === "visible"`). */
  onVisible: Hook;
}

const noHook: Hook = () => () => {};

/**
 * The environment of the page (or of node, where most of it is missing): globals looked up at call time,
 * so a test can still override them. `fetch` is bound: browsers refuse a `fetch` called on another object.
 */
export function browserEnvironment(): Environment {
  const scope = globalThis as typeof globalThis & {
    navigator?: { locks?: LockManagerLike };
    document?: Document;
  };
  const onOnline: Hook =
    typeof scope.addEventListener === "function"
      ? (listener) => {
          scope.addEventListener("online", listener);
          return () => scope.removeEventListener("online", listener);
        }
      : noHook;
  const doc = scope.document;
  const onVisible: Hook =
    doc !== undefined
      ? (listener) => {
          const onChange = (): void => {
            if (doc.visibilityState === "visible") listener();
          };
          doc.addEventListener("visibilitychange", onChange);
          return () => doc.removeEventListener("visibilitychange", onChange);
        }
      : noHook;
  return {
    fetch: (input, init) => scope.fetch(input, init),
    WebSocket: scope.WebSocket as unknown as WebSocketFactory,
    now: () => Date.now(),
    setTimeout: (callback, ms) => scope.setTimeout(callback, ms),
    clearTimeout: (handle) => scope.clearTimeout(handle as ReturnType<typeof setTimeout>),
    random: Math.random,
    locks: scope.navigator?.locks ?? null,
    // The DOM's BroadcastChannel passes a MessageEvent (which has `data`) to `onmessage`: a superset of what
    // BroadcastChannelLike promises, so the cast only forgets members the client does not use.
    BroadcastChannel:
      typeof scope.BroadcastChannel === "function" ? (scope.BroadcastChannel as unknown as BroadcastChannelFactory) : null,
    onOnline,
    onVisible,
  };
}

/** A wait on the environment's timers that can be called off (so a stopped client leaves no timer behind). */
export function cancellableSleep(
  env: Pick<Environment, "setTimeout" | "clearTimeout">,
  ms: number,
): { promise: Promise<void>; cancel: () => void } {
  let handle: TimerHandle = null;
  let settle: () => void = () => {};
  const promise = new Promise<void>((resolve) => {
    settle = resolve;
    handle = env.setTimeout(resolve, ms);
  });
  return {
    promise,
    cancel: () => {
      env.clearTimeout(handle);
      settle();
    },
  };
}

/** Resolve after `ms` on the environment's timers. */
export function sleep(env: Pick<Environment, "setTimeout">, ms: number): Promise<void> {
  return new Promise((resolve) => env.setTimeout(resolve, ms));
}
