"""``/api/inspector/feed``: every transition and refusal the store records, live, for admins.

The feed tails the store (``transitions.id``, ``refusals.id``), so it sees
what every worker, the sweeper and the command line did, costs nothing on
the write path, and resumes after a restart or a drop from the ``seq`` the
page saw last, like the session protocol resumes from ``last_seq``:

1. Handshake with ``?ticket=`` (from ``POST /api/session/{id}/ws-ticket``),
   and ``after`` / ``refusals_after`` to resume. Always accepted first,
   then refused with a close code: 4401/4408 bad ticket, 4406 not an admin,
   1008 a foreign ``Origin``.
2. ``welcome``: where the feed starts, and ``recovered``: true when it
   replays everything after the given ``seq``, false when that was more than
   :data:`REPLAY_LIMIT` behind (reload the counts, then follow).
3. ``transitions`` and ``refusals`` messages, in batches, in id order.
   The feed takes no messages: one closes it with 4400. A reader that does
   not take a message within :data:`SEND_TIMEOUT` is closed with 4500, to
   reconnect and resume.

PostgreSQL hands out ids before commit, so a later id can commit first: a
gap is waited for up to :data:`GAP_WAIT` before it is passed over (a rolled
back insert leaves a gap for ever). SQLite commits in id order: no wait.
The admin's session is checked every :data:`RECHECK_EVERY` seconds and the
feed ends when its credential expires (4419), as the session protocol does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from litestar import WebSocket, websocket
from litestar.datastructures import State
from litestar.di import NamedDependency

from sessionflow.api.auth.authenticate import Principal, Purpose, require
from sessionflow.api.context import AppContext
from sessionflow.api.errors import AuthError, CloseRefusal, Forbidden
from sessionflow.api.problems import close_code_for, fit_close_reason
from sessionflow.lifecycle import SESSION
from sessionflow.persistence import PersistenceError, inspection

log = logging.getLogger("sessionflow.inspector")

POLL_EVERY = 0.25  # seconds between reads of the store
GAP_WAIT = 1.0  # seconds a missing id may take to commit (PostgreSQL)
RECHECK_EVERY = 5.0  # seconds between checks that the admin's session still stands
REPLAY_LIMIT = 20_000  # transitions a resume may be behind and still replay them all
SEND_TIMEOUT = 10.0  # seconds a message may wait for a reader that does not read


@dataclass
class Feeds:
    """This worker's open feeds, closed with 1001 on shutdown like the session sockets."""

    open: set[Feed] = field(default_factory=set)

    async def drain(self) -> None:
        await asyncio.gather(*(f.close(1001, "server going away") for f in list(self.open)), return_exceptions=True)


class Cursor:
    """Where one reader stands in a table ordered by id, and which gap it is waiting for."""

    def __init__(self, after: int, gap_wait: float) -> None:
        self.after = after
        self.gap_wait = gap_wait
        self._gap_since: float | None = None

    def take(self, seqs: list[int], now: float) -> int:
        """How many of ``seqs`` (ascending, all > after) to deliver now; moves past them."""
        taken = 0
        for seq in seqs:
            if seq != self.after + 1:
                if self._gap_since is None:
                    self._gap_since = now
                if now - self._gap_since < self.gap_wait:
                    return taken
            self._gap_since = None
            self.after = seq
            taken += 1
        return taken


