// Generated from the lifecycle definitions by `sessionflow diagrams`. Do not edit.
// The client machine (lifecycle/client.py), what each session state allows (lifecycle/session.py)
// and the WebSocket close codes (lifecycle/protocol.py), as the server serves them.

export type ClientState = "logged_out" | "logging_in" | "active" | "connecting" | "connected" | "reconnecting" | "refreshing" | "logging_out" | "stopped";

export type ClientEvent = "login" | "logged_in" | "connect" | "welcome" | "token_expiring" | "refreshed" | "reauthenticated" | "drop" | "throttle" | "expire" | "retry" | "logout" | "end" | "stop";

export const CLIENT_MACHINE = {
  "name": "client",
  "initial": "logged_out",
  "terminal": [
    "stopped"
  ],
  "states": [
    "logged_out",
    "logging_in",
    "active",
    "connecting",
    "connected",
    "reconnecting",
    "refreshing",
    "logging_out",
    "stopped"
  ],
  "events": {
    "login": {
      "firedBy": [
        "client"
      ],
      "description": "the application logs in with its credentials"
    },
    "logged_in": {
      "firedBy": [
        "server"
      ],
      "description": "login accepted: the server created the session, tokens issued"
    },
    "connect": {
      "firedBy": [
        "client"
      ],
      "description": "the application asks for the live channel"
    },
    "welcome": {
      "firedBy": [
        "server"
      ],
      "description": "the WebSocket is open and the server said welcome"
    },
    "token_expiring": {
      "firedBy": [
        "server"
      ],
      "description": "the connection's credential expires soon: refresh, then reauth"
    },
    "refreshed": {
      "firedBy": [
        "server"
      ],
      "description": "the tokens were rotated"
    },
    "reauthenticated": {
      "firedBy": [
        "server"
      ],
      "description": "the server took the fresh token for the open connection"
    },
    "drop": {
      "firedBy": [
        "server"
      ],
      "description": "closed with a reconnect code (1001, 4408, 4500, 4503, 4504), lost, or the server is unreachable"
    },
    "throttle": {
      "firedBy": [
        "server"
      ],
      "description": "4429 or HTTP 429: reconnect after retry_after"
    },
    "expire": {
      "firedBy": [
        "server"
      ],
      "description": "4419, or the access token was refused as expired"
    },
    "retry": {
      "firedBy": [
        "timer"
      ],
      "description": "the backoff (or retry_after) wait is over"
    },
    "logout": {
      "firedBy": [
        "client"
      ],
      "description": "the application logs out"
    },
    "end": {
      "firedBy": [
        "server"
      ],
      "description": "the session is over or unusable: a stop close code, a refused login or refresh, or logout confirmed"
    },
    "stop": {
      "firedBy": [
        "client"
      ],
      "description": "the application stops the client and leaves the session as it is"
    }
  },
  "transitions": [
    {
      "event": "login",
      "sources": [
        "logged_out"
      ],
      "dest": "logging_in"
    },
    {
      "event": "logged_in",
      "sources": [
        "logging_in"
      ],
      "dest": "active"
    },
    {
      "event": "connect",
      "sources": [
        "active"
      ],
      "dest": "connecting"
    },
    {
      "event": "welcome",
      "sources": [
        "connecting"
      ],
      "dest": "connected"
    },
    {
      "event": "token_expiring",
      "sources": [
        "connected"
      ],
      "dest": null
    },
    {
      "event": "refreshed",
      "sources": [
        "active",
        "connected",
        "reconnecting"
      ],
      "dest": null
    },
    {
      "event": "refreshed",
      "sources": [
        "refreshing"
      ],
      "dest": "reconnecting"
    },
    {
      "event": "reauthenticated",
      "sources": [
        "connected"
      ],
      "dest": null
    },
    {
      "event": "drop",
      "sources": [
        "connecting",
        "connected",
        "refreshing"
      ],
      "dest": "reconnecting"
    },
    {
      "event": "throttle",
      "sources": [
        "connecting",
        "connected"
      ],
      "dest": "reconnecting"
    },
    {
      "event": "expire",
      "sources": [
        "connecting",
        "connected"
      ],
      "dest": "refreshing"
    },
    {
      "event": "retry",
      "sources": [
        "reconnecting"
      ],
      "dest": "connecting"
    },
    {
      "event": "logout",
      "sources": [
        "active",
        "connecting",
        "connected",
        "reconnecting",
        "refreshing"
      ],
      "dest": "logging_out"
    },
    {
      "event": "end",
      "sources": [
        "logging_in",
        "active",
        "connecting",
        "connected",
        "reconnecting",
        "refreshing",
        "logging_out"
      ],
      "dest": "stopped"
    },
    {
      "event": "stop",
      "sources": [
        "logged_out",
        "logging_in",
        "active",
        "connecting",
        "connected",
        "reconnecting",
        "refreshing",
        "logging_out"
      ],
      "dest": "stopped"
    }
  ],
  "timers": [
    {
      "name": "backoff",
      "event": "retry",
      "armedIn": [
        "reconnecting"
      ],
      "defaultSeconds": 0.5,
      "policy": "on_entry"
    }
  ]
} as const;

