"""The WebSocket endpoint ``/api/ws`` (docs/protocol.md).

The handshake is always accepted; a refusal is a close with a specific code
and a short reason, which browsers can read (a close before accept reaches
them as a bare 403). Credentials are a single-use ticket (``?ticket=``) or
``Authorization: Bearer`` on the handshake, decided by the same
:class:`~sessionflow.api.auth.authenticate.Authenticator` as HTTP. Each connection is a
row driven by the connection machine; its session learns of it through the
connection cascade (connect, disconnect, drop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from litestar import WebSocket, websocket
from litestar.datastructures import State
from litestar.di import NamedDependency

from sessionflow.api.auth.authenticate import Principal, Purpose
from sessionflow.api.context import AppContext
from sessionflow.api.errors import AuthError, CloseRefusal
from sessionflow.api.fanout import RESYNC, Hub, TransitionEvent
from sessionflow.api.heartbeats import Heartbeats
from sessionflow.api.problems import close_code_for, close_code_for_state, fit_close_reason
from sessionflow.lifecycle import CONNECTION, SESSION, Actor, ConnectionEvent, EventRefused
from sessionflow.persistence import InstanceNotFound, PersistenceError, connections, queries

log = logging.getLogger("sessionflow.ws")

MAX_MESSAGE = 16 * 1024  # bytes of text; reauth tokens are at most 4 KiB
TOKEN_WARNING = 60.0  # seconds before the credential expires that token_expiring is sent


@dataclass
class Live:
    """This worker's live connections, to close them all on shutdown."""

    worker_id: str
    connections: set[Connection] = field(default_factory=set)

    async def drain(self, code: int = 1001, reason: str = "server going away") -> None:
        await asyncio.gather(*(c.shutdown(code, reason) for c in list(self.connections)), return_exceptions=True)


