"""The connection loop: connect, converse, wait out the backoff, refresh after an expiry, and again.

The loop connects only while the machine says ``connecting`` (a ticket over
HTTP, or the access token on the handshake), resumes with ``last_seq`` after
the first welcome, answers heartbeats, and on every close moves the machine
as the shared close-code table says. It runs until the machine leaves the
states it drives; waits go through the injected ``sleep``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Origin

from sessionflow.client.credentials import TokenKeeping
from sessionflow.client.records import SessionTransition, Stopped
from sessionflow.client.refusals import (
    ABNORMAL,
    EXPIRED,
    close_action,
    close_name,
    close_retry_after,
    problem,
    response_retry_after,
)
from sessionflow.lifecycle import Actor
from sessionflow.lifecycle.client import ClientEvent, ClientState

log = logging.getLogger("sessionflow.client")

E = ClientEvent
S = ClientState

Sleep = Callable[[float], Awaitable[None]]


class ConnectionLoop(TokenKeeping):
    """The live channel to the server, run as one task while the client machine needs it."""

    last_seq: int | None
    announced_seq: int | None
    _ws_url: str
    _auth: Literal["ticket", "bearer"]
    _origin: str | None
    _sleep: Sleep
    _timeout: float
    _replay_history: bool
    _welcomed: bool
    _last_close: int | None
    _silence: float
    _retry_after: float | None

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
            seconds = close_retry_after(reason, retry_after)
            self._fire(event, Actor.SERVER, code=code, reason=reason, delay=self._wait(seconds))
        elif event is E.EXPIRE:
            self._fire(event, Actor.SERVER, code=code, reason=reason)
        else:
            self._fire(event, Actor.SERVER, code=code, reason=f"{action}: {reason}", delay=self._wait())

    def _http_refusal(self, response: httpx.Response, what: str) -> None:
        """Move the machine for a refused HTTP call made while connecting."""
        problem_code = problem(response)
        status = response.status_code
        if status == 401 and problem_code in EXPIRED:
            self._fire(E.EXPIRE, Actor.SERVER, reason=f"{what}: {problem_code}")
        elif status == 429:
            seconds = response_retry_after(response)
            self._fire(E.THROTTLE, Actor.SERVER, reason=f"{what}: {status}", delay=self._wait(seconds))
        elif status >= 500:
            self._fire(E.DROP, Actor.SERVER, reason=f"{what}: {status}", delay=self._wait())
        else:
            self._end(what, response=response)

    def _pong(self) -> dict[str, Any] | None:
        """The answer to a ping (a test double may answer otherwise, or not at all)."""
        return {"type": "pong"}
