/**
 * One session: its path on the diagram, its timeline, connections and timers, allowed events, the refusals
 * it met, and a revoke button. It reads GET /api/inspector/sessions/{id} again whenever the feed shows the
 * session or one of its connections move, so the page always shows what the store holds.
 */
import { ApiError } from "./api.js";
import { Diagram } from "./diagram.js";
import { clock, h, relative } from "./dom.js";
import { CONNECTION_MACHINE, SESSION_MACHINE } from "./generated/machines.js";
function table(testid, headings, rows, empty) {
    if (rows.length === 0)
        return h("p", { class: "empty", "data-testid": testid }, empty);
    return h("table", { "data-testid": testid }, h("thead", {}, h("tr", {}, ...headings.map((heading) => h("th", {}, heading)))), h("tbody", {}, ...rows));
}
function due(timer) {
    return h("li", {}, h("b", {}, timer.name), " ", clock(timer.due_at), " ", h("span", { class: "due", "data-due": timer.due_at ?? "" }, relative(timer.due_at)));
}
export async function showSession(root, api, live, id) {
    root.replaceChildren(h("p", { class: "loading" }, "loading…"));
    let data;
    try {
        data = await api.get(`/api/inspector/sessions/${encodeURIComponent(id)}`);
    }
    catch (error) {
        const text = error instanceof ApiError && error.status === 404 ? `no session ${id}` : String(error.message);
        root.replaceChildren(h("p", { class: "error", "data-testid": "session-error" }, text));
        return () => undefined;
    }
    root.replaceChildren();
    const header = h("section", { class: "session-head" });
    const pathSection = h("section", { class: "machine path" }, h("h2", {}, "Its path on the session machine"));
    const details = h("div", { class: "details" });
    root.append(header, pathSection, details);
    const diagram = await Diagram.load(SESSION_MACHINE, pathSection);
    const render = (session) => {
        const ended = SESSION_MACHINE.terminal.includes(session.state);
        const revoke = h("button", { type: "button", class: "danger", "data-testid": "revoke" }, "Revoke");
        revoke.toggleAttribute("disabled", ended);
        let armed = false;
        revoke.addEventListener("click", () => {
            if (!armed) {
                armed = true;
                revoke.textContent = "Revoke: click again to confirm";
                setTimeout(() => {
                    armed = false;
                    revoke.textContent = "Revoke";
                }, 5000);
                return;
            }
            revoke.toggleAttribute("disabled", true);
            api
                .post(`/api/admin/sessions/${session.session_id}/revoke`, { reason: "revoked from the inspector" })
                .then(() => refresh())
                .catch((error) => header.append(h("p", { class: "error" }, error.message)));
        });
        header.replaceChildren(h("h2", {}, "Session ", h("code", { "data-testid": "session-id" }, session.session_id)), h("p", {}, "user ", h("b", { "data-testid": "session-user" }, session.username ?? "(none)"), " · state ", h("b", { "data-testid": "session-state", class: `state ${session.state}` }, session.state), ` · version ${session.version} · created ${clock(session.created_at)} · updated ${clock(session.updated_at)} `, revoke));
        diagram.drawPath(session.history.map((e) => ({ from: e.from_state, to: e.to_state })), session.state);
        const live = session.connections.filter((c) => !CONNECTION_MACHINE.terminal.includes(c.state));
        details.replaceChildren(h("section", { class: "wide" }, h("h3", {}, "Timeline"), table("timeline", ["seq", "time", "event", "actor", "from → to", "request id", "detail"], session.history.map((e) => h("tr", { "data-seq": String(e.seq) }, h("td", { class: "number" }, String(e.seq)), h("td", { "data-at": e.at }, clock(e.at)), h("td", { class: "event" }, e.event), h("td", {}, e.actor), h("td", {}, `${e.from_state} → ${e.to_state}`), h("td", {}, h("code", {}, e.request_id ?? "")), h("td", { class: "detail" }, Object.entries(e.detail ?? {}).map(([k, v]) => `${k}: ${String(v)}`).join(", ")))), "no transitions yet")), h("section", {}, h("h3", {}, "Timers"), h("ul", { "data-testid": "timers" }, ...session.timers.filter((t) => t.due_at !== null).map(due))), h("section", {}, h("h3", {}, "Allowed events"), h("ul", { "data-testid": "allowed-events" }, ...session.allowed_events.map((a) => h("li", {}, h("b", {}, a.event), ` (${a.actors.join(", ")})`)))), h("section", { class: "wide" }, h("h3", {}, `Connections (${live.length} live)`), table("connections", ["connection", "state", "opened", "last heartbeat", "timers", "closed with"], session.connections.map((c) => h("tr", { class: c.state, "data-state": c.state }, h("td", {}, h("code", {}, c.id.slice(0, 8))), h("td", {}, c.state), h("td", {}, clock(c.created_at)), h("td", {}, clock(c.last_heartbeat_at)), h("td", {}, h("ul", {}, ...[{ name: "handshake", due_at: c.handshake_due_at }, { name: "heartbeat", due_at: c.heartbeat_due_at }].filter((t) => t.due_at !== null).map(due))), h("td", {}, c.close_code === null ? "" : `${c.close_code} ${c.close_reason ?? ""}`))), "no connections")), h("section", { class: "wide" }, h("h3", {}, "Refusals"), table("refusals", ["time", "machine", "event", "in state", "code", "reason", "request id"], session.refusals.map((r) => h("tr", {}, h("td", {}, clock(r.at)), h("td", {}, r.machine), h("td", {}, r.event), h("td", {}, r.state), h("td", {}, h("code", {}, r.code)), h("td", {}, r.reason), h("td", {}, h("code", {}, r.request_id ?? "")))), "no refusals")));
    };
    let pending = null;
    const refresh = () => {
        if (pending !== null)
            return;
        pending = setTimeout(() => {
            pending = null;
            api
                .get(`/api/inspector/sessions/${data.session_id}`)
                .then((fresh) => {
                data = fresh;
                render(fresh);
            })
                .catch(() => undefined); // the next move tries again
        }, 100);
    };
    render(data);
    const connections = () => new Set(data.connections.map((c) => c.id));
    const unsubscribe = live.subscribe((transitions, refusals) => {
        const mine = connections();
        if (transitions.some((t) => t.session_id === data.session_id) ||
            refusals.some((r) => r.id === data.session_id || mine.has(r.id))) {
            refresh();
        }
    });
    const ticking = setInterval(() => {
        for (const element of root.querySelectorAll("[data-due]")) {
            element.textContent = relative(element.dataset.due || null);
        }
    }, 1000);
    return () => {
        unsubscribe();
        clearInterval(ticking);
        if (pending !== null)
            clearTimeout(pending);
    };
}
