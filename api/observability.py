"""Request ids, logging and Prometheus metrics.

Every log line carries the request id (``X-Request-ID`` from the caller when
well formed, else generated, and echoed on the response). Access logs record
method, path and status only: never headers, query strings or bodies, where
tokens, tickets and passwords travel. Every message is one line, whatever a
client put in it (api/logformat.py). Metrics are served to the bearer of
``SESSIONFLOW_METRICS_TOKEN`` only.
"""

from __future__ import annotations

import contextvars
import hmac
import logging
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, NotFoundException
from litestar.handlers.base import BaseRouteHandler
from litestar.logging.config import LoggingConfig
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController, PrometheusMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sessionflow.lifecycle import EventRefused
from sessionflow.persistence import Applied, Database, queries

ACCESS = logging.getLogger("sessionflow.access")
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Give every HTTP request and WebSocket an id, in the scope, the logs and the response; write each HTTP
    request's access-log line when its response has been sent.

    The access log is one line per request, ``method path status duration``: no header, query string or
    body. (Litestar's logging middleware wrote two lines and cost about a tenth of an authenticated read's
    CPU in the server, bench/services.py.)
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        rid = request_id_of(scope.get("headers", ()))
        scope.setdefault("state", {})["request_id"] = rid
        token = REQUEST_ID.set(rid)
        status = 0
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            if scope["type"] == ScopeType.HTTP and ACCESS.isEnabledFor(logging.INFO):
                elapsed = (time.perf_counter() - start) * 1000
                ACCESS.info("%s %s %s %.1fms", scope["method"], scope["path"], status or "-", elapsed)
            REQUEST_ID.reset(token)

    return middleware


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-ID`` among raw ASGI ``headers`` if well formed, else a new id."""
    for name, value in headers:
        if name == b"x-request-id":
            header = value.decode("latin-1")
            return header if _VALID_ID.match(header) else new_request_id()
    return new_request_id()


def new_request_id() -> str:
    """32 random hex digits, in the form ``uuid4().hex`` gave.

    From ``random``, which Python reseeds in every forked worker, not from the operating system: a
    request id names a request in the logs and is no secret (a caller may send its own), and asking
    the kernel for randomness lets go of the GIL, which in the server cost a hand-off to another
    thread and back on every request (bench/services.py).
    """
    return f"{random.getrandbits(128):032x}"


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def logging_config(level: str) -> LoggingConfig:
    return LoggingConfig(
        filters={"request_id": {"()": _RequestIdFilter}},
        formatters={
            "standard": {
                "()": "sessionflow.api.logformat.SafeFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
            }
        },
        handlers={
            "console": {"class": "logging.StreamHandler", "formatter": "standard", "filters": ["request_id"]},
            "queue_listener": {
                "class": "litestar.logging.standard.QueueListenerHandler",
                "level": "DEBUG",
                "formatter": "standard",
                "filters": ["request_id"],
            },
        },
        loggers={
            "sessionflow": {"level": level.upper(), "handlers": ["queue_listener"], "propagate": False},
            "litestar": {"level": level.upper(), "handlers": ["queue_listener"], "propagate": False},
            "transitions": {"level": "WARNING"},  # per-callback chatter; our history table is the record
            # At DEBUG, SQLAlchemy logs result rows, password and token hashes included: never below INFO.
            "sqlalchemy": {"level": "WARNING"},
        },
        log_exceptions="never",  # unexpected errors are logged once, by api.problems.internal_error
    )


LOG_FLUSH_TIMEOUT = 2.0  # seconds a stopping worker waits for its queued log lines to be written


def flush_logs(timeout: float = LOG_FLUSH_TIMEOUT) -> None:
    """Wait, at most ``timeout`` seconds, until every queued log line of our loggers has been written.

    Log lines go through a queue to a writer thread, which stops at interpreter exit. granian's
    workers are forked processes that end with ``os._exit``, skipping that, so a worker's last lines
    (its shutdown report) would be lost unless the lifespan waits for the queue before returning.
    """
    deadline = time.monotonic() + timeout
    for name in ("sessionflow", "litestar"):
        for handler in logging.getLogger(name).handlers:
            queue = getattr(getattr(handler, "listener", None), "queue", None)
            if queue is None or not hasattr(queue, "all_tasks_done"):
                continue
            with queue.all_tasks_done:
                queue.all_tasks_done.wait_for(
                    lambda q=queue: q.unfinished_tasks == 0, max(0.0, deadline - time.monotonic())
                )


def log_last(logger: logging.Logger, message: str) -> None:
    """Log a stopping worker's last line and wait (bounded) until it, and every line before it, is written."""
    logger.info(message)
    flush_logs()


TRANSITIONS = Counter(
    "sessionflow_transitions",
    "Events applied or refused, by machine, event and outcome",
    ["machine", "event", "outcome"],
)


REFRESHES = Counter(
    "sessionflow_refreshes",
    "Token refreshes by outcome: rotated, within_grace (a race or retry inside the reuse window), reuse_revoked",
    ["outcome"],
)


