/**
 * A fake sessionflow HTTP API behind an injectable `fetch`: records every call (method, route, headers,
 * body, credentials) and answers login, refresh, ticket and logout like the server, or as a test overrides.
 */

export interface Call {
  method: string;
  /** The route, with the session id as `{id}`: `POST /api/session/{id}/ws-ticket`. */
  route: string;
  headers: Record<string, string>;
  body: Record<string, unknown> | null;
  credentials: string | undefined;
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** A route handler: a reply, or `"unreachable"` for a network failure. */
export type Handler = (call: Call) => Reply | "unreachable" | Promise<Reply | "unreachable">;

export const SESSION_ID = "5e551071-0000-4000-8000-000000000001";

export class FakeApi {
  readonly calls: Call[] = [];
  readonly routes = new Map<string, Handler>();
  /** Access tokens issued so far. */
  issued = 0;
  /** Seconds each access token lives. */
  lifetime = 900;

  constructor() {
    this.routes.set("POST /api/auth/login", (call) => this.tokens(call.body?.["refresh_cookie"] === true));
    this.routes.set("POST /api/auth/refresh", (call) => this.tokens(call.body === null));
    this.routes.set("POST /api/session/{id}/ws-ticket", () => ({ status: 201, body: { ticket: `sft_${this.calls.length}`, expires_in: 30 } }));
    this.routes.set("POST /api/auth/logout", () => ({ status: 200, body: { session_id: SESSION_ID, state: "closed" } }));
  }

  /** A token answer; `cookie`: the refresh token travels in the cookie (null in the body). */
  tokens(cookie: boolean): Reply {
    this.issued += 1;
    return {
      status: 200,
      body: {
        session_id: SESSION_ID,
        state: "session_active",
        access_token: `at-${this.issued}`,
        refresh_token: cookie ? null : `rt-${this.issued}`,
        token_type: "Bearer",
        expires_in: this.lifetime,
        refresh_expires_in: 604800,
      },
    };
  }

  /** A problem-details answer. */
  static problem(status: number, code: string, headers: Record<string, string> = {}): Reply {
    return { status, body: { type: `urn:sessionflow:problem:${code}`, code, title: code }, headers };
  }

  /** Calls of one route, e.g. `POST /api/auth/refresh`. */
  of(route: string): Call[] {
    return this.calls.filter((call) => call.route === route);
  }

  /** The routes called, in order. */
  get routesCalled(): string[] {
    return this.calls.map((call) => call.route);
  }

  fetch = async (input: string, init: RequestInit): Promise<Response> => {
    const url = new URL(input);
    const route = `${init.method ?? "GET"} ${url.pathname.replace(/^\/api\/session\/[^/]+\//, "/api/session/{id}/")}`;
    const headers = Object.fromEntries(Object.entries((init.headers ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v]));
    const body = typeof init.body === "string" ? (JSON.parse(init.body) as Record<string, unknown>) : null;
    const call: Call = { method: init.method ?? "GET", route, headers, body, credentials: init.credentials };
    this.calls.push(call);
    const handler = this.routes.get(route);
    const reply = handler !== undefined ? await handler(call) : FakeApi.problem(404, "not_found");
    if (reply === "unreachable") throw new TypeError("fetch failed");
    return new Response(reply.body === undefined ? null : JSON.stringify(reply.body), {
      status: reply.status,
      headers: { "content-type": "application/json", ...reply.headers },
    });
  };
}

/** A promise the test resolves when it wants (to hold an answer back). */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
