/** Scenarios against a fake server: order, resume, refresh and reauth, close codes, backoff, logout. */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { CLOSE_CODES } from "../src/generated/lifecycle.js";
import { ClientError } from "../src/records.js";
import { FakeApi, SESSION_ID, deferred } from "./fakes/api.js";
import type { Reply } from "./fakes/api.js";
import { flush } from "./fakes/clock.js";
import { harness } from "./fakes/harness.js";
import type { Harness } from "./fakes/harness.js";

const ALICE = { username: "alice", password: "correct horse battery staple" };

/** Log in and get welcomed on the first socket (heartbeats far apart: long waits do not time the socket out). */
async function connected(h: Harness, heartbeat = 100_000): Promise<void> {
  await h.client.login(ALICE);
  (await h.sockets.opened(1)).welcome({ heartbeat_interval: heartbeat });
  assert.equal(h.client.state, "connected");
}

/** Let the backoff wait that the last move began run out. */
async function waitOut(h: Harness): Promise<void> {
  await flush();
  const delay = h.states.at(-1)?.delay;
  assert.ok(delay, `the last move (${h.path().at(-1)}) began no wait`);
  await h.clock.advance(delay.seconds * 1000 + 1);
}

describe("login, then ticket, then socket", () => {
  it("opens no socket before login answered, and asks for the ticket with the access token", async () => {
    const h = harness();
    const answer = deferred<Reply>();
    h.api.routes.set("POST /api/auth/login", () => answer.promise);
    const login = h.client.login(ALICE);
    await flush();
    assert.equal(h.client.state, "logging_in");
    assert.equal(h.sockets.sockets.length, 0, "no socket while the server creates the session");
    assert.deepEqual(h.api.routesCalled, ["POST /api/auth/login"]);
    answer.resolve(h.api.tokens(true));
    await login;
    const socket = await h.sockets.opened(1);
    assert.deepEqual(h.api.routesCalled, ["POST /api/auth/login", "POST /api/session/{id}/ws-ticket"]);
    const [loginCall, ticketCall] = h.api.calls;
    assert.deepEqual(loginCall?.body, { ...ALICE, refresh_cookie: true });
    assert.equal(ticketCall?.headers["authorization"], "Bearer at-1");
    assert.ok(socket.url.startsWith("ws://api.test/api/ws?"));
    assert.equal(socket.query.get("ticket"), "sft_2");
    assert.equal(socket.query.get("last_seq"), null, "nothing to resume on the first connect");
    socket.welcome();
    assert.equal(h.client.state, "connected");
    assert.equal(h.client.sessionId, SESSION_ID);
    assert.equal(h.client.sessionState, "ws_connected");
    assert.equal(h.client.sessionAccess, "usable");
    assert.deepEqual(h.path(), [
      "logged_out -login-> logging_in",
      "logging_in -logged_in-> active",
      "active -connect-> connecting",
      "connecting -welcome-> connected",
    ]);
  });

  it("cookie mode: every call carries the CSRF header and credentials include", async () => {
    const h = harness();
    await connected(h);
    for (const call of h.api.calls) {
      assert.equal(call.headers["x-sessionflow-csrf"], "1", call.route);
      assert.equal(call.credentials, "include", call.route);
    }
  });

  it("body mode: no cookie asked for, the refresh token goes in the body, no CSRF header", async () => {
    const h = harness({ credentials: "body" });
    await connected(h);
    await h.client.refresh();
    const [login] = h.api.of("POST /api/auth/login");
    assert.deepEqual(login?.body, ALICE);
    const [refresh] = h.api.of("POST /api/auth/refresh");
    assert.deepEqual(refresh?.body, { refresh_token: "rt-1" });
    assert.equal(refresh?.headers["x-sessionflow-csrf"], undefined);
    assert.notEqual(refresh?.credentials, "include");
  });

  it("a refused login stops the client and says why", async () => {
    const h = harness();
    h.api.routes.set("POST /api/auth/login", () => FakeApi.problem(401, "login_failed"));
    await assert.rejects(h.client.login(ALICE), ClientError);
    assert.equal(h.client.state, "stopped");
    assert.equal(h.stopped[0]?.problem, "login_failed");
    assert.equal(h.stopped[0]?.status, 401);
    assert.equal(h.errors[0]?.code, "login_failed");
    assert.equal(h.sockets.sockets.length, 0);
  });

  it("with autoConnect off, connect() is the application's move", async () => {
    const h = harness({ autoConnect: false });
    await h.client.login(ALICE);
    await flush();
    assert.equal(h.client.state, "active");
    assert.equal(h.sockets.sockets.length, 0);
    const connecting = h.client.connect();
    (await h.sockets.opened(1)).welcome();
    await connecting;
    assert.equal(h.client.state, "connected");
  });

  it("connect() before login is refused by the machine", async () => {
    const h = harness({ autoConnect: false });
    await assert.rejects(h.client.connect(), /event 'connect' refused in state 'logged_out'/);
    assert.equal(h.sockets.sockets.length, 0);
    assert.equal(h.api.calls.length, 0);
  });

  it("resume() after a page load refreshes with the cookie first, then connects", async () => {
    const h = harness();
    await h.client.resume();
    (await h.sockets.opened(1)).welcome();
    assert.deepEqual(h.api.routesCalled, ["POST /api/auth/refresh", "POST /api/session/{id}/ws-ticket"]);
    assert.equal(h.api.calls[0]?.body, null, "no body: the cookie carries the refresh token");
    assert.equal(h.client.state, "connected");
  });

  it("resume() without a refresh cookie stops: log in again", async () => {
    const h = harness();
    h.api.routes.set("POST /api/auth/refresh", () => FakeApi.problem(401, "credentials_missing"));
    await assert.rejects(h.client.resume(), ClientError);
    assert.equal(h.client.state, "stopped");
    assert.equal(h.stopped[0]?.logInAgain, true);
  });
});