class Feed:
    def __init__(self, socket: WebSocket[Any, Any, State], ctx: AppContext, feeds: Feeds) -> None:
        self.socket = socket
        self.ctx = ctx
        self.feeds = feeds
        self.principal: Principal | None = None
        self.credential_expires = 0.0  # monotonic
        self.closed = False

    async def run(self) -> None:
        await self.socket.accept()
        self.feeds.open.add(self)
        try:
            self._check_origin()
            self.principal = await asyncio.to_thread(self._authenticate)
            transitions, refusals, recovered = await asyncio.to_thread(self._start)
            await self._send(
                {"type": "welcome", "seq": transitions.after, "refusal_seq": refusals.after, "recovered": recovered}
            )
            await self._follow(transitions, refusals)
        except CloseRefusal as refusal:
            await self.close(refusal.code, refusal.reason)
        except (AuthError, PersistenceError) as error:
            await self.close(*close_code_for(error))
        except Exception:
            log.exception("inspector feed failed")
            await self.close(4500, "server error")
        finally:
            self.feeds.open.discard(self)

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):  # the peer is gone already
            await self.socket.close(code=code, reason=fit_close_reason(reason))

    def _check_origin(self) -> None:
        """Browsers send ``Origin``: this server's own (the page) or an allowed app's; no header: not a browser."""
        origin = self.socket.headers.get("origin")
        if origin is None or origin in self.ctx.settings.allowed_origins:
            return
        if urlsplit(origin).netloc != self.socket.headers.get("host", ""):
            raise CloseRefusal(1008, "origin not allowed")

    def _authenticate(self) -> Principal:
        ticket = self.socket.query_params.get("ticket")
        if ticket is None:
            raise CloseRefusal(4401, "a ticket is needed: ?ticket= from POST /api/session/{id}/ws-ticket")
        principal = self.ctx.auth.ticket(ticket)
        if not self.ctx.is_admin(principal):
            raise Forbidden("the inspector's feed needs the admin role", code="admin_required")
        self.credential_expires = time.monotonic() + max(
            0.0, principal.token_expires_at - self.ctx.service.clock.now().timestamp()
        )
        return principal

    def _position(self, name: str) -> int | None:
        raw = self.socket.query_params.get(name)
        if raw is None:
            return None
        if not raw.isdigit() or len(raw) > 18:
            raise CloseRefusal(4400, f"{name} must be a non-negative integer")
        return int(raw)

    def _start(self) -> tuple[Cursor, Cursor, bool | None]:
        after, refusals_after = self._position("after"), self._position("refusals_after")
        seq, refusal_seq = inspection.newest(self.ctx.db)
        gap_wait = GAP_WAIT if self.ctx.db.is_postgresql else 0.0
        if after is None:  # a new reader starts now; its counts come from GET /api/inspector/overview
            return Cursor(seq, gap_wait), Cursor(refusal_seq, gap_wait), None
        recovered = after <= seq and seq - after <= REPLAY_LIMIT
        if not recovered:
            after, refusals_after = seq, refusal_seq
        refusals_after = refusal_seq if refusals_after is None else min(refusals_after, refusal_seq)
        return Cursor(after, gap_wait), Cursor(refusals_after, gap_wait), recovered

    async def _follow(self, transitions: Cursor, refusals: Cursor) -> None:
        receive = asyncio.ensure_future(self.socket.receive())
        next_check = time.monotonic() + RECHECK_EVERY
        try:
            while not self.closed:
                batches = await asyncio.to_thread(self._read, transitions, refusals)
                for batch in batches:
                    await self._send(batch)
                full = any(len(b["items"]) >= inspection.PAGE for b in batches)
                done, _ = await asyncio.wait({receive}, timeout=0 if full else POLL_EVERY)
                if receive in done:
                    if receive.result()["type"] == "websocket.disconnect":
                        self.closed = True
                        return
                    await self.close(4400, "the feed takes no messages")
                    return
                now = time.monotonic()
                if now >= self.credential_expires:
                    await self.close(4419, "credentials expired; refresh, then reconnect")
                elif now >= next_check:
                    next_check = now + RECHECK_EVERY
                    await asyncio.to_thread(self._recheck)
        finally:
            receive.cancel()

    def _read(self, transitions: Cursor, refusals: Cursor) -> list[dict[str, Any]]:
        now = time.monotonic()
        batches: list[dict[str, Any]] = []
        rows, refused = inspection.news(self.ctx.db, transitions.after, refusals.after)
        taken = transitions.take([r.seq for r in rows], now)
        if taken:
            batches.append({"type": "transitions", "items": [r.to_json() for r in rows[:taken]]})
        taken = refusals.take([r.seq for r in refused], now)
        if taken:
            batches.append({"type": "refusals", "items": [r.to_json() for r in refused[:taken]]})
        return batches

    def _recheck(self) -> None:
        """The admin's session must still stand (a logout or revocation ends the feed), and its user be an admin."""
        assert self.principal is not None
        snapshot = self.ctx.service.get(SESSION.name, self.principal.session_id)
        require(snapshot.state, Purpose.CONNECT)
        if not self.ctx.is_admin(self.principal):
            raise Forbidden("the inspector's feed needs the admin role", code="admin_required")

    async def _send(self, message: dict[str, Any]) -> None:
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.socket.send_text(json.dumps(message, separators=(",", ":")))
        except TimeoutError:
            await self.close(4500, "the reader fell behind; reconnect and resume from the last seq")
        except Exception:  # noqa: BLE001 - the peer went away
            self.closed = True


@websocket("/api/inspector/feed", name="inspector-feed")
async def feed_endpoint(socket: WebSocket[Any, Any, State], ctx: NamedDependency[AppContext]) -> None:
    """Every transition and refusal the store records, for admins; resumable by ``seq``."""
    feeds: Feeds = socket.app.state.feeds
    await Feed(socket, ctx, feeds).run()
