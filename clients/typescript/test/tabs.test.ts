/** Tabs of one app: one refresh at a time across all of them, tokens shared, logout reaching every tab. */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { connectTabs } from "../src/tabs.js";
import type { Environment } from "../src/environment.js";
import { FakeApi, SESSION_ID, deferred } from "./fakes/api.js";
import type { Reply } from "./fakes/api.js";
import { FakeClock, flush } from "./fakes/clock.js";
import { harness } from "./fakes/harness.js";
import type { Browser, Harness } from "./fakes/harness.js";
import { BroadcastHub, FakeLocks } from "./fakes/tabs.js";

const TABS = 5;

/** `n` tabs of one browser in one session: the first logs in, the others resume with the (shared) cookie. */
async function openTabs(n: number, browser: Browser): Promise<Harness[]> {
  const tabs: Harness[] = [];
  for (let i = 0; i < n; i += 1) {
    const tab = harness({ autoConnect: false }, browser);
    if (i === 0) await tab.client.login({ username: "alice", password: "pw" });
    else await settle(browser.clock, tab.client.resume());
    tabs.push(tab);
  }
  await settle(browser.clock);
  return tabs;
}

/** Run `promise` to its end, moving the fake clock along (the lock's settle and claim windows are timers). */
async function settle<T>(clock: FakeClock, promise?: Promise<T>): Promise<T | undefined> {
  let done = promise === undefined;
  let value: T | undefined;
  let failure: unknown = null;
  promise?.then(
    (v) => ((value = v), (done = true)),
    (e: unknown) => ((failure = e), (done = true)),
  );
  for (let i = 0; i < 200 && !done; i += 1) await clock.advance(10);
  await clock.advance(100);
  if (failure !== null) throw failure;
  assert.ok(done, "did not settle");
  return value;
}

function refreshes(api: FakeApi): number {
  return api.of("POST /api/auth/refresh").length;
}

for (const kind of ["web-locks", "broadcast"] as const) {
  describe(`single-flight refresh across tabs (${kind})`, () => {
    const browser = (): Browser => ({
      api: new FakeApi(),
      clock: new FakeClock(),
      hub: new BroadcastHub(),
      ...(kind === "web-locks" ? { locks: new FakeLocks() } : {}),
    });

    it(`${TABS} tabs asking at once make exactly one HTTP refresh, and every tab gets the new token`, async () => {
      const b = browser();
      const tabs = await openTabs(TABS, b);
      assert.ok(tabs.every((tab) => tab.client.state === "active"));
      assert.equal((tabs[0]!.client as unknown as { tabs: { lockKind: string } }).tabs.lockKind, kind);
      const before = refreshes(b.api);
      const answer = deferred<Reply>();
      b.api.routes.set("POST /api/auth/refresh", () => answer.promise);
      const all = Promise.all(tabs.map((tab) => tab.client.refresh()));
      await b.clock.advance(200);
      assert.equal(refreshes(b.api), before + 1, "the others wait for the lock");
      answer.resolve(b.api.tokens(true));
      await settle(b.clock, all);
      assert.equal(refreshes(b.api), before + 1, "a tab that received fresher tokens while waiting does not refresh again");
      const fresh = `at-${b.api.issued}`;
      for (const tab of tabs) assert.equal(tab.client.accessToken, fresh);
      const reasons = tabs.map((tab) => tab.states.at(-1)?.reason).sort();
      assert.deepEqual(reasons, ["", ...Array<string>(TABS - 1).fill("rotated by another tab")], "one tab refreshed");
      if (kind === "web-locks") assert.equal(b.locks?.maxHeld, 1);
    });

    it("the 80% refresh timers of every tab come due together: one refresh", async () => {
      const b = browser();
      const tabs = await openTabs(TABS, b);
      const before = refreshes(b.api);
      await b.clock.advance(0.8 * 900_000 + 1000);
      await settle(b.clock);
      assert.equal(refreshes(b.api), before + 1);
      const tokens = new Set(tabs.map((tab) => tab.client.accessToken));
      assert.equal(tokens.size, 1);
    });

    it("logout in one tab stops every tab: logged out", async () => {
      const b = browser();
      const tabs = await openTabs(3, b);
      const stopped = await settle(b.clock, tabs[0]!.client.logout());
      assert.equal(stopped?.reason, "logged out");
      await settle(b.clock);
      for (const tab of tabs) {
        assert.equal(tab.client.state, "stopped");
        assert.equal(tab.client.stopped?.reason, "logged out");
        assert.equal(tab.client.stopped?.logInAgain, true);
      }
      assert.equal(b.api.of("POST /api/auth/logout").length, 1, "only the tab that logged out asks the server");
      assert.deepEqual(b.clock.pending(), [], "no timer left behind in any tab");
      for (const tab of tabs.slice(1)) {
        assert.deepEqual(tab.path().slice(-2), ["active -logout-> logging_out", "logging_out -end-> stopped"]);
      }
    });

    it("a connected tab hands the tokens another tab got to its socket (reauth), so it is never closed 4419", async () => {
      const b = browser();
      const tabs = [harness({}, b), harness({}, b)];
      await tabs[0]!.client.login({ username: "alice", password: "pw" });
      (await tabs[0]!.sockets.opened(1)).welcome();
      const resumed = tabs[1]!.client.resume();
      await settle(b.clock);
      (await tabs[1]!.sockets.opened(1)).welcome();
      await settle(b.clock, resumed);
      const before = refreshes(b.api);
      await settle(b.clock, tabs[1]!.client.refresh());
      assert.equal(refreshes(b.api), before + 1);
      const fresh = tabs[1]!.client.accessToken;
      assert.equal(tabs[0]!.client.accessToken, fresh);
      assert.deepEqual(tabs[0]!.sockets.last.sent.at(-1), { type: "reauth", access_token: fresh });
    });

    it("a 4419 after taking another tab's fresh tokens reconnects with them, without another refresh", async () => {
      const b = browser();
      const [tab] = await openTabs(1, b);
      const connecting = tab!.client.connect();
      (await tab!.sockets.opened(1)).welcome();
      await connecting;
      const other = connectTabs(env(b), { channel: "sessionflow", lock: "sessionflow-refresh" }, true);
      other.post({ kind: "tokens", sessionId: SESSION_ID, accessToken: "at-777", lifetime: 900, expiresAt: b.clock.now() + 900_000 });
      await flush();
      const before = refreshes(b.api);
      tab!.sockets.last.serverClose(4419, "credentials expired; refresh, then reconnect");
      await settle(b.clock);
      assert.equal(refreshes(b.api), before, "the tokens taken are as fresh as a refresh would give");
      assert.equal(tab!.client.state, "reconnecting");
      other.close();
    });

    it("tokens of another session are not taken", async () => {
      const b = browser();
      const [tab] = await openTabs(1, b);
      const other = connectTabs(env(b), { channel: "sessionflow", lock: "sessionflow-refresh" }, true);
      other.post({ kind: "tokens", sessionId: "another", accessToken: "at-999", lifetime: 900, expiresAt: b.clock.now() + 900_000 });
      await flush();
      assert.equal(tab!.client.accessToken, "at-1");
      other.post({ kind: "tokens", sessionId: SESSION_ID, accessToken: "at-998", lifetime: 900, expiresAt: b.clock.now() + 900_000 });
      await flush();
      assert.equal(tab!.client.accessToken, "at-998");
      other.close();
    });
  });
}