/** What the holder of a session may do in each session state (docs/machines.md). */
export const SESSION_ACCESS = {
  "anonymous": "login_pending",
  "authenticated": "login_pending",
  "session_active": "usable",
  "ws_connected": "usable",
  "ws_disconnected": "usable",
  "session_expired": "refreshable",
  "closed": "ended",
  "revoked": "revoked"
} as const;

/** The WebSocket close codes and what a client should do on each (docs/protocol.md). */
export const CLOSE_CODES = [
  {
    "code": 1000,
    "name": "normal",
    "meaning": "normal close (client or logout)",
    "action": "stop",
    "retry": false
  },
  {
    "code": 1001,
    "name": "going_away",
    "meaning": "server going away",
    "action": "reconnect",
    "retry": true
  },
  {
    "code": 1008,
    "name": "policy_violation",
    "meaning": "policy violation (Origin not allowed)",
    "action": "stop",
    "retry": false
  },
  {
    "code": 1009,
    "name": "message_too_big",
    "meaning": "message too big",
    "action": "stop",
    "retry": false
  },
  {
    "code": 4400,
    "name": "malformed_message",
    "meaning": "malformed message (client bug)",
    "action": "stop",
    "retry": false
  },
  {
    "code": 4401,
    "name": "unauthorized",
    "meaning": "missing, invalid or forged credentials",
    "action": "log_in",
    "retry": false
  },
  {
    "code": 4403,
    "name": "revoked",
    "meaning": "session revoked",
    "action": "log_in",
    "retry": false
  },
  {
    "code": 4406,
    "name": "forbidden",
    "meaning": "authenticated, but without the role this needs (the inspector's feed: admin)",
    "action": "stop",
    "retry": false
  },
  {
    "code": 4408,
    "name": "ticket_expired",
    "meaning": "authentication or ticket expired before use",
    "action": "new_ticket",
    "retry": true
  },
  {
    "code": 4409,
    "name": "not_connectable",
    "meaning": "session not connectable in its state (e.g. anonymous)",
    "action": "finish_login",
    "retry": false
  },
  {
    "code": 4410,
    "name": "session_closed",
    "meaning": "session closed (logout, end of life)",
    "action": "log_in",
    "retry": false
  },
  {
    "code": 4419,
    "name": "session_expired",
    "meaning": "token or session expired, refreshable",
    "action": "refresh",
    "retry": true
  },
  {
    "code": 4429,
    "name": "too_many",
    "meaning": "too many connections or attempts",
    "action": "reconnect_after",
    "retry": true
  },
  {
    "code": 4500,
    "name": "server_error",
    "meaning": "server error",
    "action": "reconnect",
    "retry": true
  },
  {
    "code": 4503,
    "name": "store_unavailable",
    "meaning": "store unavailable",
    "action": "reconnect",
    "retry": true
  },
  {
    "code": 4504,
    "name": "heartbeat_timeout",
    "meaning": "heartbeat timeout",
    "action": "reconnect",
    "retry": true
  }
] as const;
