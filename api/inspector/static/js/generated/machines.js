// Generated from the lifecycle definitions by `sessionflow diagrams`. Do not edit.
// The machines the server runs (lifecycle/session.py, lifecycle/connection.py), for the inspector page.
export const SESSION_MACHINE = {
    "name": "session",
    "initial": "anonymous",
    "terminal": [
        "closed",
        "revoked"
    ],
    "states": [
        "anonymous",
        "authenticated",
        "session_active",
        "ws_connected",
        "ws_disconnected",
        "session_expired",
        "closed",
        "revoked"
    ],
    "events": {
        "authenticate": {
            "firedBy": [
                "server"
            ],
            "description": "login verified the credentials"
        },
        "activate": {
            "firedBy": [
                "server"
            ],
            "description": "login issued fresh tokens"
        },
        "connect": {
            "firedBy": [
                "server"
            ],
            "description": "first live WebSocket of the session opened"
        },
        "disconnect": {
            "firedBy": [
                "server"
            ],
            "description": "last live WebSocket closed cleanly"
        },
        "drop": {
            "firedBy": [
                "server"
            ],
            "description": "last live WebSocket lost abnormally"
        },
        "grace_elapsed": {
            "firedBy": [
                "timer"
            ],
            "description": "nobody reconnected within the grace period"
        },
        "expire": {
            "firedBy": [
                "timer"
            ],
            "description": "idle timeout"
        },
        "refresh": {
            "firedBy": [
                "client"
            ],
            "description": "current refresh token presented; tokens rotated"
        },
        "logout": {
            "firedBy": [
                "client"
            ],
            "description": "the holder logged out"
        },
        "revoke": {
            "firedBy": [
                "admin",
                "server"
            ],
            "description": "refresh-token reuse, user disabled or admin action"
        },
        "end": {
            "firedBy": [
                "timer"
            ],
            "description": "absolute lifetime, login window or refresh window over"
        }
    },
    "transitions": [
        {
            "event": "authenticate",
            "sources": [
                "anonymous"
            ],
            "dest": "authenticated"
        },
        {
            "event": "activate",
            "sources": [
                "authenticated"
            ],
            "dest": "session_active"
        },
        {
            "event": "connect",
            "sources": [
                "session_active",
                "ws_disconnected"
            ],
            "dest": "ws_connected"
        },
        {
            "event": "disconnect",
            "sources": [
                "ws_connected"
            ],
            "dest": "session_active"
        },
        {
            "event": "drop",
            "sources": [
                "ws_connected"
            ],
            "dest": "ws_disconnected"
        },
        {
            "event": "grace_elapsed",
            "sources": [
                "ws_disconnected"
            ],
            "dest": "session_active"
        },
        {
            "event": "expire",
            "sources": [
                "session_active",
                "ws_connected",
                "ws_disconnected"
            ],
            "dest": "session_expired"
        },
        {
            "event": "refresh",
            "sources": [
                "session_expired"
            ],
            "dest": "session_active"
        },
        {
            "event": "refresh",
            "sources": [
                "session_active",
                "ws_connected",
                "ws_disconnected"
            ],
            "dest": null
        },
        {
            "event": "logout",
            "sources": [
                "anonymous",
                "authenticated",
                "session_active",
                "ws_connected",
                "ws_disconnected",
                "session_expired"
            ],
            "dest": "closed"
        },
        {
            "event": "revoke",
            "sources": [
                "anonymous",
                "authenticated",
                "session_active",
                "ws_connected",
                "ws_disconnected",
                "session_expired"
            ],
            "dest": "revoked"
        },
        {
            "event": "end",
            "sources": [
                "anonymous",
                "authenticated",
                "session_active",
                "ws_connected",
                "ws_disconnected",
                "session_expired"
            ],
            "dest": "closed"
        }
    ],
    "timers": [
        {
            "name": "login_window",
            "event": "end",
            "armedIn": [
                "anonymous",
                "authenticated"
            ],
            "defaultSeconds": 1800.0,
            "policy": "on_activity"
        },
        {
            "name": "idle",
            "event": "expire",
            "armedIn": [
                "session_active",
                "ws_connected",
                "ws_disconnected"
            ],
            "defaultSeconds": 1800.0,
            "policy": "on_activity"
        },
        {
            "name": "grace",
            "event": "grace_elapsed",
            "armedIn": [
                "ws_disconnected"
            ],
            "defaultSeconds": 60.0,
            "policy": "on_entry"
        },
        {
            "name": "refresh_window",
            "event": "end",
            "armedIn": [
                "session_expired"
            ],
            "defaultSeconds": 604800.0,
            "policy": "on_entry"
        },
        {
            "name": "lifetime",
            "event": "end",
            "armedIn": [
                "anonymous",
                "authenticated",
                "session_active",
                "session_expired",
                "ws_connected",
                "ws_disconnected"
            ],
            "defaultSeconds": 2592000.0,
            "policy": "on_entry"
        }
    ]
};
export const CONNECTION_MACHINE = {
    "name": "connection",
    "initial": "connecting",
    "terminal": [
        "closed",
        "dropped",
        "rejected"
    ],
    "states": [
        "connecting",
        "open",
        "closed",
        "rejected",
        "dropped"
    ],
    "events": {
        "accept": {
            "firedBy": [
                "server"
            ],
            "description": "credentials and session state accepted"
        },
        "reject": {
            "firedBy": [
                "server",
                "timer"
            ],
            "description": "refused with a close code, or handshake too slow"
        },
        "close": {
            "firedBy": [
                "server"
            ],
            "description": "clean close by either side"
        },
        "drop": {
            "firedBy": [
                "server",
                "timer"
            ],
            "description": "abnormal close, or heartbeats missed"
        }
    },
    "transitions": [
        {
            "event": "accept",
            "sources": [
                "connecting"
            ],
            "dest": "open"
        },
        {
            "event": "reject",
            "sources": [
                "connecting"
            ],
            "dest": "rejected"
        },
        {
            "event": "close",
            "sources": [
                "open"
            ],
            "dest": "closed"
        },
        {
            "event": "drop",
            "sources": [
                "open"
            ],
            "dest": "dropped"
        }
    ],
    "timers": [
        {
            "name": "handshake",
            "event": "reject",
            "armedIn": [
                "connecting"
            ],
            "defaultSeconds": 10.0,
            "policy": "on_entry"
        },
        {
            "name": "heartbeat",
            "event": "drop",
            "armedIn": [
                "open"
            ],
            "defaultSeconds": 75.0,
            "policy": "on_activity"
        }
    ]
};
