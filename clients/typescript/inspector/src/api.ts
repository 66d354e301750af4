/**
 * The inspector's calls to its own server: an admin logs in (body mode: the tokens stay in this tab's
 * sessionStorage), and every read carries the access token, refreshed once when it is refused as expired.
 */

const STORE = "sessionflow-inspector";

export interface Credentials {
  session_id: string;
  access_token: string;
  refresh_token: string;
  username: string;
}

/** A problem-details answer (RFC 9457), or a failure to reach the server. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, detail: string) {
    super(detail);
  }
}

export class Api {
  credentials: Credentials | null;

  constructor(private readonly storage: Storage = sessionStorage) {
    const saved = storage.getItem(STORE);
    this.credentials = saved === null ? null : (JSON.parse(saved) as Credentials);
  }

  async login(username: string, password: string): Promise<void> {
    const body = await this.request("POST", "/api/auth/login", { username, password }, false);
    this.remember({ ...(body as Omit<Credentials, "username">), username });
  }

  logOut(): void {
    const credentials = this.credentials;
    this.forget();
    if (credentials !== null) {
      void fetch("/api/auth/logout", { method: "POST", headers: { authorization: `Bearer ${credentials.access_token}` } });
    }
  }

  async get<T>(path: string): Promise<T> {
    return (await this.request("GET", path)) as T;
  }

  async post<T>(path: string, body: unknown = undefined): Promise<T> {
    return (await this.request("POST", path, body)) as T;
  }

  /** A single-use ticket for a WebSocket of this session (the feed). */
  async ticket(): Promise<string> {
    const credentials = this.require();
    const body = await this.post<{ ticket: string }>(`/api/session/${credentials.session_id}/ws-ticket`);
    return body.ticket;
  }

  /** Rotate the tokens; false when the session can no longer be refreshed (log in again). */
  async refresh(): Promise<boolean> {
    const credentials = this.credentials;
    if (credentials === null) return false;
    try {
      const body = await this.request("POST", "/api/auth/refresh", { refresh_token: credentials.refresh_token }, false);
      this.remember({ ...credentials, ...(body as Partial<Credentials>) });
      return true;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        this.forget();
        return false;
      }
      throw error;
    }
  }

  private async request(method: string, path: string, body?: unknown, authorized = true, retried = false): Promise<unknown> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (authorized) headers.authorization = `Bearer ${this.require().access_token}`;
    let response: Response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
    } catch {
      throw new ApiError(0, "unreachable", "the server did not answer");
    }
    const text = await response.text();
    const data: unknown = text ? JSON.parse(text) : null;
    if (response.ok) return data;
    const problem = (data ?? {}) as { code?: string; detail?: string; title?: string };
    const code = problem.code ?? String(response.status);
    if (authorized && !retried && response.status === 401 && ["token_expired", "session_expired"].includes(code)) {
      if (await this.refresh()) return this.request(method, path, body, authorized, true);
    }
    if (response.status === 401) this.forget();
    throw new ApiError(response.status, code, problem.detail ?? problem.title ?? response.statusText);
  }

  private require(): Credentials {
    if (this.credentials === null) throw new ApiError(401, "credentials_missing", "log in first");
    return this.credentials;
  }

  private remember(credentials: Credentials): void {
    this.credentials = credentials;
    this.storage.setItem(STORE, JSON.stringify(credentials));
  }

  private forget(): void {
    this.credentials = null;
    this.storage.removeItem(STORE);
  }
}
