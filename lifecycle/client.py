"""The client machine: what a well-behaved client of sessionflow does, declared like the server's machines.

One instance per client object, driven in-process by the reference client
(``api/client``), never persisted. Happy path: ``logged_out -> logging_in ->
active -> connecting -> connected``. A lost connection waits in
``reconnecting`` for the backoff timer, an expired token goes through
``refreshing`` first; both come back to ``connecting`` for as long as the
session can still be used. ``stopped`` is the one terminal state: logged out,
stopped by the application, or refused for good (the client reports why).

Actors: the application (``client``) logs in, connects, logs out and stops;
the server's answers, messages and close codes (``server``) move the client
on; the backoff timer (``timer``) ends each wait before a reconnect.
"""

from __future__ import annotations

import enum
from datetime import timedelta

from sessionflow.lifecycle.model import Actor, Definition, EventSpec, Timer, TimerPolicy, Transition


class ClientState(enum.StrEnum):
    LOGGED_OUT = "logged_out"
    LOGGING_IN = "logging_in"
    ACTIVE = "active"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    REFRESHING = "refreshing"
    LOGGING_OUT = "logging_out"
    STOPPED = "stopped"


class ClientEvent(enum.StrEnum):
    LOGIN = "login"
    LOGGED_IN = "logged_in"
    CONNECT = "connect"
    WELCOME = "welcome"
    TOKEN_EXPIRING = "token_expiring"
    REFRESHED = "refreshed"
    REAUTHENTICATED = "reauthenticated"
    DROP = "drop"
    THROTTLE = "throttle"
    EXPIRE = "expire"
    RETRY = "retry"
    LOGOUT = "logout"
    END = "end"
    STOP = "stop"


S = ClientState
E = ClientEvent

_SESSION_HELD = (S.ACTIVE, S.CONNECTING, S.CONNECTED, S.RECONNECTING, S.REFRESHING)
_NON_TERMINAL = tuple(state for state in S if state is not S.STOPPED)

CLIENT = Definition(
    name="client",
    states=tuple(S),
    initial=S.LOGGED_OUT,
    terminal=frozenset({S.STOPPED}),
    events={
        spec.name: spec
        for spec in (
            EventSpec(E.LOGIN, frozenset({Actor.CLIENT}), "the application logs in with its credentials"),
            EventSpec(
                E.LOGGED_IN, frozenset({Actor.SERVER}), "login accepted: the server created the session, tokens issued"
            ),
            EventSpec(E.CONNECT, frozenset({Actor.CLIENT}), "the application asks for the live channel"),
            EventSpec(E.WELCOME, frozenset({Actor.SERVER}), "the WebSocket is open and the server said welcome"),
            EventSpec(
                E.TOKEN_EXPIRING,
                frozenset({Actor.SERVER}),
                "the connection's credential expires soon: refresh, then reauth",
            ),
            EventSpec(E.REFRESHED, frozenset({Actor.SERVER}), "the tokens were rotated"),
            EventSpec(
                E.REAUTHENTICATED, frozenset({Actor.SERVER}), "the server took the fresh token for the open connection"
            ),
            EventSpec(
                E.DROP,
                frozenset({Actor.SERVER}),
                "closed with a reconnect code (1001, 4408, 4500, 4503, 4504), lost, or the server is unreachable",
            ),
            EventSpec(E.THROTTLE, frozenset({Actor.SERVER}), "4429 or HTTP 429: reconnect after retry_after"),
            EventSpec(E.EXPIRE, frozenset({Actor.SERVER}), "4419, or the access token was refused as expired"),
            EventSpec(E.RETRY, frozenset({Actor.TIMER}), "the backoff (or retry_after) wait is over"),
            EventSpec(E.LOGOUT, frozenset({Actor.CLIENT}), "the application logs out"),
            EventSpec(
                E.END,
                frozenset({Actor.SERVER}),
                "the session is over or unusable: a stop close code, a refused login or refresh, or logout confirmed",
            ),
            EventSpec(
                E.STOP, frozenset({Actor.CLIENT}), "the application stops the client and leaves the session as it is"
            ),
        )
    },
    transitions=(
        Transition(E.LOGIN, (S.LOGGED_OUT,), S.LOGGING_IN),
        Transition(E.LOGGED_IN, (S.LOGGING_IN,), S.ACTIVE),
        Transition(E.CONNECT, (S.ACTIVE,), S.CONNECTING),
        Transition(E.WELCOME, (S.CONNECTING,), S.CONNECTED),
        Transition(E.TOKEN_EXPIRING, (S.CONNECTED,), None),
        # Rotated tokens keep an active, connected or waiting client where it is; after 4419 they lead to a reconnect.
        Transition(E.REFRESHED, (S.ACTIVE, S.CONNECTED, S.RECONNECTING), None),
        Transition(E.REFRESHED, (S.REFRESHING,), S.RECONNECTING),
        Transition(E.REAUTHENTICATED, (S.CONNECTED,), None),
        Transition(E.DROP, (S.CONNECTING, S.CONNECTED, S.REFRESHING), S.RECONNECTING),
        Transition(E.THROTTLE, (S.CONNECTING, S.CONNECTED), S.RECONNECTING),
        Transition(E.EXPIRE, (S.CONNECTING, S.CONNECTED), S.REFRESHING),
        Transition(E.RETRY, (S.RECONNECTING,), S.CONNECTING),
        Transition(E.LOGOUT, _SESSION_HELD, S.LOGGING_OUT),
        Transition(E.END, (S.LOGGING_IN, *_SESSION_HELD, S.LOGGING_OUT), S.STOPPED),
        Transition(E.STOP, _NON_TERMINAL, S.STOPPED),
    ),
    timers=(
        Timer(
            "backoff",
            E.RETRY,
            frozenset({S.RECONNECTING}),
            timedelta(seconds=0.5),
            TimerPolicy.ON_ENTRY,
            "full jitter: uniform(0, min(30 s, 0.5 s x 2^attempt)), at least retry_after; set by the client per wait",
        ),
    ),
    descriptions={
        S.LOGGED_OUT: "no session yet",
        S.LOGGING_IN: "login sent; the server creates the session",
        S.ACTIVE: "session active, tokens held, not connected",
        S.CONNECTING: "getting a ticket, opening the WebSocket, awaiting welcome",
        S.CONNECTED: "welcomed; answering heartbeats, following transitions",
        S.RECONNECTING: "waiting out the backoff before connecting again",
        S.REFRESHING: "rotating the tokens before reconnecting",
        S.LOGGING_OUT: "logout sent; waiting for the server to close",
        S.STOPPED: "logged out, stopped, or refused for good (terminal)",
    },
)
