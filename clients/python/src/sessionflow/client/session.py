"""The reference client: one session, kept alive by running the declared client machine.

Every move goes through ``engine(CLIENT).step``, so the client can only do
what ``lifecycle/client.py`` (and its diagram) says. The server creates the
session at login; the client keeps the access token fresh (at ``refresh_at``
of its life, and on ``token_expiring``, followed by ``reauth``), connects
only once the session is active, answers heartbeats, resumes with
``last_seq``, and on every close does what the shared close-code table
(:data:`sessionflow.lifecycle.protocol.CLOSE_CODES`) says. Reconnects wait a full-jitter
backoff through the injected ``sleep`` and never give up while the session
can still be used; refusals that no retry can fix stop the client and
:attr:`Client.stopped` says why. Tokens, tickets and ids never reach the
trace or the log.

:class:`Client` is the application's side; the layers it rests on are the
core (``core.py``: the machine and the traced sends), token keeping
(``credentials.py``) and the connection loop (``connection.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

from sessionflow.client.backoff import Backoff
from sessionflow.client.connection import ConnectionLoop, Sleep
from sessionflow.client.errors import ClientError, Refused
from sessionflow.client.records import Stopped, Transition, TransitionStream, Wire
from sessionflow.client.refusals import problem
from sessionflow.lifecycle import Actor, Clock, SystemClock, engine
from sessionflow.lifecycle.client import CLIENT, ClientEvent, ClientState

E = ClientEvent
S = ClientState


class Client(ConnectionLoop):
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
        self._clock = clock or SystemClock()
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
        self.session_id = None
        self.session_state = None  # the server's state of the session, as last heard
        self.last_seq = None  # the last session transition received; a resume asks for what follows
        self.announced_seq = None  # the session's seq when the server last said welcome
        self.stopped = None
        self.history = []
        self._tokens = None
        self._welcomed = False
        self._socket = None
        self._last_close = None
        self._silence = timeout
        self._retry_after = None
        self._exchanges = 0
        self._subscribers = []
        self._moved = asyncio.Event()
        self._token_changed = asyncio.Event()
        self._refresh_lock = asyncio.Lock()
        self._run_task: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._reauths = set()

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
        reason, status, problem_code = "logged out", None, None
        try:
            response = await self._logout_request()
            status = response.status_code
            if status != 200:
                problem_code = problem(response)
                reason = f"logout refused ({problem_code or status})"
        except httpx.TransportError as exc:
            reason = f"logout not confirmed: server unreachable ({type(exc).__name__})"
        except Refused as refused:
            reason, status, problem_code = refused.stopped.reason, refused.stopped.status, refused.stopped.problem
        if self._socket is not None and self._run_task is not None:
            # The server sends the logout transition and closes with 4410: wait for it, not for ever.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._run_task), self._timeout)
        stopped = Stopped("end", reason, close_code=self._last_close, status=status, problem=problem_code)
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

    # -- releasing ------------------------------------------------------------------------

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
