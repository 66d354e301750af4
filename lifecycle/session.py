"""The session machine: one instance per session row (docs/machines.md).

Happy path: ``anonymous -> authenticated -> session_active -> ws_connected``.
``closed`` and ``revoked`` are terminal. Timers drive expiry, reconnect grace
and the end of life; the client can recover an expired session with
``refresh`` for as long as the refresh window lasts.

Every state declares its :class:`Access`: what the session's holder may do
with its credentials there. The API derives from it who is refused and with
which problem and close code, so a new state brings its rule with it.
"""

from __future__ import annotations

import enum
import functools
from datetime import timedelta

from sessionflow.lifecycle.errors import DefinitionError
from sessionflow.lifecycle.model import Actor, Definition, EventSpec, Guard, Timer, TimerPolicy, Transition


class SessionState(enum.StrEnum):
    ANONYMOUS = "anonymous"
    AUTHENTICATED = "authenticated"
    SESSION_ACTIVE = "session_active"
    WS_CONNECTED = "ws_connected"
    WS_DISCONNECTED = "ws_disconnected"
    SESSION_EXPIRED = "session_expired"
    CLOSED = "closed"
    REVOKED = "revoked"


class SessionEvent(enum.StrEnum):
    AUTHENTICATE = "authenticate"
    ACTIVATE = "activate"
    CONNECT = "connect"
    DISCONNECT = "disconnect"
    DROP = "drop"
    GRACE_ELAPSED = "grace_elapsed"
    EXPIRE = "expire"
    REFRESH = "refresh"
    LOGOUT = "logout"
    REVOKE = "revoke"
    END = "end"


class Access(enum.StrEnum):
    """What the holder of a session may do with its credentials in a state; each state carries exactly one."""

    USABLE = "usable"  # everything: API calls, WebSocket tickets and connections
    LOGIN_PENDING = "login_pending"  # nothing but finishing login (the anonymous token upgrades the session)
    REFRESHABLE = "refreshable"  # refresh it, or end it; nothing else until it is refreshed
    ENDED = "ended"  # nothing, ever again: log in for a new session
    REVOKED = "revoked"  # nothing, ever again: revoked by an admin or on token theft; log in for a new session


class SessionGuard:
    """Guards of the session machine; the server decides each and passes it as a fact."""

    CREDENTIALS_VERIFIED = Guard("credentials_verified", "password or ID token verified for this user")
    USER_ENABLED = Guard("user_enabled", "the user exists and is not disabled")
    UNDER_SESSION_CAP = Guard("under_session_cap", "the user holds fewer live sessions than the cap")
    REFRESH_TOKEN_CURRENT = Guard("refresh_token_current", "the refresh token presented is the current one")


S = SessionState
E = SessionEvent
G = SessionGuard

_LIVE = (S.SESSION_ACTIVE, S.WS_CONNECTED, S.WS_DISCONNECTED)
_NON_TERMINAL = (S.ANONYMOUS, S.AUTHENTICATED, *_LIVE, S.SESSION_EXPIRED)

