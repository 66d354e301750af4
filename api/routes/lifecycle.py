"""The machines, their diagrams and the close-code table, served from the definitions the engine runs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Response, get
from litestar.params import FromPath, QueryParameter

from sessionflow.api.diagrams import render_svg
from sessionflow.api.errors import DiagramError
from sessionflow.api.problems import problem, responses
from sessionflow.lifecycle import MACHINES, Definition, protocol
from sessionflow.lifecycle.diagrams import render_dot, render_mermaid

DIAGRAM_MEDIA_TYPES = {
    "mermaid": "text/vnd.mermaid; charset=utf-8",
    "dot": "text/vnd.graphviz; charset=utf-8",
    "svg": "image/svg+xml",
}


def describe(definition: Definition) -> dict[str, Any]:
    return {
        "name": definition.name,
        "initial": str(definition.initial),
        "states": [
            {
                "name": str(s),
                "terminal": s in definition.terminal,
                "tags": sorted(definition.tags.get(s, ())),
                "description": definition.descriptions.get(s, ""),
            }
            for s in definition.states
        ],
        "events": [
            {"name": str(e.name), "fired_by": sorted(str(a) for a in e.fired_by), "description": e.description}
            for e in definition.events.values()
        ],
        "transitions": [
            {
                "event": str(t.event),
                "sources": [str(s) for s in t.sources],
                "dest": str(t.dest) if t.dest is not None else None,
                "guards": [g.name for g in t.guards],
            }
            for t in definition.transitions
        ],
        "timers": [
            {
                "name": t.name,
                "event": str(t.event),
                "armed_in": sorted(str(s) for s in t.armed_in),
                "default_seconds": t.default.total_seconds(),  # the client's backoff timer is 0.5 s
                "policy": str(t.policy),
                "description": t.description,
            }
            for t in definition.timers
        ],
    }


def _machine(name: str) -> Definition:
    definition = MACHINES.get(name)
    if definition is None:
        raise problem(404, "unknown_machine", "No such machine", f"known machines: {', '.join(MACHINES)}")
    return definition


class LifecycleController(Controller):
    path = "/api/lifecycle"
    tags = ["lifecycle"]

    @get("/machines", sync_to_thread=False, responses=responses(), summary="Every machine definition as data")
    def machines(self) -> list[dict[str, Any]]:
        return [describe(d) for d in MACHINES.values()]

    @get(
        "/machines/{name:str}",
        sync_to_thread=False,
        responses=responses(400, 404),
        summary="One machine definition as data",
    )
    def machine(self, name: FromPath[str]) -> dict[str, Any]:
        return describe(_machine(name))

    @get(
        "/machines/{name:str}/diagram",
        sync_to_thread=True,
        responses=responses(400, 404, 503),
        summary="A machine's diagram",
    )
    def diagram(
        self,
        name: FromPath[str],
        format: Annotated[Literal["mermaid", "dot", "svg"], QueryParameter(name="format")] = "mermaid",
    ) -> Response[str]:
        definition = _machine(name)
        render = {"mermaid": render_mermaid, "dot": render_dot, "svg": render_svg}[format]
        try:
            body = render(definition)
        except DiagramError as exc:
            raise problem(
                503, "renderer_unavailable", "This diagram format cannot be rendered here", str(exc)
            ) from None
        return Response(body, media_type=DIAGRAM_MEDIA_TYPES[format])

    @get(
        "/close-codes",
        sync_to_thread=False,
        responses=responses(),
        summary="WebSocket close codes and what a client should do",
    )
    def close_codes(self) -> list[dict[str, object]]:
        return protocol.as_data()