describe("live updates and resume", () => {
  it("answers pings, emits transitions, and resumes with last_seq after a drop", async () => {
    const h = harness();
    await connected(h);
    const first = h.sockets.last;
    first.message({ type: "ping", ts: 1 });
    assert.deepEqual(first.sent, [{ type: "pong" }]);
    first.message({ type: "transition", seq: 4, event: "refresh", from_state: "ws_connected", to_state: "ws_connected", actor: "client", at: "2026-01-01T00:00:00Z" });
    assert.equal(h.transitions[0]?.seq, 4);
    assert.equal(h.client.lastSeq, 4);
    first.serverClose(1006);
    assert.equal(h.client.state, "reconnecting");
    const wait = h.states.at(-1)?.delay;
    assert.ok(wait !== null && wait !== undefined && wait.seconds <= 0.5);
    await h.clock.advance(wait.seconds * 1000);
    const second = await h.sockets.opened(2);
    assert.equal(second.query.get("last_seq"), "4");
    assert.equal(second.query.get("session_id"), SESSION_ID);
    assert.ok(second.query.get("ticket")?.startsWith("sft_"));
    second.welcome({ last_seq: 6, recovered: true });
    second.message({ type: "transition", seq: 5, event: "drop", from_state: "ws_connected", to_state: "ws_disconnected", actor: "server", at: "", replayed: true });
    assert.equal(h.client.caughtUp, false);
    second.message({ type: "transition", seq: 6, event: "connect", from_state: "ws_disconnected", to_state: "ws_connected", actor: "server", at: "", replayed: true });
    assert.equal(h.client.caughtUp, true);
    assert.deepEqual(h.transitions.map((t) => [t.seq, t.replayed]), [[4, false], [5, true], [6, true]]);
  });

  it("token_expiring: refresh, then reauth on the open socket with the fresh token", async () => {
    const h = harness({ refreshAt: 0.99 });
    await connected(h);
    await h.clock.advance(840_000); // the credential, and the token we hold, expire in 60 s
    h.sockets.last.message({ type: "token_expiring", expires_in: 60 });
    await flush();
    assert.equal(h.api.of("POST /api/auth/refresh").length, 1);
    assert.deepEqual(h.sockets.last.sent.at(-1), { type: "reauth", access_token: "at-2" });
    h.sockets.last.message({ type: "reauthenticated", token_expires_in: 900 });
    assert.deepEqual(h.path().slice(-3), [
      "connected -token_expiring-> connected",
      "connected -refreshed-> connected",
      "connected -reauthenticated-> connected",
    ]);
    assert.equal(h.client.state, "connected");
  });

  it("refreshes at 80% of the token's life, on the injected clock", async () => {
    const h = harness();
    await connected(h);
    await h.clock.advance(0.8 * 900_000 - 1000);
    assert.equal(h.api.of("POST /api/auth/refresh").length, 0);
    await h.clock.advance(1000);
    assert.equal(h.api.of("POST /api/auth/refresh").length, 1);
    assert.equal(h.client.accessToken, "at-2");
    assert.deepEqual(h.sockets.last.sent.at(-1), { type: "reauth", access_token: "at-2" });
  });

  it("4419: refresh, then reconnect", async () => {
    const h = harness();
    await connected(h);
    h.sockets.last.serverClose(4419, "credentials expired");
    await flush();
    assert.equal(h.api.of("POST /api/auth/refresh").length, 1);
    assert.equal(h.client.state, "reconnecting");
    await waitOut(h);
    const socket = await h.sockets.opened(2);
    assert.equal(h.api.of("POST /api/session/{id}/ws-ticket").at(-1)?.headers["authorization"], "Bearer at-2");
    socket.welcome();
    assert.deepEqual(h.path().slice(4), [
      "connected -expire-> refreshing",
      "refreshing -refreshed-> reconnecting",
      "reconnecting -retry-> connecting",
      "connecting -welcome-> connected",
    ]);
  });

  it("a ticket refused as token_expired goes through refreshing too", async () => {
    const h = harness();
    let first = true;
    h.api.routes.set("POST /api/session/{id}/ws-ticket", () => {
      if (first) return (first = false), FakeApi.problem(401, "token_expired");
      return { status: 201, body: { ticket: "sft_x", expires_in: 30 } };
    });
    await h.client.login(ALICE);
    await flush();
    assert.equal(h.api.of("POST /api/auth/refresh").length, 1);
    await waitOut(h);
    (await h.sockets.opened(1)).welcome();
    assert.equal(h.client.state, "connected");
  });

  it("never logs a token, a ticket or a refresh token in what it emits", async () => {
    const h = harness({ credentials: "body" });
    await connected(h);
    h.sockets.last.message({ type: "token_expiring", expires_in: 60 });
    await flush();
    h.sockets.last.serverClose(1006);
    await h.clock.advance(30_000);
    const emitted = JSON.stringify([h.states, h.transitions, h.errors, h.stopped]);
    assert.doesNotMatch(emitted, /at-\d|rt-\d|sft_/);
  });
});