SESSION = Definition(
    name="session",
    states=tuple(S),
    initial=S.ANONYMOUS,
    terminal=frozenset({S.CLOSED, S.REVOKED}),
    events={
        spec.name: spec
        for spec in (
            EventSpec(E.AUTHENTICATE, frozenset({Actor.SERVER}), "login verified the credentials"),
            EventSpec(E.ACTIVATE, frozenset({Actor.SERVER}), "login issued fresh tokens"),
            EventSpec(E.CONNECT, frozenset({Actor.SERVER}), "first live WebSocket of the session opened"),
            EventSpec(E.DISCONNECT, frozenset({Actor.SERVER}), "last live WebSocket closed cleanly"),
            EventSpec(E.DROP, frozenset({Actor.SERVER}), "last live WebSocket lost abnormally"),
            EventSpec(E.GRACE_ELAPSED, frozenset({Actor.TIMER}), "nobody reconnected within the grace period"),
            EventSpec(E.EXPIRE, frozenset({Actor.TIMER}), "idle timeout"),
            EventSpec(E.REFRESH, frozenset({Actor.CLIENT}), "current refresh token presented; tokens rotated"),
            EventSpec(E.LOGOUT, frozenset({Actor.CLIENT}), "the holder logged out"),
            EventSpec(
                E.REVOKE, frozenset({Actor.ADMIN, Actor.SERVER}), "refresh-token reuse, user disabled or admin action"
            ),
            EventSpec(E.END, frozenset({Actor.TIMER}), "absolute lifetime, login window or refresh window over"),
        )
    },
    transitions=(
        Transition(E.AUTHENTICATE, (S.ANONYMOUS,), S.AUTHENTICATED, (G.CREDENTIALS_VERIFIED,)),
        Transition(E.ACTIVATE, (S.AUTHENTICATED,), S.SESSION_ACTIVE, (G.USER_ENABLED, G.UNDER_SESSION_CAP)),
        Transition(E.CONNECT, (S.SESSION_ACTIVE, S.WS_DISCONNECTED), S.WS_CONNECTED),
        Transition(E.DISCONNECT, (S.WS_CONNECTED,), S.SESSION_ACTIVE),
        Transition(E.DROP, (S.WS_CONNECTED,), S.WS_DISCONNECTED),
        Transition(E.GRACE_ELAPSED, (S.WS_DISCONNECTED,), S.SESSION_ACTIVE),
        Transition(E.EXPIRE, _LIVE, S.SESSION_EXPIRED),
        Transition(E.REFRESH, (S.SESSION_EXPIRED,), S.SESSION_ACTIVE, (G.REFRESH_TOKEN_CURRENT,)),
        Transition(E.REFRESH, _LIVE, None, (G.REFRESH_TOKEN_CURRENT,)),
        Transition(E.LOGOUT, _NON_TERMINAL, S.CLOSED),
        Transition(E.REVOKE, _NON_TERMINAL, S.REVOKED),
        Transition(E.END, _NON_TERMINAL, S.CLOSED),
    ),
    timers=(
        Timer(
            "login_window",
            E.END,
            frozenset({S.ANONYMOUS, S.AUTHENTICATED}),
            timedelta(minutes=30),
            TimerPolicy.ON_ACTIVITY,
            "a session that never finishes login ends",
        ),
        Timer(
            "idle",
            E.EXPIRE,
            frozenset(_LIVE),
            timedelta(minutes=30),
            TimerPolicy.ON_ACTIVITY,
            "idle timeout; restarted by every transition and recorded activity",
        ),
        Timer(
            "grace",
            E.GRACE_ELAPSED,
            frozenset({S.WS_DISCONNECTED}),
            timedelta(seconds=60),
            TimerPolicy.ON_ENTRY,
            "reconnect grace after the last connection dropped",
        ),
        Timer(
            "refresh_window",
            E.END,
            frozenset({S.SESSION_EXPIRED}),
            timedelta(days=7),
            TimerPolicy.ON_ENTRY,
            "how long an expired session can still be refreshed",
        ),
        Timer(
            "lifetime",
            E.END,
            frozenset(_NON_TERMINAL),
            timedelta(days=30),
            TimerPolicy.ON_ENTRY,
            "absolute lifetime, counted from creation, never extended",
        ),
    ),
    tags={
        S.ANONYMOUS: frozenset({Access.LOGIN_PENDING}),
        S.AUTHENTICATED: frozenset({Access.LOGIN_PENDING}),
        S.SESSION_ACTIVE: frozenset({Access.USABLE}),
        S.WS_CONNECTED: frozenset({Access.USABLE}),
        S.WS_DISCONNECTED: frozenset({Access.USABLE}),
        S.SESSION_EXPIRED: frozenset({Access.REFRESHABLE}),
        S.CLOSED: frozenset({Access.ENDED}),
        S.REVOKED: frozenset({Access.REVOKED}),
    },
    descriptions={
        S.ANONYMOUS: "created by the server, no user yet",
        S.AUTHENTICATED: "credentials verified, tokens not issued yet",
        S.SESSION_ACTIVE: "usable; no live WebSocket",
        S.WS_CONNECTED: "usable; at least one live WebSocket",
        S.WS_DISCONNECTED: "last WebSocket dropped; waiting for a reconnect",
        S.SESSION_EXPIRED: "idle too long; refreshable within the refresh window",
        S.CLOSED: "ended by logout or end of life (terminal)",
        S.REVOKED: "revoked by an admin or on token theft (terminal)",
    },
)


@functools.lru_cache(maxsize=256)  # asked on every authenticated request; definitions hash by identity
def access(state: str, definition: Definition = SESSION) -> Access:
    """The :class:`Access` that ``state`` declares; :class:`DefinitionError` unless it declares exactly one."""
    declared = [Access(tag) for tag in definition.tags.get(state, ()) if tag in Access.__members__.values()]
    if len(declared) != 1:
        raise DefinitionError(definition.name, [f"state {state!r} declares {len(declared)} access tags, not one"])
    return declared[0]


for _state in SESSION.states:
    access(_state)  # a session state without exactly one access tag is a broken definition: fail at import
