"""What request handlers need, built once per app by ``create_app`` and injected as ``ctx``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TypeVar

from litestar import Request
from litestar.concurrency import sync_to_thread
from litestar.datastructures import State
from litestar.di import NamedDependency

from sessionflow.api import observability
from sessionflow.api.auth.authenticate import Authenticator, Principal, Purpose, WriteNeeded
from sessionflow.api.auth.flows import Flows
from sessionflow.api.auth.services import ServiceAuth
from sessionflow.api.errors import Forbidden
from sessionflow.api.settings import Settings
from sessionflow.lifecycle import SESSION, Actor
from sessionflow.persistence import Applied, Database, FireOptions, TransitionService, WouldWait, users

BEARER = "BearerToken"  # the OpenAPI security scheme of the access token
BEARER_REQUIRED: list[dict[str, list[str]]] = [{BEARER: []}]
"""What a handler or controller that needs the access token declares (``security=BEARER_REQUIRED``)."""

T = TypeVar("T")
WRITE_WAIT_SECONDS = 1.0  # how long a write on the event loop waits for the write turn before a thread waits


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    db: Database
    service: TransitionService
    auth: Authenticator
    flows: Flows
    services: ServiceAuth  # registered services (introspection, the revocation feed)
    schema_head: str  # the migration this code expects, read once at start: probes never touch the scripts

    def principal(
        self, request: Request[object, object, State], purpose: Purpose = Purpose.USE, *, may_write: bool = True
    ) -> Principal:
        return self.auth.bearer(request.headers.get("authorization"), purpose, may_write=may_write)

    def close(self) -> None:
        """Let go of the database: the row cache's connection, then the pool and spare connections."""
        if self.auth.rows is not None:
            self.auth.rows.close()
        self.db.dispose()

    async def read(self, work: Callable[[bool], T]) -> T:
        """Run a request's short read where it costs least; ``work(may_write)`` does it.

        On SQLite it runs on the event loop with ``may_write`` false: a read by primary key in WAL mode
        takes tens of microseconds and never waits on a writer, while the hop to a worker thread and back
        cost ten times that in CPU (bench/services.py). Should the answer need a write (a due timer, an
        idle touch that cannot wait for the batch), ``work`` raises :class:`WriteNeeded` and runs again in
        a worker thread, where it may write. On PostgreSQL it always runs in a worker thread: a network
        round trip must not stall the loop. Either way every wait is bounded by the database timeout. The
        worker threads are those Litestar runs synchronous handlers on (``litestar.concurrency``).
        """
        if self.db.is_sqlite:
            try:
                return work(False)
            except WriteNeeded:
                pass
        return await sync_to_thread(work, True)

    async def write(self, work: Callable[[], T]) -> T:
        """Run a request's write where it costs least; ``work()`` does it.

        On SQLite it runs on the event loop once it has this worker's write turn, which it asks for
        without waiting, pausing on the loop between asks while another writer of this worker (the pong
        and touch batches, the sweeper, a checkpoint) has it, for at most ``WRITE_WAIT_SECONDS``. Its
        transaction never waits for SQLite's lock either: if another process holds it, :class:`WouldWait`
        comes before anything is written and ``work`` runs again in a worker thread, which waits bounded
        as every write does; so it does after the turn's wait. Each SQLite call in a worker thread lets go
        of the GIL and must win it back from the busy loop: a logout cost 2.6 times its CPU in process there,
        1.6 times on the loop (bench/http.py). The loop's writes leave checkpoints to a worker thread
        (``Database.checkpoint``). ``work`` may run twice, so what it does before its transaction must bear
        repeating (a check, a read, a due timer fired). On PostgreSQL it runs on the event loop too, its
        waits for the server awaited there (``Database.on_loop``), on one pooled connection for its reads and
        its transaction: in a worker thread it won the GIL back from the loop after each wait, which cost a
        logout about a sixth of its CPU (bench/README.md).
        """
        if not self.db.is_sqlite:
            return await self.db.on_loop(work)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WRITE_WAIT_SECONDS
        pause = 0.0005
        while not self.db.take_write_turn():
            if loop.time() + pause > deadline:
                return await sync_to_thread(work)
            await asyncio.sleep(pause)  # the loop goes on while the other writer finishes
            pause = min(pause * 2, 0.002)
        try:
            with self.db.without_waiting():
                return work()
        except WouldWait:
            pass  # another process holds SQLite's lock
        finally:
            self.db.give_back_write_turn()
        return await sync_to_thread(work)

    def reading(self, may_write: bool) -> AbstractContextManager[object]:
        """One read for a route's authentication and answer, on one connection; on a read-only pass that
        the row cache serves, one look at it (a row it does not hold is then read on its own)."""
        if may_write or self.auth.rows is None:
            return self.db.read()
        return self.auth.rows.one_look()

    def fire_as_holder(self, token: str, event: str, options: Callable[[], FireOptions] = FireOptions) -> Applied:
        """Fire ``event`` on ``token``'s own session as its holder, in one transaction with the token's check
        against the session row (:meth:`Authenticator.holder`); ``options()`` are asked for after the check."""
        with self.service.transaction() as tx:
            session_id = self.auth.holder(tx, token, Purpose.FIRE).session_id
            return tx.fire(SESSION.name, session_id, event, actor=Actor.CLIENT, **options())

    async def authenticate(self, request: Request[object, object, State], purpose: Purpose = Purpose.USE) -> Principal:
        """:meth:`principal`, through :meth:`read`."""
        return await self.read(lambda may_write: self.principal(request, purpose, may_write=may_write))

    def is_admin(self, principal: Principal) -> bool:
        if principal.user_id is None:
            return False
        user = users.by_id(self.db, principal.user_id)
        return bool(user and user.is_admin and user.enabled)

    def require_admin(self, principal: Principal) -> None:
        if not self.is_admin(principal):
            raise Forbidden("this needs the admin role", code="admin_required")


def request_id(request: Request[object, object, State]) -> str:
    """The request's id: the caller's X-Request-ID if well-formed, else one we made (see observability)."""
    value = request.scope.get("state", {}).get("request_id")
    if isinstance(value, str):
        return value
    return observability.request_id_of(request.scope.get("headers", ()))


Ctx = NamedDependency[AppContext]
"""How a handler asks for the context: ``ctx: Ctx`` (named, explicit dependency injection)."""


def provider(ctx: AppContext) -> Callable[[], AppContext]:
    """The ``ctx`` dependency of an app: its context, with no parameter for Litestar to resolve per request."""

    def provide_ctx() -> AppContext:
        return ctx

    return provide_ctx