describe("closes and backoff", () => {
  for (const row of CLOSE_CODES.filter((r) => !r.retry)) {
    it(`${row.code} ${row.name} stops for good, saying why, and never retries`, async () => {
      const h = harness();
      await connected(h);
      h.sockets.last.serverClose(row.code, "bye");
      assert.equal(h.client.state, "stopped");
      const why = h.stopped[0];
      assert.equal(why?.closeCode, row.code);
      assert.equal(why?.action, row.action);
      assert.equal(why?.logInAgain, row.action === "log_in");
      assert.match(why?.reason ?? "", row.action === "log_in" ? /log in again/ : /./);
      assert.equal(h.errors.at(-1)?.closeCode, row.code);
      const tickets = h.api.of("POST /api/session/{id}/ws-ticket").length;
      await h.clock.advance(3_600_000);
      assert.equal(h.api.of("POST /api/session/{id}/ws-ticket").length, tickets);
      assert.equal(h.sockets.sockets.length, 1);
      assert.deepEqual(h.clock.pending(), [], "no timer left behind");
    });
  }

  it("4403 says the session was revoked", async () => {
    const h = harness();
    await connected(h);
    h.sockets.last.serverClose(4403, "revoked");
    assert.equal(h.stopped[0]?.reason, "session revoked: log in again");
  });

  for (const code of [1001, 4408, 4500, 4503, 4504, 1006, 1011]) {
    it(`${code} reconnects with backoff and a new ticket`, async () => {
      const h = harness();
      await connected(h);
      h.sockets.last.serverClose(code);
      assert.equal(h.client.state, "reconnecting");
      assert.equal(h.states.at(-1)?.event, "drop");
      await waitOut(h);
      await h.sockets.opened(2);
      assert.equal(h.api.of("POST /api/session/{id}/ws-ticket").length, 2);
    });
  }

  it("4429 waits at least the retry_after of the error message before it", async () => {
    const h = harness();
    await connected(h);
    h.sockets.last.message({ type: "error", code: "too_many", reason: "too many connections", retry_after: 12 });
    h.sockets.last.serverClose(4429, "too many connections for this session");
    const move = h.states.at(-1);
    assert.equal(move?.event, "throttle");
    assert.ok((move?.delay?.seconds ?? 0) >= 12);
    await h.clock.advance(11_900);
    assert.equal(h.sockets.sockets.length, 1);
    await h.clock.advance(move!.delay!.seconds * 1000 - 11_900 + 1);
    assert.equal(h.sockets.sockets.length, 2);
  });

  it("HTTP 429 on the ticket waits at least Retry-After", async () => {
    const h = harness();
    h.api.routes.set("POST /api/session/{id}/ws-ticket", () => FakeApi.problem(429, "rate_limited", { "Retry-After": "20" }));
    await h.client.login(ALICE);
    await flush();
    const move = h.states.at(-1);
    assert.equal(move?.event, "throttle");
    assert.ok((move?.delay?.seconds ?? 0) >= 20);
  });

  it("never gives up while the session is usable: 60 failures later it still tries, waits capped at 30 s", async () => {
    const h = harness();
    h.api.routes.set("POST /api/session/{id}/ws-ticket", () => "unreachable");
    await h.client.login(ALICE);
    for (let i = 0; i < 60; i += 1) await h.clock.advance(30_000);
    const waits = h.states.filter((move) => move.event === "drop").map((move) => move.delay?.seconds ?? -1);
    assert.ok(waits.length >= 60, `${waits.length} waits`);
    assert.ok(waits.every((seconds) => seconds >= 0 && seconds <= 30));
    assert.equal(h.client.state, "reconnecting");
  });

  it("the attempts start over after a welcome that lasted", async () => {
    const h = harness();
    await connected(h);
    h.sockets.last.serverClose(1006);
    await waitOut(h);
    (await h.sockets.opened(2)).serverClose(1006); // never welcomed
    await waitOut(h);
    (await h.sockets.opened(3)).welcome({ heartbeat_interval: 100_000 });
    await h.clock.advance(10_000);
    h.sockets.last.serverClose(1006);
    assert.equal(h.states.at(-1)?.delay?.attempt, 0);
  });

  it("online and visible end a backoff wait at once (retry), without a DOM", async () => {
    const h = harness({ backoff: { random: () => 0.99, base: 20, cap: 30 } });
    await connected(h);
    h.sockets.last.serverClose(1006);
    assert.ok((h.states.at(-1)?.delay?.seconds ?? 0) > 10);
    h.goOnline();
    await flush();
    assert.equal(h.states.at(-1)?.event, "retry");
    assert.equal(h.states.at(-1)?.actor, "timer");
    assert.match(h.states.at(-1)?.reason ?? "", /^online/);
    (await h.sockets.opened(2)).serverClose(1006);
    h.becomeVisible();
    await flush();
    assert.match(h.states.at(-1)?.reason ?? "", /^visible/);
    await h.sockets.opened(3);
  });

  it("a silent server is dropped after three heartbeat intervals", async () => {
    const h = harness();
    await connected(h, 25);
    await h.clock.advance(74_000);
    assert.equal(h.client.state, "connected");
    await h.clock.advance(1000);
    assert.equal(h.states.at(-1)?.closeCode, 4504);
    assert.equal(h.sockets.sockets[0]?.closedByClient?.code, 4504);
  });
});

