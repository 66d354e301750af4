// The example app: plain ES modules, no framework, no bundler. It imports the built client.
// The API base comes from ?api=http://host:port (default: this page's origin); that origin must be in the
// server's SESSIONFLOW_ALLOWED_ORIGINS when it differs from the page's. The client is on window.sessionflow.

import { SessionClient } from "../dist/index.js";

const api = new URLSearchParams(location.search).get("api") ?? location.origin;
const $ = (id) => document.getElementById(id);
const view = {
  message: $("message"),
  loginForm: $("login-form"),
  sessionState: $("session-state"),
  sessionAccess: $("session-access"),
  socketState: $("socket-state"),
  clientState: $("client-state"),
  log: $("log"),
  login: $("login"),
  logout: $("logout"),
};

/** A new client for each login: a stopped client is done for good (its machine's terminal state). */
function newClient() {
  const client = new SessionClient({ baseUrl: api });
  client.on("state", (move) => {
    const why = [move.closeCode, move.reason].filter((part) => part !== null && part !== "").join(" ");
    const wait = move.delay ? `, next try in ${move.delay.seconds.toFixed(1)} s` : "";
    log("client", `${move.from} -${move.event}-> ${move.to}${why ? ` (${why})` : ""}${wait}`);
    render(client, move);
  });
  client.on("transition", (t) => {
    log("session", `#${t.seq} ${t.from_state} → ${t.to_state} (${t.event} by ${t.actor}${t.replayed ? ", replayed" : ""})`);
    render(client);
  });
  client.on("error", (error) => log("error", `${error.code}: ${error.action}${error.message ? ` (${error.message})` : ""}`));
  client.on("stopped", (why) => {
    log("stopped", why.reason);
    say(stoppedMessage(why), "stopped");
    showLogin(true);
  });
  window.sessionflow = client;
  return client;
}

/** "Logged out", "Session revoked: log in again", ...: the client's reason, for a person. */
function stoppedMessage(why) {
  const text = why.reason || "Stopped";
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function socketStatus(client, move) {
  switch (client.state) {
    case "connected":
      return "open";
    case "connecting":
      return "connecting";
    case "reconnecting":
      return move?.delay ? `reconnecting (waiting ${move.delay.seconds.toFixed(1)} s)` : "reconnecting";
    case "refreshing":
      return "closed (refreshing tokens)";
    default:
      return "closed";
  }
}

function render(client, move) {
  view.clientState.textContent = client.state;
  view.clientState.dataset.state = client.state;
  view.socketState.textContent = socketStatus(client, move);
  view.sessionState.textContent = client.sessionState ?? "-";
  view.sessionState.dataset.state = client.sessionState ?? "";
  view.sessionAccess.textContent = client.sessionAccess ? `(${client.sessionAccess})` : "";
  if (client.state === "connected") say(`Logged in: session ${client.sessionState}`, "info");
}

function say(text, kind) {
  view.message.textContent = text;
  view.message.dataset.kind = kind;
}

function log(kind, text) {
  const item = document.createElement("li");
  item.dataset.kind = kind;
  item.textContent = `${new Date().toLocaleTimeString()} ${kind}: ${text}`;
  view.log.append(item);
  view.log.scrollTop = view.log.scrollHeight;
}

/** The login form while logged out; the logout button while a session is held. */
function showLogin(loggedOut) {
  view.loginForm.hidden = !loggedOut;
  view.logout.hidden = loggedOut;
  view.login.disabled = false;
}

let client = newClient();

view.loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (client.state !== "logged_out") client = newClient();
  view.login.disabled = true;
  say("Logging in…", "info");
  showLogin(false);
  try {
    await client.login({ username: $("username").value, password: $("password").value });
    $("password").value = "";
  } catch (error) {
    const why = error.stopped;
    say(why ? `Login refused: ${why.problem ?? why.reason}` : String(error.message), "error");
    showLogin(true);
  }
});

view.logout.addEventListener("click", async () => {
  view.logout.disabled = true;
  try {
    await client.logout();
  } finally {
    view.logout.disabled = false;
  }
});

// After a reload the access token (page memory only) is gone: the refresh cookie, if any, gets a new one.
say("Resuming…", "info");
client.resume().then(
  () => showLogin(false),
  () => {
    client = newClient();
    say("Logged out", "stopped");
    showLogin(true);
    render(client);
  },
);
