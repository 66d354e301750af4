"""The facts the docs state that code decides, generated from that code so they cannot drift.

README.md and docs/*.md embed these blocks between ``BEGIN name`` and
``END name`` HTML comments: each machine's diagram (``diagram:<machine>``),
its states, events and timers (``states:<machine>``, ``events:<machine>``,
``timers:<machine>``), the WebSocket close codes (``close-codes``), the HTTP
routes (``routes``) and the ``SESSIONFLOW_*`` settings (``settings``).
``sessionflow diagrams`` rewrites them, with the files in ``diagrams/`` and the
TypeScript client's copy of the client machine and close codes
(:data:`TYPESCRIPT_DEFINITIONS`); ``--check`` (run in CI and by the tests)
fails when any differs.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.routes import ASGIRoute, HTTPRoute, WebSocketRoute

from sessionflow.api.diagrams import markers, mermaid_block, sync_blocks, write_files
from sessionflow.api.errors import DiagramError
from sessionflow.api.settings import PREFIX, Settings
from sessionflow.lifecycle import CLIENT, CONNECTION, MACHINES, SESSION, Actor, Definition, protocol
from sessionflow.lifecycle import access as sessionflow_access


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"


def _code(names: Iterable[object]) -> str:
    return ", ".join(f"`{name}`" for name in names) or "-"


def states_table(definition: Definition) -> str:
    rows = [_row("state", "properties", "meaning"), _row("---", "---", "---")]
    for state in definition.states:
        properties = sorted(definition.tags.get(state, ()))
        if state == definition.initial:
            properties.insert(0, "initial")
        if state in definition.terminal:
            properties.insert(0, "terminal")
        rows.append(_row(f"`{state}`", _code(properties), definition.descriptions.get(state, "")))
    return "\n".join(rows)


def events_table(definition: Definition) -> str:
    rows = [_row("event", "from", "to", "guards", "fired by", "meaning"), _row(*["---"] * 6)]
    for name, spec in definition.events.items():
        for transition in (t for t in definition.transitions if t.event == name):
            dest = f"`{transition.dest}`" if transition.dest is not None else "(same state)"
            firers = [str(actor) for actor in Actor if actor in spec.fired_by]
            timers = [timer.name for timer in definition.timers if timer.event == name]
            if timers:
                firers[firers.index("timer")] = f"timer ({', '.join(timers)})"
            guards = _code(guard.name for guard in transition.guards)
            rows.append(_row(f"`{name}`", _code(transition.sources), dest, guards, ", ".join(firers), spec.description))
    return "\n".join(rows)


def close_codes_table() -> str:
    rows = [_row("code", "name", "meaning", "client should", "retry"), _row(*["---"] * 5)]
    rows += [
        _row(row.code, f"`{row.name}`", row.meaning, f"`{row.action}`", "yes" if row.retry else "no")
        for row in protocol.CLOSE_CODES
    ]
    return "\n".join(rows)


# Routes Litestar's plugins add, which carry no summary of ours.
_BUILT_IN = {
    "/api/ws": "the live channel (docs/protocol.md)",
    "/api/inspector": "the inspector page, for admins (docs/inspector.md)",
    "/api/inspector/static/{file_path}": "the inspector page's files (HTML, CSS, JavaScript; no CDN)",
    "/api/inspector/feed": "every transition and refusal the store records, live, for admins (docs/inspector.md)",
    "/api/services/revocations": "revocations as they happen, for registered services (docs/services.md)",
    "/api/metrics": "Prometheus metrics (docs/operations.md)",
    "/api/schema": "the API docs page (Swagger UI; its scripts come from a CDN)",
    "/api/schema/swagger": "the same page",
    "/api/schema/openapi.json": "the OpenAPI document",
    "/api/schema/oauth2-redirect.html": "Swagger UI's OAuth2 redirect page",
}


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{value.total_seconds():g}s"


def _default(value: object) -> str:
    if isinstance(value, timedelta):
        return f"`{_duration(value)}`"
    if isinstance(value, tuple):
        return f"`{','.join(value)}`" if value else "(none)"
    return f"`{value}`" if value != "" else "(unset)"


def settings_table() -> str:
    """Every ``SESSIONFLOW_*`` variable, its default and meaning, from the Settings fields."""
    rows = [_row("variable", "default", "meaning"), _row("---", "---", "---")]
    for setting in dataclasses.fields(Settings):
        rows.append(_row(f"`{PREFIX}{setting.name.upper()}`", _default(setting.default), setting.metadata["doc"]))
    return "\n".join(rows)


def timers_table(definition: Definition) -> str:
    rows = [_row("timer", "fires", "armed in", "default", "policy", "meaning"), _row(*["---"] * 6)]
    order = {state: index for index, state in enumerate(definition.states)}
    for timer in definition.timers:
        armed = sorted(timer.armed_in, key=order.__getitem__)
        rows.append(
            _row(
                f"`{timer.name}`",
                f"`{timer.event}`",
                _code(armed),
                _duration(timer.default),
                f"`{timer.policy}`",
                timer.description,
            )
        )
    return "\n".join(rows)


def routes_table(app: Litestar) -> str:
    """Every route the app serves, by path; ``OPTIONS``, ``HEAD`` and the schema's catch-all left out."""
    rows = [_row("method", "path", "does"), _row("---", "---", "---")]
    for route in sorted(app.routes, key=lambda r: r.path):
        path = _plain(route.path)
        if isinstance(route, WebSocketRoute):
            rows.append(_row("WebSocket", f"`{path}`", _BUILT_IN[path]))
            continue
        if isinstance(route, ASGIRoute) and "methods" in route.route_handler.opt:  # a raw route (routes/services.py)
            documented = (app.openapi_schema.paths or {})[path]
            for method in sorted(route.route_handler.opt["methods"]):
                operation = getattr(documented, method.lower())
                rows.append(_row(method, f"`{path}`", operation.summary))
            continue
        if not isinstance(route, HTTPRoute) or path == "/api/schema/{path}":
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods - {"HEAD", "OPTIONS"}):
                rows.append(_row(method, f"`{path}`", handler.summary or _BUILT_IN[path]))
    return "\n".join(rows)