describe("logout and stop", () => {
  it("logout posts with the bearer token, waits for the server's 4410, and stops: logged out", async () => {
    const h = harness();
    await connected(h);
    h.api.routes.set("POST /api/auth/logout", () => {
      setImmediate(() => h.sockets.last.serverClose(4410, "session closed"));
      return { status: 200, body: { session_id: SESSION_ID, state: "closed" } };
    });
    const stopped = await h.client.logout();
    const [call] = h.api.of("POST /api/auth/logout");
    assert.equal(call?.headers["authorization"], "Bearer at-1");
    assert.equal(call?.headers["x-sessionflow-csrf"], "1");
    assert.equal(call?.credentials, "include");
    assert.equal(stopped.reason, "logged out");
    assert.equal(stopped.closeCode, 4410);
    assert.equal(h.client.state, "stopped");
    assert.deepEqual(h.path().slice(-2), ["connected -logout-> logging_out", "logging_out -end-> stopped"]);
    assert.deepEqual(h.clock.pending(), [], "no timer left behind");
  });

  it("logout with the server unreachable still stops, saying the logout was not confirmed", async () => {
    const h = harness();
    await connected(h);
    h.api.routes.set("POST /api/auth/logout", () => "unreachable");
    const logout = h.client.logout();
    await h.clock.advance(10_000); // the socket is still open: wait for the server's close, not for ever
    const stopped = await logout;
    assert.equal(stopped.reason, "logout not confirmed: server unreachable");
    assert.equal(h.sockets.last.closedByClient?.code, 1000);
    assert.deepEqual(h.clock.pending(), []);
  });

  it("logout with an expired access token refreshes once and logs out", async () => {
    const h = harness();
    await connected(h);
    let first = true;
    h.api.routes.set("POST /api/auth/logout", () => {
      if (first) return (first = false), FakeApi.problem(401, "token_expired");
      setImmediate(() => h.sockets.last.serverClose(4410));
      return { status: 200, body: { session_id: SESSION_ID, state: "closed" } };
    });
    const stopped = await h.client.logout();
    assert.equal(stopped.reason, "logged out");
    assert.deepEqual(h.api.routesCalled.slice(-3), ["POST /api/auth/logout", "POST /api/auth/refresh", "POST /api/auth/logout"]);
    assert.equal(h.api.calls.at(-1)?.headers["authorization"], "Bearer at-2");
  });

  it("stop() closes the socket with 1000 and leaves the session alone", async () => {
    const h = harness();
    await connected(h);
    const why = h.client.stop();
    assert.equal(why.event, "stop");
    assert.equal(h.sockets.last.closedByClient?.code, 1000);
    assert.equal(h.api.of("POST /api/auth/logout").length, 0);
    assert.deepEqual(h.clock.pending(), []);
    await assert.rejects(h.client.connect(), ClientError);
  });
});