def count_applied(applied: Sequence[Applied]) -> None:
    """After-commit hook: every event a transaction applied, timer events included."""
    for a in applied:
        TRANSITIONS.labels(a.machine, a.event, "applied").inc()


def count_refused(refused: EventRefused) -> None:
    TRANSITIONS.labels(refused.machine, refused.event, "refused").inc()


class _SessionsByState(Collector):
    """Sessions per state, read from the database at scrape time."""

    def __init__(self) -> None:
        self._sources: list[Database] = []
        self._lock = threading.Lock()

    def attach(self, db: Database) -> None:
        with self._lock:
            self._sources.append(db)

    def detach(self, db: Database) -> None:
        with self._lock:
            if db in self._sources:
                self._sources.remove(db)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            db = self._sources[-1] if self._sources else None
        if db is None:
            return
        family = GaugeMetricFamily("sessionflow_sessions", "Sessions by state", labels=["state"])
        for state, count in queries.count_sessions_by_state(db).items():
            family.add_metric([state], count)
        yield family


SESSIONS_BY_STATE = _SessionsByState()
REGISTRY.register(SESSIONS_BY_STATE)


UNMEASURED = "unmeasured"  # the opt key of routes the request metrics leave out
MAX_LABEL_SETS = 4096  # (method, route, status) combinations whose metric children are kept


class LeanPrometheusMiddleware(PrometheusMiddleware):
    """Litestar's request metrics (same names, labels and values) at a fraction of the cost per request.

    Litestar's middleware builds a ``Request`` and looks each labelled child up four times a request
    (a lock and a tuple of strings each): about a sixth of an authenticated read's CPU in the server
    (bench/services.py). This one reads the method and route template from the scope and keeps the
    children of each label set. Routes are templates, so the label sets are few; past
    ``MAX_LABEL_SETS`` children are looked up each time instead of kept.
    """

    def __init__(self, app: ASGIApp, config: PrometheusConfig) -> None:
        super().__init__(app, config)
        self._in_progress: dict[tuple[str, str], Any] = {}
        self._done: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def _labels(self, method: str, path: str, status: int) -> dict[str, str | int | float]:
        return {"method": method, "path": path, "status_code": status, "app_name": self._config.app_name}

    def _gauge(self, method: str, path: str) -> Any:
        child = self._in_progress.get((method, path))
        if child is None:
            labels = self._labels(method, path, 200)
            child = self.requests_in_progress(labels).labels(*labels.values())
            if len(self._in_progress) < MAX_LABEL_SETS:
                self._in_progress[(method, path)] = child
        return child

    def _finished(self, method: str, path: str, status: int) -> tuple[Any, Any, Any]:
        children = self._done.get((method, path, status))
        if children is None:
            labels = self._labels(method, path, status)
            values = [*labels.values()]
            children = (
                self.request_count(labels).labels(*values),
                self.request_time(labels).labels(*values),
                self.requests_error_count(labels).labels(*values) if status >= 500 else None,
            )
            if len(self._done) < MAX_LABEL_SETS:
                self._done[(method, path, status)] = children
        return children

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"] if scope["type"] == ScopeType.HTTP else str(scope["type"])
        path = scope["path_template"] if self._config.group_path else scope["path"]
        in_progress = self._gauge(method, path)
        start = time.perf_counter()
        status, duration = 200, 0.0

        async def measured_send(message: Message) -> None:
            nonlocal status, duration
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                duration = time.perf_counter() - start
            await send(message)

        in_progress.inc()
        try:
            await self.app(scope, receive, measured_send)
        finally:
            in_progress.dec()
            count, seconds, errors = self._finished(method, path, status)
            if errors is not None:
                errors.inc()
            count.inc()
            seconds.observe(duration)


def prometheus() -> PrometheusConfig:
    return PrometheusConfig(
        app_name="sessionflow",
        prefix="sessionflow",
        group_path=True,
        exclude_opt_key=UNMEASURED,  # a look-up on the route, where a path pattern was a regex per request
        middleware_class=LeanPrometheusMiddleware,
    )


async def metrics_token_required(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Metrics are for the operator's scraper only: ``Authorization: Bearer $SESSIONFLOW_METRICS_TOKEN``.

    They describe the deployment (sessions by state, refusals, request rates); OWASP advises keeping such
    endpoints from the public. Without a token configured they are off (404); a wrong token is 401.
    """
    expected = connection.app.state.ctx.settings.metrics_token
    if not expected:
        raise NotFoundException("metrics are off; set SESSIONFLOW_METRICS_TOKEN to serve them")
    presented = connection.headers.get("authorization", "")
    if not hmac.compare_digest(presented.encode(), f"Bearer {expected}".encode()):
        raise NotAuthorizedException(
            "metrics need the bearer token of SESSIONFLOW_METRICS_TOKEN", headers={"WWW-Authenticate": "Bearer"}
        )


class MetricsController(PrometheusController):
    path = "/api/metrics"
    include_in_schema = False
    opt = {UNMEASURED: True}  # scrapes are not requests of the API
    guards = [metrics_token_required]
