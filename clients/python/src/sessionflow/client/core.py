"""What every part of the client shares: the client machine it steps, and its traced sends.

The client is one object built in layers, each in its own module and each
resting on the one before: this core, then token keeping
(``credentials.py``), then the connection loop (``connection.py``), then the
public :class:`~sessionflow.client.session.Client`. A layer declares the state it
owns; ``Client.__init__`` sets all of it. Every move goes through
``engine(CLIENT).step`` here, and every HTTP request and WebSocket send is
described to the trace without tokens, tickets or ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from sessionflow.client.backoff import Backoff, Delay
from sessionflow.client.errors import ClientError
from sessionflow.client.records import ClientTransition, Stopped, Transition, Wire
from sessionflow.client.refusals import close_action, close_name, json_field, problem
from sessionflow.lifecycle import Actor, Clock, Engine, EventRefused, StepContext
from sessionflow.lifecycle.client import ClientEvent, ClientState

log = logging.getLogger("sessionflow.client")

E = ClientEvent
S = ClientState


class Core:
    """The client machine, who hears of its moves, and the channels to the server."""

    backoff: Backoff
    state: ClientState
    stopped: Stopped | None
    history: list[Transition]
    session_id: str | None
    _clock: Clock
    _engine: Engine
    _timers: dict[str, datetime | None]
    _callbacks: list[Callable[[Transition], object]]
    _subscribers: list[asyncio.Queue[Transition | None]]
    _moved: asyncio.Event
    _token_changed: asyncio.Event  # set on every token change, and on stopping: it wakes the token keeper
    _trace: Callable[[Wire], object] | None
    _http_client: httpx.AsyncClient
    _exchanges: int
    _socket: ClientConnection | None

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
        problem_code = problem(response) if response is not None else None
        action = close_action(code)[1] if code is not None else None
        detail = f"{reason} ({problem_code or status})" if status is not None else reason
        return self._finish(E.END, Actor.SERVER, Stopped("end", detail, code, status, problem_code, action), code=code)

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

    # -- the channels, traced -------------------------------------------------------------

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
        self._wire("http", "receive", "response", describe(response), exchange, status=response.status_code)
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

    async def _send(self, socket: ClientConnection, message: Mapping[str, Any], shown: str) -> None:
        self._wire("ws", "send", "message", shown, type=message.get("type"))
        with contextlib.suppress(ConnectionClosed):  # the reader sees the close and acts on it
            await socket.send(json.dumps(message))

    async def _close_socket(self, code: int, reason: str) -> None:
        socket = self._socket
        if socket is not None:
            self._wire("ws", "send", "close", f"close {code} {close_name(code)}", code=code)
            await socket.close(code, reason)


def describe(response: httpx.Response) -> str:
    """A response without tokens or ids: status, then the session state and lifetimes, or the problem code."""
    problem_code = problem(response)
    if problem_code is not None:
        return f"{response.status_code} {problem_code}"
    body = json_field(response, "state"), json_field(response, "expires_in")
    parts = [str(response.status_code)]
    if body[0] is not None:
        parts.append(f"state={body[0]}")
    if json_field(response, "ticket") is not None:
        parts.append("ticket")
    if body[1] is not None:
        parts.append(f"expires_in={body[1]}")
    return " ".join(parts)
