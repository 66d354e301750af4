"""The reference client: one session, kept alive by running the declared client machine.

Every move goes through ``engine(CLIENT).step``, so the client can only do
what ``lifecycle/client.py`` (and its diagram) says. The server creates the
session at login; the client keeps the access token fresh (at ``refresh_at``
of its life, and on ``token_expiring``, followed by ``reauth``), connects
only once the session is active, answers heartbeats, resumes with
``last_seq``, and on every close does what the shared close-code table
(:data:`api.protocol.CLOSE_CODES`) says. Reconnects wait a full-jitter
backoff through the injected ``sleep`` and never give up while the session
can still be used; refusals that no retry can fix stop the client and
:attr:`Client.stopped` says why. Tokens, tickets and ids never reach the
trace or the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Origin

from api import protocol
from api.client.backoff import Backoff, Delay
from api.protocol import ClientAction
from lifecycle import Actor, Clock, EventRefused, StepContext, SystemClock, engine
from lifecycle.client import CLIENT, ClientEvent, ClientState

log = logging.getLogger("sessionflow.client")

E = ClientEvent
S = ClientState

# What each close-code action of the shared table means for the client machine.
EVENT_FOR_ACTION: Mapping[ClientAction, ClientEvent] = {
    ClientAction.STOP: E.END,
    ClientAction.RECONNECT: E.DROP,
    ClientAction.RECONNECT_AFTER: E.THROTTLE,
    ClientAction.NEW_TICKET: E.DROP,  # every connect fetches a fresh ticket
    ClientAction.REFRESH: E.EXPIRE,
    ClientAction.LOG_IN: E.END,  # the session is gone: the application logs in again, with a new client
    ClientAction.FINISH_LOGIN: E.END,
}
ABNORMAL = 1006  # no close frame: the connection was lost
DEFAULT_RETRY_AFTER = 5.0
_EXPIRED = frozenset({"token_expired", "session_expired"})
_RETRY_AFTER = re.compile(r"retry_after=(\d+(?:\.\d+)?)")


def close_action(code: int) -> tuple[ClientEvent, ClientAction]:
    """The client machine's event for a close code, from the table shared with the server.

    Codes the table does not list (1006 lost, 1011, 1012, ...) reconnect with backoff.
    """
    row = protocol.BY_CODE.get(code)
    action = row.action if row is not None else ClientAction.RECONNECT
    return EVENT_FOR_ACTION[action], action


def close_name(code: int) -> str:
    row = protocol.BY_CODE.get(code)
    return row.name if row is not None else ("abnormal" if code == ABNORMAL else "unlisted")


# -- what the application sees ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientTransition:
    """The client machine moved: ``source --event--> dest``, with the close code and wait behind it."""

    event: str
    source: str
    dest: str
    actor: str
    at: datetime
    code: int | None = None
    reason: str = ""
    delay: Delay | None = None


@dataclass(frozen=True, slots=True)
class SessionTransition:
    """The server's session machine moved (a ``transition`` message; ``replayed`` after a resume)."""

    seq: int
    event: str
    from_state: str
    to_state: str
    actor: str
    at: str
    replayed: bool = False


Transition = ClientTransition | SessionTransition


@dataclass(frozen=True, slots=True)
class Stopped:
    """Why the client stopped: ``end`` (the server's doing) or ``stop`` (the application's), and what lay behind it."""

    event: str
    reason: str
    close_code: int | None = None
    status: int | None = None  # HTTP status of the refusal
    problem: str | None = None  # its problem-details code
    action: ClientAction | None = None


@dataclass(frozen=True, slots=True)
class Wire:
    """One message sent or received, described without tokens, tickets or ids (for traces and the demo)."""

    channel: Literal["http", "ws"]
    direction: Literal["send", "receive"]
    kind: str  # request, response, failure, open, message, close
    text: str
    exchange: int = 0  # pairs an HTTP response or failure with its request
    fields: Mapping[str, Any] = field(default_factory=dict)