def _plain(path: str) -> str:
    """``/api/session/{session_id:uuid}`` -> ``/api/session/{session_id}``."""
    return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path)


def blocks() -> dict[str, str]:
    """Every generated block by marker name."""
    from sessionflow.api.app import create_app

    # An app only to read its routes: its database is never opened, its signing secret thrown away.
    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(database_url=f"sqlite:///{scratch}/unused.db", jwt_secret="reference-" + "x" * 32)
        routes = routes_table(create_app(settings, run_sweeper=False))
    found: dict[str, str] = {"close-codes": close_codes_table(), "routes": routes, "settings": settings_table()}
    for definition in MACHINES.values():
        found[f"diagram:{definition.name}"] = mermaid_block(definition)
        found[f"states:{definition.name}"] = states_table(definition)
        found[f"events:{definition.name}"] = events_table(definition)
        found[f"timers:{definition.name}"] = timers_table(definition)
    return found


TYPESCRIPT_DEFINITIONS = Path("clients/typescript/src/generated/lifecycle.ts")


def machine_data(definition: Definition) -> dict[str, Any]:
    """A machine's definition as the TypeScript modules hold it."""
    return {
        "name": definition.name,
        "initial": str(definition.initial),
        "terminal": sorted(str(state) for state in definition.terminal),
        "states": [str(state) for state in definition.states],
        "events": {
            str(name): {"firedBy": sorted(str(actor) for actor in spec.fired_by), "description": spec.description}
            for name, spec in definition.events.items()
        },
        "transitions": [
            {
                "event": str(row.event),
                "sources": [str(source) for source in row.sources],
                "dest": str(row.dest) if row.dest is not None else None,
            }
            for row in definition.transitions
        ],
        "timers": [
            {
                "name": timer.name,
                "event": str(timer.event),
                "armedIn": sorted(str(state) for state in timer.armed_in),
                "defaultSeconds": timer.default.total_seconds(),
                "policy": str(timer.policy),
            }
            for timer in definition.timers
        ],
    }


