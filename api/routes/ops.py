"""Liveness and readiness."""

from __future__ import annotations

from litestar import Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy import text

from sessionflow.api.context import Ctx
from sessionflow.persistence import migrate


@get("/api/health", sync_to_thread=False, tags=["operations"], summary="Liveness: the process answers")
def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/api/ready", sync_to_thread=True, tags=["operations"], summary="Readiness: database reachable, schema at head")
def ready(ctx: Ctx) -> Response[dict[str, str]]:
    try:
        with ctx.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        at_head = migrate.current(ctx.db) == ctx.schema_head
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; only the type is reported
        return Response(
            {"status": "unavailable", "reason": f"database: {type(exc).__name__}"},
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
        )
    if not at_head:
        return Response(
            {"status": "unavailable", "reason": "schema is not at head; run sessionflow migrate"},
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
        )
    return Response({"status": "ready"}, status_code=HTTP_200_OK)
