/**
 * The inspector page: log in as an admin, then the overview (#/), a session (#/session/<id>) or a search
 * (#/search?user=&state=). One feed serves every view; the views read what it adds up to from Live.
 */

import { Api, ApiError } from "./api.js";
import { byId, clock, h } from "./dom.js";
import { Feed } from "./feed.js";
import { SESSION_MACHINE } from "./generated/machines.js";
import { Live, RESYNC_EVERY } from "./live.js";
import { showOverview } from "./overview.js";
import { showSession } from "./session.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface SessionPage {
  items: { session_id: string; state: string; version: number; username: string | null; created_at: string; updated_at: string }[];
  next: string | null;
}

const api = new Api();
const view = byId<HTMLElement>("view");
const status = byId<HTMLElement>("status");
let live: Live | null = null;
let feed: Feed | null = null;
let leave: () => void = () => undefined;

function say(text: string, kind: "error" | "info" = "info"): void {
  view.replaceChildren(h("p", { class: kind, "data-testid": kind === "error" ? "refused" : "message" }, text));
}

function showLogin(reason = ""): void {
  feed?.stop();
  feed = null;
  live = null;
  document.body.classList.remove("signed-in");
  const username = h("input", { name: "username", autocomplete: "username", required: "", "data-testid": "username" });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: "", "data-testid": "password" });
  const form = h(
    "form",
    { class: "login" },
    h("h2", {}, "Admin login"),
    reason ? h("p", { class: "error", "data-testid": "refused" }, reason) : null,
    h("label", {}, "user ", username),
    h("label", {}, "password ", password),
    h("button", { type: "submit", "data-testid": "login" }, "Log in"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    api
      .login(username.value, password.value)
      .then(() => start())
      .catch((error: Error) => showLogin(error.message));
  });
  view.replaceChildren(form);
}

async function start(): Promise<void> {
  if (api.credentials === null) {
    showLogin();
    return;
  }
  const state = new Live(api);
  let position;
  try {
    position = await state.load();
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) {
      api.logOut();
      showLogin("This page is for admins: that account is not one.");
    } else if (error instanceof ApiError && error.status === 401) {
      showLogin(error.message);
    } else {
      say(`The server did not answer: ${(error as Error).message}`, "error");
    }
    return;
  }
  live = state;
  document.body.classList.add("signed-in");
  byId("who").textContent = api.credentials?.username ?? "";
  feed = new Feed(
    api,
    {
      transitions: (items) => state.transitions(items),
      refusals: (items) => state.refusals(items),
      reload: () => state.load(),
      status: (text, ok) => {
        status.textContent = text;
        status.className = ok ? "live" : "down";
      },
      stopped: (reason) => showLogin(reason),
    },
    position,
  );
  feed.start();
  setInterval(() => void state.load().catch(() => undefined), RESYNC_EVERY);
  await route();
}

async function route(): Promise<void> {
  if (live === null) return;
  leave();
  leave = () => undefined;
  const hash = location.hash.replace(/^#\/?/, "");
  const [path = "", query = ""] = hash.split("?");
  const session = /^session\/(.+)$/.exec(path);
  if (session?.[1] !== undefined) {
    leave = await showSession(view, api, live, decodeURIComponent(session[1]));
  } else if (path === "search") {
    await showSearch(new URLSearchParams(query));
  } else {
    leave = await showOverview(view, live);
  }
}

async function showSearch(params: URLSearchParams): Promise<void> {
  const query = new URLSearchParams();
  for (const name of ["user", "state"]) {
    const value = params.get(name);
    if (value) query.set(name, value);
  }
  let page: SessionPage;
  try {
    page = await api.get<SessionPage>(`/api/admin/sessions?${query}`);
  } catch (error) {
    say((error as Error).message, "error");
    return;
  }
  const rows = page.items.map((s) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: `#/session/${s.session_id}` }, h("code", {}, s.session_id))),
      h("td", {}, s.username ?? ""),
      h("td", {}, s.state),
      h("td", { class: "number" }, String(s.version)),
      h("td", {}, clock(s.created_at)),
      h("td", {}, clock(s.updated_at)),
    ),
  );
  view.replaceChildren(
    h("h2", {}, `Sessions ${[...query].map(([k, v]) => `${k}=${v}`).join(" ")}`),
    rows.length === 0
      ? h("p", { class: "empty", "data-testid": "results" }, "no sessions match")
      : h(
          "table",
          { "data-testid": "results" },
          h("thead", {}, h("tr", {}, ...["session", "user", "state", "version", "created", "updated"].map((t) => h("th", {}, t)))),
          h("tbody", {}, ...rows),
        ),
    page.next === null ? "" : h("p", {}, "newest 50 shown"),
  );
}

function searchForm(): void {
  const form = byId<HTMLFormElement>("search");
  const states = byId<HTMLSelectElement>("search-state");
  states.append(...SESSION_MACHINE.states.map((state) => h("option", { value: state }, state)));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = (byId<HTMLInputElement>("search-text").value ?? "").trim();
    if (UUID.test(text)) {
      location.hash = `#/session/${text.toLowerCase()}`;
      return;
    }
    const query = new URLSearchParams();
    if (text) query.set("user", text);
    if (states.value) query.set("state", states.value);
    location.hash = `#/search?${query}`;
  });
  byId("logout").addEventListener("click", () => {
    api.logOut();
    showLogin();
  });
}

window.addEventListener("hashchange", () => void route());
searchForm();
void start();