describe("stopping while a refresh is in flight", () => {
  it("a client stopped mid-resume neither throws on its closed channel nor goes on", async () => {
    const b: Browser = { api: new FakeApi(), clock: new FakeClock(), hub: new BroadcastHub(), locks: new FakeLocks() };
    const tab = harness({}, b);
    const answer = deferred<Reply>();
    b.api.routes.set("POST /api/auth/refresh", () => answer.promise);
    const resumed = tab.client.resume();
    await flush();
    tab.client.stop(); // React's StrictMode unmount, a closed page...
    answer.resolve(b.api.tokens(true));
    await assert.rejects(resumed, /stopped while resuming/);
    assert.equal(tab.client.state, "stopped");
    assert.equal(tab.sockets.sockets.length, 0);
    assert.deepEqual(b.clock.pending(), []);
  });
});

describe("without Web Locks or BroadcastChannel", () => {
  it("concurrent refreshes within one page still make one HTTP refresh", async () => {
    const api = new FakeApi();
    const clock = new FakeClock();
    const [tab] = await openTabs(1, { api, clock });
    const all = Promise.all([tab!.client.refresh(), tab!.client.refresh(), tab!.client.refresh()]);
    await settle(clock, all);
    assert.equal(refreshes(api), 1);
    assert.equal(tab!.client.accessToken, "at-2");
  });

  it("body mode never shares across tabs (the refresh token stays in its page)", async () => {
    const hub = new BroadcastHub();
    const h = harness({ credentials: "body", autoConnect: false }, { hub, locks: new FakeLocks() });
    await h.client.login({ username: "alice", password: "pw" });
    await h.client.refresh();
    assert.equal(hub.posted.length, 0);
  });
});

function env(b: Browser): Environment {
  return {
    fetch: b.api.fetch,
    WebSocket: class {} as unknown as Environment["WebSocket"],
    now: b.clock.now,
    setTimeout: b.clock.setTimeout,
    clearTimeout: b.clock.clearTimeout,
    random: Math.random,
    locks: b.locks ?? null,
    BroadcastChannel: b.hub?.BroadcastChannel ?? null,
    onOnline: () => () => {},
    onVisible: () => () => {},
  };
}
