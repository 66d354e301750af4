/**
 * The inspector's calls to its own server: an admin logs in (body mode: the tokens stay in this tab's
 * sessionStorage), and every read carries the access token, refreshed once when it is refused as expired.
 */
const STORE = "sessionflow-inspector";
/** A problem-details answer (RFC 9457), or a failure to reach the server. */
export class ApiError extends Error {
    status;
    code;
    constructor(status, code, detail) {
        super(detail);
        this.status = status;
        this.code = code;
    }
}
export class Api {
    storage;
    credentials;
    constructor(storage = sessionStorage) {
        this.storage = storage;
        const saved = storage.getItem(STORE);
        this.credentials = saved === null ? null : JSON.parse(saved);
    }
    async login(username, password) {
        const body = await this.request("POST", "/api/auth/login", { username, password }, false);
        this.remember({ ...body, username });
    }
    logOut() {
        const credentials = this.credentials;
        this.forget();
        if (credentials !== null) {
            void fetch("/api/auth/logout", { method: "POST", headers: { authorization: `Bearer ${credentials.access_token}` } });
        }
    }
    async get(path) {
        return (await this.request("GET", path));
    }
    async post(path, body = undefined) {
        return (await this.request("POST", path, body));
    }
    /** A single-use ticket for a WebSocket of this session (the feed). */
    async ticket() {
        const credentials = this.require();
        const body = await this.post(`/api/session/${credentials.session_id}/ws-ticket`);
        return body.ticket;
    }
    /** Rotate the tokens; false when the session can no longer be refreshed (log in again). */
    async refresh() {
        const credentials = this.credentials;
        if (credentials === null)
            return false;
        try {
            const body = await this.request("POST", "/api/auth/refresh", { refresh_token: credentials.refresh_token }, false);
            this.remember({ ...credentials, ...body });
            return true;
        }
        catch (error) {
            if (error instanceof ApiError && error.status === 401) {
                this.forget();
                return false;
            }
            throw error;
        }
    }
    async request(method, path, body, authorized = true, retried = false) {
        const headers = { accept: "application/json" };
        if (body !== undefined)
            headers["content-type"] = "application/json";
        if (authorized)
            headers.authorization = `Bearer ${this.require().access_token}`;
        let response;
        try {
            response = await fetch(path, {
                method,
                headers,
                body: body === undefined ? null : JSON.stringify(body),
                signal: AbortSignal.timeout(10_000),
            });
        }
        catch {
            throw new ApiError(0, "unreachable", "the server did not answer");
        }
        const text = await response.text();
        const data = text ? JSON.parse(text) : null;
        if (response.ok)
            return data;
        const problem = (data ?? {});
        const code = problem.code ?? String(response.status);
        if (authorized && !retried && response.status === 401 && ["token_expired", "session_expired"].includes(code)) {
            if (await this.refresh())
                return this.request(method, path, body, authorized, true);
        }
        if (response.status === 401)
            this.forget();
        throw new ApiError(response.status, code, problem.detail ?? problem.title ?? response.statusText);
    }
    require() {
        if (this.credentials === null)
            throw new ApiError(401, "credentials_missing", "log in first");
        return this.credentials;
    }
    remember(credentials) {
        this.credentials = credentials;
        this.storage.setItem(STORE, JSON.stringify(credentials));
    }
    forget() {
        this.credentials = null;
        this.storage.removeItem(STORE);
    }
}
