/**
 * How the client reads the server's refusals: WebSocket close codes and HTTP problem details.
 *
 * A port of clients/python/src/sessionflow/client/refusals.py. Close codes are read from the generated
 * `CLOSE_CODES` table, the one the server serves; the client keeps no copy, so a change there changes
 * what the client does.
 *
 * @module
 */

import { CLOSE_CODES } from "./generated/lifecycle.js";
import type { ClientEvent } from "./generated/lifecycle.js";

/** One row of the close-code table. */
export type CloseCodeRow = (typeof CLOSE_CODES)[number];

/** What a close code tells the client to do: stop, reconnect, reconnect_after, new_ticket, refresh, log_in, finish_login. */
export type CloseAction = CloseCodeRow["action"];

/** What each close-code action means for the client machine. */
export const EVENT_FOR_ACTION: Readonly<Record<CloseAction, ClientEvent>> = {
  stop: "end",
  reconnect: "drop",
  reconnect_after: "throttle",
  new_ticket: "drop", // every connect fetches a fresh ticket
  refresh: "expire",
  log_in: "end", // the session is gone: the application logs in again, for a new session
  finish_login: "end",
};

/** What the application should do after a terminal action, in words for a person. */
export const ADVICE: Readonly<Record<CloseAction, string>> = {
  stop: "not retrying",
  reconnect: "reconnecting",
  reconnect_after: "reconnecting later",
  new_ticket: "reconnecting with a new ticket",
  refresh: "refreshing, then reconnecting",
  log_in: "log in again",
  finish_login: "finish logging in",
};

/** No close frame: the connection was lost (browsers report 1006). */
export const ABNORMAL = 1006;
/** The wait (seconds) when a throttle names none. */
export const DEFAULT_RETRY_AFTER = 5;

const BY_CODE: ReadonlyMap<number, CloseCodeRow> = new Map(CLOSE_CODES.map((row) => [row.code, row]));
const RETRY_AFTER_IN_REASON = /retry_after=(\d+(?:\.\d+)?)/;

/** The row of `code`, if the table lists it. */
export function closeRow(code: number): CloseCodeRow | undefined {
  return BY_CODE.get(code);
}

/**
 * The client machine's event for a close code, with its action, from the table shared with the server.
 * Codes the table does not list (1006 lost, 1011, 1012, ...) reconnect with backoff.
 */
export function closeAction(code: number): { event: ClientEvent; action: CloseAction } {
  const action: CloseAction = BY_CODE.get(code)?.action ?? "reconnect";
  return { event: EVENT_FOR_ACTION[action], action };
}

/** The table's name of a close code: `abnormal` for 1006, `unlisted` for any other unknown code. */
export function closeName(code: number): string {
  return BY_CODE.get(code)?.name ?? (code === ABNORMAL ? "abnormal" : "unlisted");
}

/** The human reason a terminal close stops with, e.g. "session revoked: log in again". */
export function closeReason(code: number): string {
  const row = BY_CODE.get(code);
  if (row === undefined) return `connection closed (${code})`;
  return `${row.meaning}: ${ADVICE[row.action]}`;
}

/** The wait a throttling close asks for: the `error` message's `retry_after`, else the close reason's, else 5 s. */
export function closeRetryAfter(reason: string, retryAfter: number | null): number {
  if (retryAfter !== null) return retryAfter;
  const match = RETRY_AFTER_IN_REASON.exec(reason);
  return match?.[1] !== undefined ? Number(match[1]) : DEFAULT_RETRY_AFTER;
}

/** Problem codes of a 401 that a refresh cures (docs/http-api.md#errors). */
export const EXPIRED_PROBLEMS: ReadonlySet<string> = new Set(["token_expired", "session_expired"]);

/** Problem codes of a refused call that mean the session is gone for good: the user logs in again. */
export const GONE_PROBLEMS: ReadonlySet<string> = new Set(["session_closed", "session_revoked"]);

/** An HTTP answer reduced to what the client reads: status, problem code, JSON body, `Retry-After`. */
export interface Answer {
  readonly status: number;
  /** The RFC 9457 problem `code`, when the body is a problem. */
  readonly problem: string | null;
  /** The parsed JSON body (an object), or null. */
  readonly body: Readonly<Record<string, unknown>> | null;
  /** The `Retry-After` header, in seconds, when it is a number. */
  readonly retryAfterHeader: number | null;
}

/** Read a fetch `Response` into an {@link Answer}; a body that is not a JSON object reads as null. */
export async function readAnswer(response: Response): Promise<Answer> {
  let body: Record<string, unknown> | null = null;
  try {
    const parsed: unknown = JSON.parse(await response.text());
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) {
      body = parsed as Record<string, unknown>;
    }
  } catch {
    body = null;
  }
  const code = body?.["code"];
  const header = response.headers.get("retry-after");
  const retryAfterHeader = header !== null && header.trim() !== "" && Number.isFinite(Number(header)) ? Number(header) : null;
  return { status: response.status, problem: typeof code === "string" ? code : null, body, retryAfterHeader };
}

/** The wait a throttling answer asks for: its `Retry-After` header, else its body's `retry_after`, else 5 s. */
export function answerRetryAfter(answer: Answer): number {
  if (answer.retryAfterHeader !== null) return answer.retryAfterHeader;
  const value = answer.body?.["retry_after"];
  const seconds = typeof value === "number" ? value : typeof value === "string" ? Number(value) : NaN;
  return Number.isFinite(seconds) ? seconds : DEFAULT_RETRY_AFTER;
}