class Connection:
    """One WebSocket, from accept to the recorded close."""

    def __init__(
        self, socket: WebSocket[Any, Any, State], ctx: AppContext, hub: Hub, live: Live, heartbeats: Heartbeats
    ) -> None:
        self.socket = socket
        self.ctx = ctx
        self.hub = hub
        self.live = live
        self.heartbeats = heartbeats
        settings = ctx.settings
        self.interval = settings.ws_heartbeat_interval.total_seconds()
        self.address = socket.client.host if socket.client else "unknown"
        self.id: uuid.UUID | None = None
        self.session_id: uuid.UUID | None = None
        self.last_seq = 0
        self.credential_expires = 0.0  # monotonic deadline
        self.closed = False
        self._opened_at = time.monotonic()
        self._closing: tuple[int, str, bool] | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def run(self) -> None:
        await self.socket.accept()
        queue: asyncio.Queue[Any] | None = None
        try:
            self._check_origin()
            resume = _last_seq(self.socket.query_params.get("last_seq"))
            principal = await asyncio.to_thread(self._authenticate)
            self.session_id = principal.session_id
            queue = self.hub.subscribe(principal.session_id)
            # The heartbeat deadline counts from before the connection row exists, so this handler always
            # gives up on a silent client before the row's own heartbeat timer (same three intervals)
            # lets a sweeper drop it from under us.
            self._opened_at = time.monotonic()
            await asyncio.to_thread(self._open)
            self.live.connections.add(self)
            await self._welcome(resume)
            await self._loop(queue)
        except CloseRefusal as refusal:
            await self._refuse(refusal)
        except (AuthError, PersistenceError, EventRefused) as error:
            code, reason = close_code_for(error)
            await self._refuse(CloseRefusal(code, reason))
        except Exception:
            log.exception("WebSocket handler failed")
            await self._finish(4500, "server error", clean=False)
        finally:
            if queue is not None and self.session_id is not None:
                self.hub.unsubscribe(self.session_id, queue)
            self.live.connections.discard(self)
            if self.id is not None:
                self.heartbeats.forget(self.id)

    async def shutdown(self, code: int, reason: str) -> None:
        """Close from outside (server shutdown), recording it."""
        await self._finish(code, reason, clean=True)

    # -- before open ---------------------------------------------------------------

    def _check_origin(self) -> None:
        origin = self.socket.headers.get("origin")
        if origin is not None and origin not in self.ctx.settings.allowed_origins:
            raise CloseRefusal(1008, "origin not allowed")

    def _authenticate(self) -> Principal:
        """Ticket or bearer token, decided by the Authenticator; the credential lasts as long as its token."""
        ticket = self.socket.query_params.get("ticket")
        if ticket is not None:
            principal = self.ctx.auth.ticket(ticket)
        else:
            principal = self.ctx.auth.bearer(self.socket.headers.get("authorization"), Purpose.CONNECT)
        self.credential_expires = time.monotonic() + max(
            0.0, principal.token_expires_at - self.ctx.service.clock.now().timestamp()
        )
        return principal

    def _open(self) -> None:
        assert self.session_id is not None
        settings = self.ctx.settings
        with self.ctx.service.transaction() as tx:
            # Lock the session first (PostgreSQL): tabs opening at once then count each other,
            # so the per-session cap holds under concurrency.
            connections.session_state(tx, self.session_id)
            if connections.open_count(tx, self.session_id) >= settings.ws_max_connections_per_session:
                raise CloseRefusal(4429, "too many connections for this session", retry_after=5)
            # Counted in the store, so the cap holds across workers and hosts (and, locked per address on
            # PostgreSQL, across concurrent handshakes).
            if connections.open_count_for_address(tx, self.address) >= settings.ws_max_connections_per_address:
                raise CloseRefusal(4429, "too many connections from this address", retry_after=5)
            row = connections.open_connection(
                tx, self.session_id, worker_id=self.live.worker_id, remote_addr=self.address
            )
            tx.fire(CONNECTION.name, row.id, ConnectionEvent.ACCEPT, actor=Actor.SERVER)
            state = connections.session_state(tx, self.session_id)
            closing = close_code_for_state(state) if state is not None else (4410, "session gone")
            if closing is not None:  # the session was not connectable (expired, ended) and took no connect
                raise CloseRefusal(*closing)
            self.id = row.id

    async def _welcome(self, resume: int | None) -> None:
        assert self.session_id is not None
        snapshot = await asyncio.to_thread(self.ctx.service.get, SESSION.name, self.session_id)
        recovered: bool | None = None
        replay: list[dict[str, Any]] = []
        if resume is not None:
            recovered, replay = await asyncio.to_thread(self._replay, resume, snapshot.version)
        self.last_seq = snapshot.version
        self.hub.saw(self.session_id, snapshot.version)
        await self._send(
            {
                "type": "welcome",
                "session_id": str(self.session_id),
                "state": snapshot.state,
                "connection_id": str(self.id),
                "heartbeat_interval": self.interval,
                "last_seq": snapshot.version,
                "recovered": recovered,
                "token_expires_in": round(self.credential_expires - time.monotonic()),
            }
        )
        for message in replay:
            await self._send(message)

    def _replay(self, after: int, current: int) -> tuple[bool, list[dict[str, Any]]]:
        """Transitions after ``after`` from history; all of them, or none and recovered false."""
        assert self.session_id is not None
        other = self.socket.query_params.get("session_id")
        if after > current or (other is not None and other != str(self.session_id)):
            return False, []
        entries = queries.history(self.ctx.db, SESSION.name, self.session_id, after_seq=after, limit=queries.MAX_PAGE)
        if [e.seq for e in entries] != list(range(after + 1, current + 1)):
            return False, []  # gaps (history pruned) or more than a page: the full state in welcome instead
        return True, [
            _transition(e.seq, e.event, e.from_state, e.to_state, e.actor, e.at.isoformat(), replayed=True)
            for e in entries
        ]

    # -- the open connection --------------------------------------------------------

    async def _loop(self, queue: asyncio.Queue[Any]) -> None:
        receive: asyncio.Task[Any] = asyncio.ensure_future(self.socket.receive())
        incoming: asyncio.Task[Any] = asyncio.ensure_future(queue.get())
        next_ping = time.monotonic() + self.interval
        last_pong = self._opened_at
        warned = False
        try:
            while not self.closed:
                now = time.monotonic()
                deadline_pong = last_pong + 3 * self.interval
                warn_at = self.credential_expires - TOKEN_WARNING
                timeout = max(
                    0.0,
                    min(next_ping, deadline_pong, self.credential_expires, warn_at if not warned else next_ping) - now,
                )
                done, _ = await asyncio.wait({receive, incoming}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                now = time.monotonic()
                if receive in done:
                    message = receive.result()
                    if message["type"] == "websocket.disconnect":
                        code = int(message.get("code") or 1005)
                        await self._finish(code, "closed by client", clean=code in (1000, 1001), send=False)
                        return
                    if await self._handle(message):
                        last_pong = now
                        warned = warned and self.credential_expires - now <= TOKEN_WARNING
                    receive = asyncio.ensure_future(self.socket.receive())
                if incoming in done:
                    await self._deliver(incoming.result())
                    incoming = asyncio.ensure_future(queue.get())
                if self.closed:
                    return
                if now >= deadline_pong:
                    await self._finish(4504, "heartbeat timeout", clean=False)
                elif now >= self.credential_expires:
                    await self._finish(4419, "credentials expired; refresh, then reconnect", clean=True)
                elif not warned and now >= self.credential_expires - TOKEN_WARNING:  # reauth may have moved it
                    warned = True
                    await self._send({"type": "token_expiring", "expires_in": round(self.credential_expires - now)})
                if now >= next_ping and not self.closed:
                    await self._send({"type": "ping", "ts": time.time()})
                    next_ping = now + self.interval
        finally:
            receive.cancel()
            incoming.cancel()

    async def _handle(self, message: dict[str, Any]) -> bool:
        """One client message; returns True when it counts as a heartbeat."""
        text = message.get("text")
        if text is None:
            await self._finish(4400, "binary frames are not part of the protocol", clean=True)
            return False
        if len(text) > MAX_MESSAGE:
            await self._finish(1009, "message too big", clean=True)
            return False
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "pong":
            self._pong()
            return True
        if kind == "reauth" and isinstance(data, dict) and isinstance(data.get("access_token"), str):
            await self._reauth(data["access_token"])
            return True
        await self._finish(4400, "malformed message: expected JSON with type pong or reauth", clean=True)
        return False

    def _pong(self) -> None:
        """The connection is alive, which is activity for its session: the worker's next flush records it."""
        assert self.id is not None
        assert self.session_id is not None
        self.heartbeats.beat(self.id, self.session_id, self._heartbeat_lost)

    async def _heartbeat_lost(self) -> None:
        """The store already ended this connection (a sweeper found its heartbeats missing)."""
        await self._finish(4504, "heartbeat timeout", clean=False)

    async def _reauth(self, token: str) -> None:
        try:
            principal = await asyncio.to_thread(self.ctx.auth.token, token, Purpose.CONNECT)
        except (AuthError, PersistenceError) as error:
            await self._finish(*close_code_for(error), clean=True)
            return
        if principal.session_id != self.session_id:
            await self._finish(4401, "that token belongs to another session", clean=True)
            return
        remaining = principal.token_expires_at - self.ctx.service.clock.now().timestamp()
        self.credential_expires = time.monotonic() + max(0.0, remaining)
        await self._send({"type": "reauthenticated", "token_expires_in": round(remaining)})

    async def _deliver(self, item: Any) -> None:
        if item is RESYNC:
            await self._resync()
            return
        event: TransitionEvent = item
        if event.seq <= self.last_seq:
            return
        self.last_seq = event.seq
        if self.session_id is not None:
            self.hub.saw(self.session_id, event.seq)
        await self._send(_transition(event.seq, event.event, event.from_state, event.to_state, event.actor, event.at))
        closing = close_code_for_state(event.to_state)
        if closing is not None:
            await self._finish(*closing, clean=True)

    async def _resync(self) -> None:
        """Notifications may have been lost: send what history holds beyond our last seq."""
        assert self.session_id is not None
        try:
            entries = await asyncio.to_thread(
                queries.history, self.ctx.db, SESSION.name, self.session_id, after_seq=self.last_seq
            )
        except PersistenceError:
            return
        for e in entries:
            await self._deliver(
                TransitionEvent(
                    str(self.session_id), e.seq, e.event, e.from_state, e.to_state, e.actor, e.at.isoformat()
                )
            )

    # -- closing ---------------------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        if not self.closed:
            try:
                await self.socket.send_json(message)
            except Exception:  # noqa: BLE001 - the peer went away; the receive side records how
                self.closed = True

    async def _refuse(self, refusal: CloseRefusal) -> None:
        if refusal.extra:
            await self._send({"type": "error", "code": refusal.code, "reason": refusal.reason, **refusal.extra})
        reason = refusal.reason + (
            f"; retry_after={refusal.extra['retry_after']}" if "retry_after" in refusal.extra else ""
        )
        await self._finish(refusal.code, reason, clean=True)

    async def _finish(self, code: int, reason: str, *, clean: bool, send: bool = True) -> None:
        if self._closing is not None:  # already closing: from the loop, a shutdown or a lost heartbeat
            return
        self._closing = (code, reason, clean)
        if send:
            with contextlib.suppress(Exception):  # already closed by the peer
                await self.socket.close(code=code, reason=fit_close_reason(reason))
        self.closed = True
        if self.id is not None:
            try:
                await asyncio.to_thread(self._record, code, reason, clean)
            except Exception:
                log.exception("could not record the close of connection %s", self.id)

    def _record(self, code: int, reason: str, clean: bool) -> None:
        assert self.id is not None
        with self.ctx.service.transaction() as tx:
            # Refused when already ended: a silent client's heartbeat timer (also three intervals) is due as
            # the handler gives up, and fires first (here or in the sweeper) without a close code. Keep that
            # ending, but record the code the client was sent.
            with contextlib.suppress(EventRefused, InstanceNotFound):
                event = ConnectionEvent.CLOSE if clean else ConnectionEvent.DROP
                tx.fire(CONNECTION.name, self.id, event, actor=Actor.SERVER)
            connections.record_close(tx, self.id, code, reason)


_SEQ = re.compile(r"[0-9]{1,18}")  # ASCII digits only, and few enough to be a sequence number


def _last_seq(raw: str | None) -> int | None:
    """``?last_seq=``: absent, or a decimal sequence number; anything else is the client's error (4400)."""
    if raw is None:
        return None
    if _SEQ.fullmatch(raw) is None:
        raise CloseRefusal(4400, "last_seq must be a decimal sequence number")
    return int(raw)


def _transition(
    seq: int, event: str, from_state: str, to_state: str, actor: str, at: str, *, replayed: bool = False
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "transition",
        "seq": seq,
        "event": event,
        "from_state": from_state,
        "to_state": to_state,
        "actor": actor,
        "at": at,
    }
    if replayed:
        message["replayed"] = True
    return message


@websocket("/api/ws", name="websocket")
async def ws_endpoint(socket: WebSocket[Any, Any, State], ctx: NamedDependency[AppContext]) -> None:
    """The session's live channel: welcome, transitions, heartbeats, reauth; refusals are close codes."""
    hub: Hub = socket.app.state.hub
    live: Live = socket.app.state.live
    heartbeats: Heartbeats = socket.app.state.heartbeats
    await Connection(socket, ctx, hub, live, heartbeats).run()
