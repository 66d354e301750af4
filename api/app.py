"""The Litestar application, assembled in one place from a :class:`Settings`.

Until the HTTP API lands this serves health and readiness and runs the timer
sweeper in the background, so expiry, grace and end of life fire with no
request arriving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from litestar import Litestar, Response, get
from litestar.datastructures import State
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy import text

from api.settings import Settings
from persistence import migrate
from persistence.database import Database
from persistence.service import TransitionService

log = logging.getLogger("sessionflow.app")


@get("/api/health", sync_to_thread=False)
def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@get("/api/ready", sync_to_thread=True)
def ready(state: State) -> Response[dict[str, str]]:
    """Readiness: the database answers and its schema is at the migrations' head."""
    db: Database = state.db
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        at_head = migrate.is_at_head(db)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the type is reported
        return Response({"status": "unavailable", "reason": f"database: {type(exc).__name__}"}, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    if not at_head:
        return Response({"status": "unavailable", "reason": "schema is not at head; run sessionflow migrate"}, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    return Response({"status": "ready"}, status_code=HTTP_200_OK)


async def sweep_periodically(service: TransitionService, interval: float) -> None:
    """Fire due timers every ``interval`` seconds until cancelled; errors are logged, never fatal."""
    while True:
        try:
            fired = await asyncio.to_thread(service.sweep)
            if fired:
                log.info("sweeper fired %d timer events", len(fired))
        except Exception:
            log.exception("sweep failed; retrying in %.1fs", interval)
        await asyncio.sleep(interval)


def create_app(settings: Settings) -> Litestar:
    """Build the application for ``settings``; nothing is shared between apps."""
    db = Database.from_url(settings.database_url, pool_size=settings.pool_size)
    service = TransitionService(db, durations=settings.durations())

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        task = asyncio.create_task(sweep_periodically(service, settings.sweep_interval.total_seconds()))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            db.dispose()

    return Litestar(
        route_handlers=[health, ready],
        state=State({"db": db, "service": service, "settings": settings}),
        lifespan=[lifespan],
    )


def app_from_env() -> Litestar:
    """Factory for uvicorn (``--factory``): settings from the environment."""
    return create_app(Settings.from_env())