INSPECTOR_DEFINITIONS = Path("clients/typescript/inspector/src/generated/machines.ts")


def inspector_definitions() -> str:
    """The session and connection machines, as the inspector page draws and counts them."""

    def literal(value: object) -> str:
        return json.dumps(value, indent=2, ensure_ascii=False)

    return (
        "// Generated from the lifecycle definitions by `sessionflow diagrams`. Do not edit.\n"
        "// The machines the server runs (lifecycle/session.py, lifecycle/connection.py), for the inspector page.\n\n"
        f"export const SESSION_MACHINE = {literal(machine_data(SESSION))} as const;\n\n"
        f"export const CONNECTION_MACHINE = {literal(machine_data(CONNECTION))} as const;\n"
    )


def typescript_definitions() -> str:
    """The client machine, the session states' access and the close codes, as a TypeScript module.

    The TypeScript client runs the same client machine as the Python one, from this data; the module is
    committed and checked for drift like the diagrams, so the two clients cannot drift apart.
    """
    client = CLIENT
    machine = machine_data(client)
    access = {str(state): str(sessionflow_access(state)) for state in SESSION.states}
    close_codes = [
        {"code": row.code, "name": row.name, "meaning": row.meaning, "action": str(row.action), "retry": row.retry}
        for row in protocol.CLOSE_CODES
    ]

    def literal(value: object) -> str:
        return json.dumps(value, indent=2, ensure_ascii=False)

    states = " | ".join(json.dumps(str(state)) for state in client.states)
    events = " | ".join(json.dumps(str(name)) for name in client.events)
    return (
        "// Generated from the lifecycle definitions by `sessionflow diagrams`. Do not edit.\n"
        "// The client machine (lifecycle/client.py), what each session state allows (lifecycle/session.py)\n"
        "// and the WebSocket close codes (lifecycle/protocol.py), as the server serves them.\n\n"
        f"export type ClientState = {states};\n\n"
        f"export type ClientEvent = {events};\n\n"
        f"export const CLIENT_MACHINE = {literal(machine)} as const;\n\n"
        "/** What the holder of a session may do in each session state (docs/machines.md). */\n"
        f"export const SESSION_ACCESS = {literal(access)} as const;\n\n"
        "/** The WebSocket close codes and what a client should do on each (docs/protocol.md). */\n"
        f"export const CLOSE_CODES = {literal(close_codes)} as const;\n"
    )


def documents(root: Path) -> list[Path]:
    """The Markdown files that embed generated blocks."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def generate(root: Path, *, check: bool) -> list[Path]:
    """Bring ``diagrams/`` and every generated block under ``root`` up to date; return what differed."""
    generated = blocks()
    for path in documents(root):
        unknown = markers(path) - set(generated)
        if unknown:
            raise DiagramError(f"{path} has markers for blocks nobody generates: {', '.join(sorted(unknown))}")
    differed = write_files(root / "diagrams", MACHINES.values(), check=check)
    differed += [path for path in documents(root) if sync_blocks(path, generated, check=check)]
    for relative, content in (
        (TYPESCRIPT_DEFINITIONS, typescript_definitions()),
        (INSPECTOR_DEFINITIONS, inspector_definitions()),
    ):
        typescript = root / relative
        if not typescript.is_file() or typescript.read_text(encoding="utf-8") != content:
            differed.append(typescript)
            if not check:
                typescript.parent.mkdir(parents=True, exist_ok=True)
                typescript.write_text(content, encoding="utf-8", newline="\n")
    return differed
