"""The Litestar application, assembled in one place from a :class:`Settings`.

``create_app(settings)`` builds everything (database, transition service,
keys, flows, routes, error mapping, observability) with no import-time
state, so tests build apps with their own settings. The lifespan runs the
timer sweeper, so expiry, grace and end of life fire with no request arriving.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import importlib.metadata
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import msgspec
from granian.utils.proxies import wrap_asgi_with_proxy_headers
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Schema,
    SecurityScheme,
)
from litestar.plugins.problem_details import ProblemDetailsPlugin
from litestar.types import ASGIApp

from sessionflow.api import fanout, limits, observability, problems
from sessionflow.api.auth.authenticate import Authenticator
from sessionflow.api.auth.browser import CSRF_HEADER
from sessionflow.api.auth.flows import Flows
from sessionflow.api.auth.keys import load_keys
from sessionflow.api.auth.oidc import from_settings as oidc_from_settings
from sessionflow.api.auth.services import ServiceAuth
from sessionflow.api.auth.tokens import AccessTokens
from sessionflow.api.context import BEARER, AppContext, provider
from sessionflow.api.fanout_redis import RedisFanout
from sessionflow.api.heartbeats import SESSION_TOUCH_EVERY, Heartbeats
from sessionflow.api.inspector.assembly import Inspector
from sessionflow.api.revocations import revocations_endpoint
from sessionflow.api.routes.admin import AdminController
from sessionflow.api.routes.auth import AuthController
from sessionflow.api.routes.lifecycle import DIAGRAM_MEDIA_TYPES, LifecycleController
from sessionflow.api.routes.ops import health, ready
from sessionflow.api.routes.services import ServicesController, ServicesDocs
from sessionflow.api.routes.sessions import SessionController
from sessionflow.api.settings import Settings
from sessionflow.api.threads import to_thread
from sessionflow.api.touches import Touches
from sessionflow.api.ws import Live, ws_endpoint
from sessionflow.lifecycle import Clock, SystemClock
from sessionflow.persistence import CONNECTIONS, Database, RowCache, StoreUnavailable, TransitionService, migrate

log = logging.getLogger("sessionflow.app")

# Per process: what must run before the server closes sockets on shutdown (each app's
# live WebSockets close with 1001 and are recorded). See api/server.py.
DRAINS: list[Callable[[], Awaitable[None]]] = []


CHECKPOINT_EVERY = 0.1  # seconds between SQLite checkpoints, which the event loop's writes never run


async def checkpoint_periodically(db: Database, interval: float = CHECKPOINT_EVERY) -> None:
    """SQLite: copy the WAL into the database file every ``interval`` seconds, in a worker thread, until
    cancelled. Writes on the event loop never checkpoint at commit (``Database.without_waiting``): a
    checkpoint is milliseconds of I/O, which every request of the worker would wait out there. Skipped
    while the loop has written nothing since the last one. PostgreSQL needs none of it: returns at once."""
    seen = db.no_wait_commits
    while db.is_sqlite:
        await asyncio.sleep(interval)
        if db.no_wait_commits == seen:
            continue
        seen = db.no_wait_commits
        try:
            await to_thread(db.checkpoint)
        except StoreUnavailable:
            pass  # the sweeper and the requests report an outage; the next checkpoint catches up
        except Exception:
            log.exception("checkpoint failed; retrying in %.1fs", interval)


async def sweep_periodically(service: TransitionService, interval: float, *, heartbeat_grace: float) -> None:
    """Fire due timers every ``interval`` seconds until cancelled; errors are logged, never fatal.

    After the store was unavailable, connections' timers wait ``heartbeat_grace`` seconds more: the pongs
    every worker kept during the outage land first (api/heartbeats.py), so the overdue heartbeat timers
    of connections that kept answering are restarted instead of fired. An outage is logged once, as a
    warning, and its end once.
    """
    outage_since: float | None = None
    grace_until = 0.0
    while True:
        try:
            skip = (CONNECTIONS.name,) if outage_since is not None or time.monotonic() < grace_until else ()
            fired = await to_thread(service.sweep, skip=skip)
            if outage_since is not None:
                log.warning("the store is available again after %.1f s", time.monotonic() - outage_since)
                outage_since, grace_until = None, time.monotonic() + heartbeat_grace
            if fired:
                log.info("sweeper fired %d timer events", len(fired))
        except StoreUnavailable as exc:
            if outage_since is None:
                outage_since = time.monotonic()
                log.warning(
                    "sweep failed: store unavailable (%s); retrying every %.1f s",
                    type(exc.__cause__ or exc).__name__,
                    interval,
                )
        except Exception:
            log.exception("sweep failed; retrying in %.1fs", interval)
        await asyncio.sleep(interval)


def build_context(settings: Settings, *, clock: Clock | None = None) -> AppContext:
    clock = clock or SystemClock()
    db = Database.from_url(
        settings.database_url, pool_size=settings.pool_size, timeout=settings.database_timeout.total_seconds()
    )
    service = TransitionService(db, clock=clock, durations=settings.durations())
    service.hooks.after_commit.append(observability.count_applied)
    service.hooks.on_refused.append(observability.count_refused)
    access = AccessTokens(
        load_keys(settings),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=settings.access_token_ttl,
        clock=clock,
    )
    return AppContext(
        settings=settings,
        db=db,
        service=service,
        auth=Authenticator(
            service,
            access,
            idle_timeout=settings.session_idle_timeout,
            rows=RowCache(db) if RowCache.fits(db) else None,
        ),
        flows=Flows(service, access, settings),
        services=ServiceAuth(db),
        schema_head=migrate.head(),
    )


def create_app(settings: Settings, *, clock: Clock | None = None, run_sweeper: bool = True) -> Litestar:
    """Build the application for ``settings``; nothing is shared between apps."""
    ctx = build_context(settings, clock=clock)
    oidc = oidc_from_settings(settings, ctx.db, ctx.service.clock)
    hub = fanout.Hub()
    live = Live(worker_id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    heartbeats = Heartbeats(
        ctx.service,
        every=settings.ws_heartbeat_interval.total_seconds() / 2,
        session_touch_every=min(SESSION_TOUCH_EVERY, settings.session_idle_timeout.total_seconds() / 4),
    )
    touches = Touches(ctx.service)
    ctx.auth.defer_touches(touches)
    transport = settings.fanout_transport()
    redis_fanout: RedisFanout | None = None
    if transport == "redis":
        redis_fanout = RedisFanout(settings.redis_url, settings.redis_channel, hub, live.worker_id)
        redis_fanout.install(ctx.service)
    elif transport == "postgres":
        fanout.install_postgres_notify(ctx.service)
    else:
        fanout.install_in_process(ctx.service, hub)
    inspector = Inspector.install(ctx)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        log.info("sessions stored in %s; fan-out: %s", settings.database_shown(), transport)
        hub.bind(asyncio.get_running_loop())
        observability.SESSIONS_BY_STATE.attach(ctx.db)
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(heartbeats.run()),
            asyncio.create_task(touches.run()),
            asyncio.create_task(fanout.resync_periodically(ctx.db, hub, settings.ws_resync_interval.total_seconds())),
            asyncio.create_task(checkpoint_periodically(ctx.db)),
        ]
        if run_sweeper:
            interval, grace = settings.sweep_interval.total_seconds(), settings.ws_heartbeat_interval.total_seconds()
            tasks.append(asyncio.create_task(sweep_periodically(ctx.service, interval, heartbeat_grace=grace)))
        if redis_fanout is not None:
            redis_fanout.bind(asyncio.get_running_loop())
            tasks += [
                asyncio.create_task(redis_fanout.publish(stop)),
                asyncio.create_task(redis_fanout.subscribe(stop)),
            ]
        elif transport == "postgres":
            tasks.append(asyncio.create_task(fanout.listen(ctx.db, hub, stop=stop)))
        tasks += [asyncio.create_task(job) for job in inspector.background()]
        DRAINS.extend((live.drain, inspector.feeds.drain))
        try:
            yield
        finally:
            DRAINS.remove(live.drain)
            DRAINS.remove(inspector.feeds.drain)
            await live.drain()
            await inspector.feeds.drain()
            stop.set()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await touches.flush()  # activity noted since the last batch still counts
            observability.SESSIONS_BY_STATE.detach(ctx.db)
            ctx.close()
            observability.log_last(log, "application shutdown complete")

    return _complete_openapi(
        Litestar(
            route_handlers=[
                health,
                ready,
                ws_endpoint,
                revocations_endpoint,
                AuthController,
                SessionController,
                LifecycleController,
                AdminController,
                ServicesController,
                observability.MetricsController,
                *inspector.routes(),
            ],
            dependencies={"ctx": Provide(provider(ctx), sync_to_thread=False)},
            state=State(
                {"ctx": ctx, "oidc": oidc, "hub": hub, "live": live, "heartbeats": heartbeats, "feeds": inspector.feeds}
            ),
            lifespan=[lifespan],
            plugins=[ProblemDetailsPlugin(problems.config())],
            exception_handlers={Exception: problems.internal_error},
            middleware=[
                observability.request_id_middleware,
                observability.prometheus().middleware,
                limits.request_bodies(settings.body_read_timeout.total_seconds()),
            ],
            logging_config=observability.logging_config(settings.log_level),
            openapi_config=OpenAPIConfig(
                components=Components(
                    security_schemes={
                        BEARER: SecurityScheme(
                            type="http",
                            scheme="bearer",
                            bearer_format="JWT",
                            description="An access token from POST /api/auth/login or /api/auth/refresh",
                        )
                    }
                ),
                title="sessionflow",
                version=importlib.metadata.version("sessionflow"),
                path="/api/schema",
                render_plugins=[SwaggerRenderPlugin()],
                description="Session and WebSocket lifecycles as persistent, enforced state machines.",
            ),
            request_max_body_size=64 * 1024,
            cors_config=_cors(settings),
        )
    )


def _complete_openapi(app: Litestar) -> Litestar:
    """Say in the OpenAPI document what Litestar leaves out: the raw ASGI routes (:class:`ServicesDocs`),
    bodies refuse unknown fields (``forbid_unknown_fields``: ``additionalProperties: false``) and the
    diagram route's media types."""
    spec = app.openapi_schema
    if spec.components is None:
        spec.components = Components()
    if spec.components.schemas is None:
        spec.components.schemas = {}
    schemas = spec.components.schemas
    raw = _raw_routes_documented()
    spec.paths = {**(spec.paths or {}), **copy.deepcopy(raw.paths or {})}
    for name, generated in (raw.components.schemas or {}).items():
        schemas.setdefault(name, copy.deepcopy(generated))
    for struct in _structs(msgspec.Struct):
        if struct.__module__.startswith("sessionflow.api") and struct.__struct_config__.forbid_unknown_fields:
            schema = schemas.get(struct.__name__)
            if isinstance(schema, Schema):
                schema.additional_properties = False
    diagram = (spec.paths or {}).get("/api/lifecycle/machines/{name}/diagram")
    if diagram is not None and diagram.get is not None and diagram.get.responses:
        ok = diagram.get.responses.get("200")
        if isinstance(ok, OpenAPIResponse):
            text = Schema(type=OpenAPIType.STRING)
            ok.content = {media_type: OpenAPIMediaType(schema=text) for media_type in DIAGRAM_MEDIA_TYPES.values()}
    return app


