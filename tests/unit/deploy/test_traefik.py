"""The Traefik example routes every path the app serves, unchanged, and keeps WebSockets open.

The original platform's session routes answered 404 behind its proxy: a route
the proxy did not forward. Here every route of a freshly built app, plus the
contract's WebSocket path (docs/protocol.md), must match a router rule whose service
exists and whose middlewares leave the ``/api`` path alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from sessionflow.api.app import create_app
from sessionflow.api.settings import Settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "traefik"
WEBSOCKET_PATH = "/api/ws"  # docs/protocol.md; covered whether or not the handler exists yet
# Middlewares that rewrite the path: the app expects the /api it is addressed with.
PATH_REWRITING = {"stripPrefix", "stripPrefixRegex", "replacePath", "replacePathRegex", "addPrefix"}

_MATCHER = re.compile(r"^(Path|PathPrefix)\(`([^`]*)`\)$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_PARAMETER = re.compile(r"\{[^}]+\}")


def rule_matches(rule: str, path: str) -> bool:
    """Whether a Traefik rule of the forms used here (Path, PathPrefix, joined by ||) matches ``path``.

    Any other form fails loudly rather than being guessed at.
    """
    for term in rule.split("||"):
        match = _MATCHER.match(term.strip())
        if match is None:
            raise ValueError(f"rule form not understood by this test: {term.strip()!r} in {rule!r}")
        kind, value = match.groups()
        if (kind == "Path" and path == value) or (kind == "PathPrefix" and path.startswith(value)):
            return True
    return False


def seconds(value: object) -> float:
    """A Traefik duration (Go syntax like ``1m30s``, or a bare number of seconds) in seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a duration: {value!r}")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def concrete(route_path: str) -> str:
    """A request path for a Litestar route path: each ``{name:type}`` becomes a sample segment."""
    return _PARAMETER.sub("00000000-0000-0000-0000-000000000000", route_path)


@pytest.fixture(scope="module")
def static() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "traefik.yml").read_text())
    return config


@pytest.fixture(scope="module")
def dynamic() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((DEPLOY / "dynamic.yml").read_text())
    return config


