import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { CLOSE_CODES } from "../src/generated/lifecycle.js";
import { step } from "../src/machine.js";
import {
  EVENT_FOR_ACTION,
  answerRetryAfter,
  closeAction,
  closeName,
  closeReason,
  closeRetryAfter,
  readAnswer,
} from "../src/refusals.js";

/** The machine event each action must lead to, written out independently of EVENT_FOR_ACTION. */
const EXPECTED = {
  stop: "end",
  reconnect: "drop",
  reconnect_after: "throttle",
  new_ticket: "drop",
  refresh: "expire",
  log_in: "end",
  finish_login: "end",
} as const;

describe("close codes", () => {
  it("maps every code of the generated table to the machine event of its action", () => {
    for (const row of CLOSE_CODES) {
      const { event, action } = closeAction(row.code);
      assert.equal(action, row.action, `${row.code}`);
      assert.equal(event, EXPECTED[row.action], `${row.code} ${row.name}`);
      assert.equal(event === "end", !row.retry, `${row.code}: retry=${row.retry} but ${event}`);
      // and the machine takes that event from a connected client, as the server's
      assert.ok(step("connected", event, "server"));
    }
    assert.deepEqual(Object.keys(EVENT_FOR_ACTION).sort(), Object.keys(EXPECTED).sort());
  });

  it("reconnects with backoff on codes the table does not list (1006 lost, 1011, 1012, 4999)", () => {
    for (const code of [1005, 1006, 1011, 1012, 4999]) {
      assert.deepEqual(closeAction(code), { event: "drop", action: "reconnect" });
    }
    assert.equal(closeName(1006), "abnormal");
    assert.equal(closeName(1011), "unlisted");
  });

  it("says in words why a terminal code stops the client", () => {
    assert.equal(closeReason(4403), "session revoked: log in again");
    assert.equal(closeReason(4410), "session closed (logout, end of life): log in again");
    assert.equal(closeReason(4409), "session not connectable in its state (e.g. anonymous): finish logging in");
    assert.match(closeReason(4400), /not retrying/);
  });

  it("reads the wait of a throttle: the error message's retry_after, else the close reason's, else 5 s", () => {
    assert.equal(closeRetryAfter("too many", 12), 12);
    assert.equal(closeRetryAfter("too many; retry_after=3.5", null), 3.5);
    assert.equal(closeRetryAfter("too many", null), 5);
  });
});

describe("HTTP answers", () => {
  it("reads the problem code and the Retry-After header, else the body's retry_after", async () => {
    const limited = await readAnswer(
      new Response(JSON.stringify({ code: "rate_limited", retry_after: 9 }), { status: 429, headers: { "Retry-After": "30" } }),
    );
    assert.equal(limited.problem, "rate_limited");
    assert.equal(answerRetryAfter(limited), 30);
    const bodyOnly = await readAnswer(new Response(JSON.stringify({ code: "rate_limited", retry_after: 9 }), { status: 429 }));
    assert.equal(answerRetryAfter(bodyOnly), 9);
    const notJson = await readAnswer(new Response("<html>bad gateway</html>", { status: 502 }));
    assert.equal(notJson.problem, null);
    assert.equal(notJson.body, null);
    assert.equal(answerRetryAfter(notJson), 5);
  });
});