@functools.cache
def _raw_routes_documented() -> OpenAPI:
    """What Litestar generates for the routes served as raw ASGI, from their never-served twins."""
    twin = Litestar(
        route_handlers=[ServicesDocs],
        plugins=[ProblemDetailsPlugin(problems.config())],
        openapi_config=OpenAPIConfig(title="sessionflow", version="-"),
    )
    return twin.openapi_schema


def _structs(base: type[msgspec.Struct]) -> Iterator[type[msgspec.Struct]]:
    for sub in base.__subclasses__():
        yield sub
        yield from _structs(sub)


def _cors(settings: Settings) -> CORSConfig | None:
    """Cross-origin calls, credentials included, for the browser apps of ``SESSIONFLOW_ALLOWED_ORIGINS`` only.

    Any other origin gets no CORS headers at all, so its scripts cannot read a response.
    """
    if not settings.allowed_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.allowed_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "If-Match", "Idempotency-Key", "X-Request-ID", CSRF_HEADER],
        expose_headers=["ETag", "Retry-After", "WWW-Authenticate", "X-Request-ID"],
        allow_credentials=True,
        max_age=600,
    )


def app_from_env() -> ASGIApp:
    """Factory for the server (api/server.py): settings from the environment.

    ``X-Forwarded-For`` sets the client address only on connections from ``SESSIONFLOW_FORWARDED_ALLOW_IPS``.
    """
    settings = Settings.from_env()
    app = create_app(settings)
    if not settings.forwarded_allow_ips:
        return app
    wrapped: ASGIApp = wrap_asgi_with_proxy_headers(app, settings.forwarded_allow_ips)
    return wrapped
