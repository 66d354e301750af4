/** One client wired to fakes, with everything it emitted recorded. */

import { SessionClient } from "../../src/client.js";
import type { ClientOptions } from "../../src/client.js";
import type { Environment } from "../../src/environment.js";
import type { ClientErrorEvent, SessionTransition, StateChange, Stopped } from "../../src/records.js";
import { FakeApi } from "./api.js";
import { FakeClock } from "./clock.js";
import { SocketFactory } from "./sockets.js";
import type { BroadcastHub, FakeLocks } from "./tabs.js";

export const BASE = "http://api.test";

/** What one browser shares between its tabs: the server, the clock, the locks and the channels. */
export interface Browser {
  api: FakeApi;
  clock: FakeClock;
  hub?: BroadcastHub;
  locks?: FakeLocks;
}

export interface Harness {
  client: SessionClient;
  api: FakeApi;
  clock: FakeClock;
  sockets: SocketFactory;
  states: StateChange[];
  transitions: SessionTransition[];
  errors: ClientErrorEvent[];
  stopped: Stopped[];
  /** Fire the page's `online` / visible hooks. */
  goOnline: () => void;
  becomeVisible: () => void;
  /** The client machine's path: `from -event-> to` per move. */
  path: () => string[];
}

let created = 0;

export function harness(options: ClientOptions = {}, browser?: Partial<Browser>, env: Partial<Environment> = {}): Harness {
  const api = browser?.api ?? new FakeApi();
  const clock = browser?.clock ?? new FakeClock();
  const sockets = new SocketFactory();
  const online = new Set<() => void>();
  const visible = new Set<() => void>();
  let seed = (created += 1) * 7919; // a stream of its own per client: tab ids differ
  const client = new SessionClient({
    baseUrl: BASE,
    ...options,
    environment: {
      fetch: api.fetch,
      WebSocket: sockets.WebSocket,
      now: clock.now,
      setTimeout: clock.setTimeout,
      clearTimeout: clock.clearTimeout,
      random: () => ((seed = (seed * 9301 + 49297) % 233280) / 233280),
      locks: browser?.locks ?? null,
      BroadcastChannel: browser?.hub?.BroadcastChannel ?? null,
      onOnline: (listener) => (online.add(listener), () => online.delete(listener)),
      onVisible: (listener) => (visible.add(listener), () => visible.delete(listener)),
      ...env,
    },
  });
  const h: Harness = {
    client,
    api,
    clock,
    sockets,
    states: [],
    transitions: [],
    errors: [],
    stopped: [],
    goOnline: () => online.forEach((listener) => listener()),
    becomeVisible: () => visible.forEach((listener) => listener()),
    path: () => h.states.map((move) => `${move.from} -${move.event}-> ${move.to}`),
  };
  client.on("state", (move) => h.states.push(move));
  client.on("transition", (transition) => h.transitions.push(transition));
  client.on("error", (error) => h.errors.push(error));
  client.on("stopped", (why) => h.stopped.push(why));
  return h;
}