class ClientError(Exception):
    """An operation the machine refuses now, or that failed; ``stopped`` is set when the client stopped."""

    def __init__(self, message: str, *, stopped: Stopped | None = None, refused: EventRefused | None = None) -> None:
        super().__init__(message)
        self.stopped = stopped
        self.refused = refused


class TransitionStream:
    """``async for`` over the transitions from subscription on; ends after the client stops."""

    def __init__(self, queue: asyncio.Queue[Transition | None]) -> None:
        self._queue = queue

    def __aiter__(self) -> TransitionStream:
        return self

    async def __anext__(self) -> Transition:
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        return item


@dataclass
class _Tokens:
    access: str
    refresh: str
    lifetime: float
    expires_at: float  # event-loop time
    refresh_due: float
    generation: int


class Rotation(enum.Enum):
    ROTATED = "rotated"
    ALREADY = "already"  # another task rotated them meanwhile
    FAILED = "failed"  # for now: the server is busy or failing


class _Refused(Exception):
    """An HTTP refusal no retry fixes."""

    def __init__(self, stopped: Stopped) -> None:
        super().__init__(stopped.reason)
        self.stopped = stopped


Sleep = Callable[[float], Awaitable[None]]


class Client:
    """An async client for one server-created session.

    ``sleep`` (backoff waits), ``backoff`` (its random source and clock) and
    ``clock`` (transition timestamps) are injectable, so tests never wait out
    a real backoff. ``auth="bearer"`` sends the access token on the
    handshake instead of fetching a ticket. ``replay_history`` asks the first
    connect for the session's whole history (``last_seq=0``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: Literal["ticket", "bearer"] = "ticket",
        origin: str | None = None,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock | None = None,
        refresh_at: float = 0.8,
        replay_history: bool = False,
        on_transition: Callable[[Transition], object] | None = None,
        trace: Callable[[Wire], object] | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not 0 < refresh_at < 1:
            raise ValueError("refresh_at is a fraction of the token's life, between 0 and 1")
        parts = urlsplit(base_url.rstrip("/"))
        self._ws_url = urlunsplit(
            ("wss" if parts.scheme == "https" else "ws", parts.netloc, parts.path + "/api/ws", "", "")
        )
        self._auth = auth
        self._origin = origin
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self._clock: Clock = clock or SystemClock()
        self._refresh_at = refresh_at
        self._replay_history = replay_history
        self._callbacks = [on_transition] if on_transition is not None else []
        self._trace = trace
        self._own_http = http is None
        self._http_client = http or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._timeout = timeout
        self._engine = engine(CLIENT)
        self._timers = self._engine.initial_timers(self._clock.now())
        self.state = S(CLIENT.initial)
        self.session_id: str | None = None
        self.session_state: str | None = None  # the server's state of the session, as last heard
        self.last_seq: int | None = None  # the last session transition received; a resume asks for what follows
        self.announced_seq: int | None = None  # the session's seq when the server last said welcome
        self.stopped: Stopped | None = None
        self.history: list[Transition] = []
        self._tokens: _Tokens | None = None
        self._welcomed = False
        self._socket: ClientConnection | None = None
        self._last_close: int | None = None
        self._silence = timeout
        self._retry_after: float | None = None
        self._exchanges = 0
        self._subscribers: list[asyncio.Queue[Transition | None]] = []
        self._moved = asyncio.Event()
        self._token_changed = asyncio.Event()
        self._refresh_lock = asyncio.Lock()
        self._run_task: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._reauths: set[asyncio.Task[Any]] = set()

    # -- the application's side --------------------------------------------------------

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def access_token(self) -> str | None:
        """The current access token, for the application's own API calls (it changes on every refresh)."""
        return self._tokens.access if self._tokens is not None else None

    @property
    def caught_up(self) -> bool:
        """Whether every transition up to the last welcome arrived (the replay after a resume is complete)."""
        return self.announced_seq is not None and (self.last_seq or 0) >= self.announced_seq

    def transitions(self) -> TransitionStream:
        """Both machines' transitions from now on, in the order they happened; ends once the client stops."""
        queue: asyncio.Queue[Transition | None] = asyncio.Queue()
        if self.state is S.STOPPED:
            queue.put_nowait(None)
        else:
            self._subscribers.append(queue)
        return TransitionStream(queue)

    def on_transition(self, callback: Callable[[Transition], object]) -> None:
        self._callbacks.append(callback)

    async def login(self, username: str, password: str) -> None:
        """Log in; the server creates the session. Raises :class:`ClientError` (and stops) if refused."""
        self._fire(E.LOGIN, Actor.CLIENT)
        try:
            response = await self._http("POST", "/api/auth/login", body={"username": username, "password": password})
        except httpx.TransportError as exc:
            raise ClientError("login failed", stopped=self._end(f"server unreachable ({type(exc).__name__})")) from None
        if response.status_code != 200:
            stopped = self._end("login refused", response=response)
            raise ClientError(f"login refused: {stopped.problem or response.status_code}", stopped=stopped)
        self._take_tokens(response.json())
        self._fire(E.LOGGED_IN, Actor.SERVER)
        self._keeper = asyncio.create_task(self._keep_fresh(), name="sessionflow-client-tokens")

    async def connect(self, *, timeout: float | None = None) -> None:
        """Start the live channel and wait until welcomed; ``timeout`` None waits as long as reconnecting goes on."""
        self._fire(E.CONNECT, Actor.CLIENT)
        self._run_task = asyncio.create_task(self._run(), name="sessionflow-client")
        await self.wait_for(S.CONNECTED, timeout=timeout)

    async def refresh(self) -> None:
        """Rotate the tokens now (and reauthenticate an open connection)."""
        if self.state not in (S.ACTIVE, S.CONNECTED, S.RECONNECTING):
            raise ClientError(f"cannot refresh while {self.state}")
        fresh = await self._refresh_in_place()
        if self.stopped is not None:
            raise ClientError("refresh refused", stopped=self.stopped)
        if not fresh:
            raise ClientError("refresh failed for now (server unreachable or busy); the client will try again")

    async def logout(self) -> Stopped:
        """Log out: the server closes the session and its connections; the client stops."""
        self._fire(E.LOGOUT, Actor.CLIENT)
        reason, status, problem = "logged out", None, None
        try:
            response = await self._logout_request()
            status = response.status_code
            if status != 200:
                problem = _problem(response)
                reason = f"logout refused ({problem or status})"
        except httpx.TransportError as exc:
            reason = f"logout not confirmed: server unreachable ({type(exc).__name__})"
        except _Refused as refused:
            reason, status, problem = refused.stopped.reason, refused.stopped.status, refused.stopped.problem
        if self._socket is not None and self._run_task is not None:
            # The server sends the logout transition and closes with 4410: wait for it, not for ever.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._run_task), self._timeout)
        stopped = Stopped("end", reason, close_code=self._last_close, status=status, problem=problem)
        if self.state is S.LOGGING_OUT:
            self._finish(E.END, Actor.SERVER, stopped, code=self._last_close)
        await self._release()
        assert self.stopped is not None
        return self.stopped

    async def close(self) -> Stopped:
        """Stop the client (the session stays as it is: it can be resumed elsewhere) and release everything."""
        if self.state is not S.STOPPED:
            self._finish(E.STOP, Actor.CLIENT, Stopped("stop", "stopped by the application"))
        await self._release()
        assert self.stopped is not None
        return self.stopped

    async def wait_for(self, *states: ClientState, timeout: float | None = None) -> ClientState:
        """Wait until the client is in one of ``states``; :class:`ClientError` if it stops first."""

        async def reached() -> ClientState:
            while self.state not in states:
                if self.state is S.STOPPED:
                    raise ClientError(
                        f"client stopped: {self.stopped.reason if self.stopped else ''}", stopped=self.stopped
                    )
                await self._moved.wait()
            return self.state

        return await asyncio.wait_for(reached(), timeout)

    async def wait_stopped(self, timeout: float | None = None) -> Stopped:
        with contextlib.suppress(ClientError):
            await self.wait_for(S.STOPPED, timeout=timeout)
        assert self.stopped is not None
        return self.stopped

    # -- the machine ---------------------------------------------------------------------

    def _fire(
        self, event: ClientEvent, actor: Actor, *, code: int | None = None, reason: str = "", delay: Delay | None = None
    ) -> None:
        """Step the client machine; a refusal raises :class:`ClientError` carrying the allowed events."""
        durations = {"backoff": timedelta(seconds=delay.seconds)} if delay is not None else {}
        context = StepContext(actor=actor, now=self._clock.now(), timers=self._timers, durations=durations)
        try:
            outcome = self._engine.step(self.state, event, context)
        except EventRefused as refused:
            raise ClientError(str(refused), refused=refused) from None
        self.state = S(outcome.dest)
        self._timers = outcome.timers
        self._emit(
            ClientTransition(outcome.event, outcome.source, outcome.dest, str(actor), context.now, code, reason, delay)
        )
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()
        if self.state is S.STOPPED:
            self._token_changed.set()  # wakes the token keeper, which then ends
            for queue in self._subscribers:
                queue.put_nowait(None)
            self._subscribers.clear()

    def _finish(self, event: ClientEvent, actor: Actor, stopped: Stopped, *, code: int | None = None) -> Stopped:
        self.stopped = stopped
        self._fire(event, actor, code=code, reason=stopped.reason)
        return stopped

    def _end(self, reason: str, *, response: httpx.Response | None = None, code: int | None = None) -> Stopped:
        """Stop because the server refused for good (``end``)."""
        status = response.status_code if response is not None else None
        problem = _problem(response) if response is not None else None
        action = close_action(code)[1] if code is not None else None
        detail = f"{reason} ({problem or status})" if status is not None else reason
        return self._finish(E.END, Actor.SERVER, Stopped("end", detail, code, status, problem, action), code=code)

    def _emit(self, item: Transition) -> None:
        self.history.append(item)
        for callback in self._callbacks:
            try:
                callback(item)
            except Exception:
                log.exception("a transition callback failed")
        for queue in self._subscribers:
            queue.put_nowait(item)

    def _wait(self, retry_after: float | None = None) -> Delay:
        return self.backoff.next(retry_after)

    # -- the run loop: connect, converse, wait, refresh ---------------------------------

    async def _run(self) -> None:
        try:
            await self._drive()
        except Exception as exc:  # a bug or a server breaking the protocol: stop and say so rather than hang
            log.exception("the client failed")
            if self.state is not S.STOPPED:
                self._finish(E.STOP, Actor.CLIENT, Stopped("stop", f"client error: {type(exc).__name__}: {exc}"))

    async def _drive(self) -> None:
        while True:
            if self.state is S.CONNECTING:
                await self._connect_once()
            elif self.state is S.RECONNECTING:
                due = self._timers.get("backoff")
                seconds = max(0.0, (due - self._clock.now()).total_seconds()) if due is not None else 0.0
                await self._sleep(seconds)
                if self.state is S.RECONNECTING:
                    self._fire(E.RETRY, Actor.TIMER)
            elif self.state is S.REFRESHING:
                await self._refresh_after_expiry()
            else:
                return

    async def _connect_once(self) -> None:
        assert self._tokens is not None
        assert self.session_id is not None
        self._last_close = None
        headers: dict[str, str] = {}
        query: dict[str, str] = {}
        if self._auth == "ticket":
            try:
                response = await self._http("POST", "/api/session/{id}/ws-ticket", token=self._tokens.access)
            except httpx.TransportError as exc:
                if self.state is S.CONNECTING:
                    self._fire(
                        E.DROP, Actor.SERVER, reason=f"server unreachable ({type(exc).__name__})", delay=self._wait()
                    )
                return
            if self.state is not S.CONNECTING:
                return
            if response.status_code != 201:
                self._http_refusal(response, "no ticket")
                return
            query["ticket"] = response.json()["ticket"]
        else:
            headers["Authorization"] = f"Bearer {self._tokens.access}"
        resume = self.last_seq if self._welcomed else (0 if self._replay_history else None)
        if resume is not None:
            query.update(last_seq=str(resume), session_id=self.session_id)
        shown = "&".join(f"{key}={'…' if key in ('ticket', 'session_id') else value}" for key, value in query.items())
        self._wire("ws", "send", "open", "GET /api/ws" + (f"?{shown}" if shown else ""), resume=resume)
        url = self._ws_url + (f"?{urlencode(query)}" if query else "")
        try:
            origin = Origin(self._origin) if self._origin is not None else None
            async with connect(
                url, additional_headers=headers, origin=origin, open_timeout=self._timeout, ping_interval=None
            ) as socket:
                self._socket = socket
                try:
                    await self._converse(socket)
                finally:
                    self._socket = None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            if self.state is S.CONNECTING:
                self._wire("ws", "receive", "failure", f"✗ {type(exc).__name__}")
                self._fire(E.DROP, Actor.SERVER, reason=f"handshake failed ({type(exc).__name__})", delay=self._wait())

    async def _converse(self, socket: ClientConnection) -> None:
        """Read until the connection ends; then move the machine as the close code says."""
        self._silence = self._timeout  # until welcome; then three heartbeat intervals
        self._retry_after = None
        try:
            while True:
                try:
                    raw = await asyncio.wait_for(socket.recv(), self._silence)
                except TimeoutError:
                    self._wire("ws", "send", "close", "close 4504 heartbeat_timeout")
                    await socket.close(4504, "no message for three heartbeat intervals")
                    if self.state in (S.CONNECTING, S.CONNECTED):
                        self._fire(E.DROP, Actor.SERVER, code=4504, reason="the server went silent", delay=self._wait())
                    return
                message = json.loads(raw) if isinstance(raw, str) else None
                if isinstance(message, dict):  # the server speaks JSON objects; anything else is ignored
                    await self._on_message(socket, message)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else ABNORMAL
            reason = closed.rcvd.reason if closed.rcvd is not None else "connection lost"
            self._wire("ws", "receive", "close", f"close {code} {close_name(code)}", code=code)
            self._closed(code, reason, self._retry_after)

    async def _on_message(self, socket: ClientConnection, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "welcome":
            self._silence = 3 * float(message.get("heartbeat_interval") or 25)
            self._welcome(message)
        elif kind == "transition":
            self._transition(message)
        elif kind == "ping":
            self._wire("ws", "receive", "message", "ping", type=kind)
            pong = self._pong()
            if pong is not None:
                await self._send(socket, pong, "pong")
        elif kind == "error":
            value = message.get("retry_after")
            self._retry_after = float(value) if isinstance(value, int | float) else None
            self._wire("ws", "receive", "message", f"error {message.get('code')} retry_after={value}", type=kind)
        elif kind in (E.TOKEN_EXPIRING, E.REAUTHENTICATED):
            self._wire("ws", "receive", "message", str(kind), type=kind)
            if self.state is S.CONNECTED and kind == E.TOKEN_EXPIRING:
                self._expiring(float(message.get("expires_in") or 0))
            elif self.state is S.CONNECTED:
                self._fire(E.REAUTHENTICATED, Actor.SERVER)

    def _welcome(self, message: Mapping[str, Any]) -> None:
        recovered = message.get("recovered")
        shown = f"state={message.get('state')} last_seq={message.get('last_seq')} recovered={json.dumps(recovered)}"
        self._wire("ws", "receive", "message", f"welcome {shown}", type="welcome")
        self.session_state = str(message.get("state"))
        self.announced_seq = int(message.get("last_seq") or 0)
        if recovered is not True:  # nothing replayed follows: the welcome's seq is where we are
            self.last_seq = max(self.last_seq or 0, self.announced_seq)
        if self.state is not S.CONNECTING:
            return
        self._welcomed = True
        self.backoff.connected()
        self._fire(E.WELCOME, Actor.SERVER, reason="" if recovered is None else f"recovered={json.dumps(recovered)}")

    def _transition(self, message: Mapping[str, Any]) -> None:
        item = SessionTransition(
            int(message["seq"]),
            str(message["event"]),
            str(message["from_state"]),
            str(message["to_state"]),
            str(message["actor"]),
            str(message.get("at", "")),
            bool(message.get("replayed", False)),
        )
        replayed = ", replayed" if item.replayed else ""
        text = f"transition {item.seq} {item.from_state} → {item.to_state} ({item.event}{replayed})"
        self._wire("ws", "receive", "message", text, type="transition", event=item.event, replayed=item.replayed)
        self.last_seq = max(self.last_seq or 0, item.seq)
        self.session_state = item.to_state
        self._emit(item)

    def _closed(self, code: int, reason: str, retry_after: float | None) -> None:
        self._last_close = code
        if self.state not in (S.CONNECTING, S.CONNECTED):
            return  # logging out, stopped, or already moved on by a refresh that failed
        event, action = close_action(code)
        if event is E.END:
            self._end(f"closed with {code} {close_name(code)}: {reason}", code=code)
        elif event is E.THROTTLE:
            match = _RETRY_AFTER.search(reason)
            seconds = (
                retry_after if retry_after is not None else float(match.group(1)) if match else DEFAULT_RETRY_AFTER
            )
            self._fire(event, Actor.SERVER, code=code, reason=reason, delay=self._wait(seconds))
        elif event is E.EXPIRE:
            self._fire(event, Actor.SERVER, code=code, reason=reason)
        else:
            self._fire(event, Actor.SERVER, code=code, reason=f"{action}: {reason}", delay=self._wait())

    def _http_refusal(self, response: httpx.Response, what: str) -> None:
        """Move the machine for a refused HTTP call made while connecting."""
        problem = _problem(response)
        status = response.status_code
        if status == 401 and problem in _EXPIRED:
            self._fire(E.EXPIRE, Actor.SERVER, reason=f"{what}: {problem}")
        elif status == 429:
            seconds = _retry_after(response)
            self._fire(E.THROTTLE, Actor.SERVER, reason=f"{what}: {status}", delay=self._wait(seconds))
        elif status >= 500:
            self._fire(E.DROP, Actor.SERVER, reason=f"{what}: {status}", delay=self._wait())
        else:
            self._end(what, response=response)

    def _pong(self) -> dict[str, Any] | None:
        """The answer to a ping (a test double may answer otherwise, or not at all)."""
        return {"type": "pong"}

    async def _send(self, socket: ClientConnection, message: Mapping[str, Any], shown: str) -> None:
        self._wire("ws", "send", "message", shown, type=message.get("type"))
        with contextlib.suppress(ConnectionClosed):  # the reader sees the close and acts on it
            await socket.send(json.dumps(message))

    # -- tokens -------------------------------------------------------------------------

    def _take_tokens(self, body: Mapping[str, Any]) -> None:
        now = asyncio.get_running_loop().time()
        lifetime = float(body["expires_in"])
        generation = self._tokens.generation + 1 if self._tokens is not None else 0
        self._tokens = _Tokens(
            str(body["access_token"]),
            str(body["refresh_token"]),
            lifetime,
            now + lifetime,
            now + self._refresh_at * lifetime,
            generation,
        )
        self.session_id = str(body["session_id"])
        self.session_state = str(body["state"])
        changed, self._token_changed = self._token_changed, asyncio.Event()
        changed.set()

    async def _rotate(self, seen: int) -> Rotation:
        """Refresh unless someone already did since generation ``seen``.

        One refresh at a time, and a refresh token is never presented twice
        (a reused one makes the server revoke the session). Raises
        :class:`_Refused` when no retry can help and ``httpx.TransportError``
        when the server is unreachable.
        """
        async with self._refresh_lock:
            assert self._tokens is not None
            if self._tokens.generation != seen:
                return Rotation.ALREADY
            return await self._rotate_locked()

    async def _rotate_locked(self) -> Rotation:
        assert self._tokens is not None
        response = await self._http("POST", "/api/auth/refresh", body={"refresh_token": self._tokens.refresh})
        if response.status_code == 200:
            self._take_tokens(response.json())
            return Rotation.ROTATED
        if response.status_code == 429 or response.status_code >= 500:
            return Rotation.FAILED
        problem = _problem(response)
        raise _Refused(
            Stopped("end", f"refresh refused ({problem or response.status_code})", None, response.status_code, problem)
        )

    async def _refresh_after_expiry(self) -> None:
        assert self._tokens is not None
        try:
            rotation = await self._rotate(self._tokens.generation)
            reason = "" if rotation is not Rotation.FAILED else "refresh failed for now"
        except httpx.TransportError as exc:
            rotation, reason = Rotation.FAILED, f"server unreachable ({type(exc).__name__})"
        except _Refused as refused:
            if self.state is S.REFRESHING:
                self._finish(E.END, Actor.SERVER, refused.stopped)
            return
        if self.state is S.REFRESHING:
            event = E.DROP if rotation is Rotation.FAILED else E.REFRESHED
            self._fire(event, Actor.SERVER, reason=reason, delay=self._wait())

    async def _refresh_in_place(self) -> bool:
        """Refresh without leaving the state (active, connected, reconnecting), then reauth an open connection."""
        assert self._tokens is not None
        try:
            rotation = await self._rotate(self._tokens.generation)
        except httpx.TransportError:
            return False
        except _Refused as refused:
            if self.state not in (S.STOPPED, S.LOGGING_OUT):
                self._finish(E.END, Actor.SERVER, refused.stopped)
                await self._close_socket(1000, "refresh refused")
            return False
        if rotation is Rotation.FAILED:
            return False
        if rotation is Rotation.ROTATED and self.state in (S.ACTIVE, S.CONNECTED, S.RECONNECTING):
            self._fire(E.REFRESHED, Actor.SERVER)
        await self._reauth()
        return True

    async def _reauth(self) -> None:
        socket = self._socket
        if self.state is S.CONNECTED and socket is not None and self._tokens is not None:
            message = {"type": "reauth", "access_token": self._tokens.access}
            await self._send(socket, message, "reauth (fresh access token)")

    def _expiring(self, expires_in: float) -> None:
        """token_expiring: reauth with a token that outlives the connection's credential, refreshing first if needed.

        A warning about a credential as fresh as a new token would be (one
        just reauthenticated) needs nothing: refreshing cannot do better.
        """
        tokens = self._tokens
        assert tokens is not None
        if expires_in >= tokens.lifetime - 1:
            self._fire(
                E.TOKEN_EXPIRING, Actor.SERVER, reason="nothing to do: the credential is as fresh as a new token"
            )
            return
        fresher = tokens.expires_at > asyncio.get_running_loop().time() + expires_in + 1
        self._fire(E.TOKEN_EXPIRING, Actor.SERVER, reason="reauth" if fresher else "refresh, then reauth")
        task = asyncio.create_task(self._reauth() if fresher else self._refresh_in_place())
        self._reauths.add(task)
        task.add_done_callback(self._reauths.discard)

    async def _keep_fresh(self) -> None:
        """Refresh at ``refresh_at`` of the token's life, whatever else is going on."""
        loop = asyncio.get_running_loop()
        while self.state is not S.STOPPED and self._tokens is not None:
            wait = self._tokens.refresh_due - loop.time()
            if wait > 0:
                changed = self._token_changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), wait)
                continue
            if self.state in (S.ACTIVE, S.CONNECTED, S.RECONNECTING) and await self._refresh_in_place():
                continue
            # Connecting, refreshing, or the server is unreachable: look again shortly.
            self._tokens.refresh_due = loop.time() + min(5.0, max(0.5, (self._tokens.expires_at - loop.time()) / 4))

    async def _logout_request(self) -> httpx.Response:
        """POST logout with the current access token: after any refresh in flight, and refreshed if it expired."""
        async with self._refresh_lock:
            assert self._tokens is not None
            response = await self._http("POST", "/api/auth/logout", token=self._tokens.access)
            expired = response.status_code == 401 and _problem(response) == "token_expired"
            if expired and await self._rotate_locked() is Rotation.ROTATED:
                response = await self._http("POST", "/api/auth/logout", token=self._tokens.access)
            return response

    # -- plumbing -------------------------------------------------------------------------

    async def _http(self, method: str, template: str, *, token: str | None = None, body: Any = None) -> httpx.Response:
        self._exchanges += 1
        exchange = self._exchanges
        self._wire("http", "send", "request", f"{method} {template}", exchange)
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        try:
            response = await self._http_client.request(
                method, template.format(id=self.session_id), json=body, headers=headers
            )
        except httpx.TransportError as exc:
            self._wire("http", "receive", "failure", f"✗ {type(exc).__name__}", exchange)
            raise
        self._wire("http", "receive", "response", _describe(response), exchange, status=response.status_code)
        return response

    def _wire(
        self,
        channel: Literal["http", "ws"],
        direction: Literal["send", "receive"],
        kind: str,
        text: str,
        exchange: int = 0,
        **fields: Any,
    ) -> None:
        if self._trace is not None:
            try:
                self._trace(Wire(channel, direction, kind, text, exchange, fields))
            except Exception:
                log.exception("the trace callback failed")

    async def _close_socket(self, code: int, reason: str) -> None:
        socket = self._socket
        if socket is not None:
            self._wire("ws", "send", "close", f"close {code} {close_name(code)}", code=code)
            await socket.close(code, reason)

    async def _release(self) -> None:
        """Close the socket and stop every task; the client is stopped by now."""
        await self._close_socket(1000, "client stopped")
        current = asyncio.current_task()
        tasks = [t for t in (self._run_task, self._keeper, *self._reauths) if t is not None and t is not current]
        for task in tasks:
            if not task.done():
                task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._own_http:
            await self._http_client.aclose()


def _problem(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def _retry_after(response: httpx.Response) -> float:
    for value in (response.headers.get("retry-after"), _json_field(response, "retry_after")):
        with contextlib.suppress(TypeError, ValueError):
            return float(value)  # type: ignore[arg-type]
    return DEFAULT_RETRY_AFTER


def _json_field(response: httpx.Response, name: str) -> object:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None


def _describe(response: httpx.Response) -> str:
    """A response without tokens or ids: status, then the session state and lifetimes, or the problem code."""
    problem = _problem(response)
    if problem is not None:
        return f"{response.status_code} {problem}"
    body = _json_field(response, "state"), _json_field(response, "expires_in")
    parts = [str(response.status_code)]
    if body[0] is not None:
        parts.append(f"state={body[0]}")
    if _json_field(response, "ticket") is not None:
        parts.append("ticket")
    if body[1] is not None:
        parts.append(f"expires_in={body[1]}")
    return " ".join(parts)