@pytest.fixture(scope="module")
def route_paths(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Every path the app serves (HTTP and WebSocket routes alike), from a freshly built app."""
    database = tmp_path_factory.mktemp("traefik") / "x.db"
    app = create_app(Settings.from_env({"SESSIONFLOW_DATABASE_URL": f"sqlite:///{database}"}), run_sweeper=False)
    try:
        yield sorted({route.path for route in app.routes})
    finally:
        app.state.ctx.db.dispose()


def routers(dynamic: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = dynamic["http"]["routers"]
    assert found, "no HTTP routers"
    return found


def covering_router(dynamic: dict[str, Any], path: str) -> str | None:
    return next((name for name, router in routers(dynamic).items() if rule_matches(router["rule"], path)), None)


def test_rule_matcher_reads_path_and_prefix_rules() -> None:
    """The test's matcher: exact Path, string PathPrefix, alternatives with ||, nothing else."""
    rule = "Path(`/api`) || PathPrefix(`/api/`)"
    assert rule_matches(rule, "/api")
    assert rule_matches(rule, "/api/ws")
    assert not rule_matches(rule, "/apiary")
    assert not rule_matches(rule, "/")
    with pytest.raises(ValueError, match="not understood"):
        rule_matches("Host(`example.org`) && PathPrefix(`/api`)", "/api")


def test_app_serves_everything_under_one_prefix(route_paths: list[str]) -> None:
    """One prefix is what makes one proxy rule enough (docs/http-api.md)."""
    assert route_paths
    outside = [path for path in route_paths if path != "/api" and not path.startswith("/api/")]
    assert outside == []


def test_every_app_route_and_the_websocket_path_reach_the_app(route_paths: list[str], dynamic: dict[str, Any]) -> None:
    """Each route of the app, and /api/ws, matches a router whose service is defined."""
    services = dynamic["http"]["services"]
    for path in [*route_paths, WEBSOCKET_PATH]:
        name = covering_router(dynamic, concrete(path))
        assert name is not None, f"no router forwards {path}"
        assert routers(dynamic)[name]["service"] in services, f"router {name} names an undefined service"


def test_only_the_app_prefix_is_forwarded(dynamic: dict[str, Any]) -> None:
    """Paths that merely start with the letters of the prefix are not the app's."""
    for path in ("/", "/apiary", "/api.json", "/metrics"):
        assert covering_router(dynamic, path) is None, path


def test_no_middleware_rewrites_the_api_path(dynamic: dict[str, Any]) -> None:
    """No StripPrefix or similar on the routers: the app routes on the full /api path."""
    defined = dynamic["http"].get("middlewares", {})
    for name, router in routers(dynamic).items():
        for middleware in router.get("middlewares", []):
            kinds = set(defined.get(middleware.split("@")[0], {}))
            assert not kinds & PATH_REWRITING, f"router {name} rewrites paths with {middleware}: {kinds}"


def test_service_points_at_the_app_and_checks_readiness(dynamic: dict[str, Any], route_paths: list[str]) -> None:
    """Servers are plain HTTP URLs; the health check is the app's readiness route; the transport exists."""
    for name, service in dynamic["http"]["services"].items():
        balancer = service["loadBalancer"]
        assert balancer["servers"], f"service {name} has no servers"
        for server in balancer["servers"]:
            assert re.fullmatch(r"http://[^/]+", server["url"]), server["url"]
        assert balancer["healthCheck"]["path"] in route_paths
        transport = balancer.get("serversTransport")
        if transport is not None:
            assert transport in dynamic["http"]["serversTransports"]


def test_routers_listen_on_the_web_entrypoint(static: dict[str, Any], dynamic: dict[str, Any]) -> None:
    entry_points = static["entryPoints"]
    assert entry_points["web"]["address"] == ":80"
    for name, router in routers(dynamic).items():
        assert router["entryPoints"], f"router {name} names no entrypoint"
        assert set(router["entryPoints"]) <= set(entry_points), name


def test_file_provider_reads_the_dynamic_file_beside_it(static: dict[str, Any]) -> None:
    filename = Path(static["providers"]["file"]["filename"])
    assert filename.name == "dynamic.yml"
    assert (DEPLOY / filename.name).is_file()


def test_timeouts_keep_websockets_and_keep_alive_connections_healthy(
    static: dict[str, Any], dynamic: dict[str, Any]
) -> None:
    """Idle limits far above the heartbeat, a bounded request read, no pooled connection outliving the app's."""
    heartbeat = Settings().ws_heartbeat_interval
    timeouts = static["entryPoints"]["web"]["transport"]["respondingTimeouts"]
    assert timedelta(seconds=seconds(timeouts["idleTimeout"])) > 3 * heartbeat
    assert seconds(timeouts["readTimeout"]) > 0  # bounded: a handshake that never finishes is dropped
    assert seconds(timeouts["writeTimeout"]) == 0  # no cap on writing a response

    keep_alive = Settings().header_read_timeout.total_seconds()  # the app closes idle keep-alives after it
    for name, transport in dynamic["http"]["serversTransports"].items():
        forwarding = transport["forwardingTimeouts"]
        assert seconds(forwarding["idleConnTimeout"]) < keep_alive, name
        assert seconds(forwarding["responseHeaderTimeout"]) > 0, name


def test_forwarded_headers_are_not_trusted_from_anyone(static: dict[str, Any]) -> None:
    """Clients cannot forge X-Forwarded-For (per-address rate limits the app reads it from the proxy)."""
    forwarded = static["entryPoints"]["web"].get("forwardedHeaders", {})
    assert forwarded.get("insecure", False) is False
    assert not {"0.0.0.0/0", "::/0"} & set(forwarded.get("trustedIPs", []))


def test_no_access_log_records_websocket_tickets(static: dict[str, Any]) -> None:
    """Browsers pass tickets as ?ticket=: an access log may only run with the request path dropped."""
    access_log = static.get("accessLog")
    if access_log is not None:
        names = (access_log.get("fields") or {}).get("names") or {}
        assert names.get("RequestPath") == "drop"
