"""The demo's sequence diagram: deterministic for the same exchange, whatever order concurrent messages arrived in."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sessionflow.api.demo import HEADER, Recorder, _diagram
from sessionflow.api.errors import CommandFailed
from sessionflow.client import ClientTransition, Delay, SessionTransition, Wire

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def http(exchange: int, kind: str, text: str) -> Wire:
    return Wire("http", "send" if kind == "request" else "receive", kind, text, exchange)


def ws(direction: str, kind: str, text: str, **fields: object) -> Wire:
    return Wire("ws", direction, kind, text, 0, fields)


def moved(event: str, source: str, dest: str, **extra: object) -> ClientTransition:
    return ClientTransition(event, source, dest, "server", NOW, **extra)


def refresh_message() -> Wire:
    return ws(
        "receive",
        "message",
        "transition 6 ws_connected → ws_connected (refresh)",
        type="transition",
        event="refresh",
        replayed=False,
    )


def record(feed: list[Wire | ClientTransition | SessionTransition]) -> str:
    recorder = Recorder(io.StringIO())
    for item in feed:
        if isinstance(item, Wire):
            recorder.wire(item)
        else:
            recorder.transition(item)
    return recorder.mermaid()


def test_a_session_transition_is_drawn_after_the_response_of_the_request_that_caused_it() -> None:
    """The refresh transition may beat the HTTP response or the reauth; the diagram is the same either way."""
    request, response = http(1, "request", "POST /api/auth/refresh"), http(1, "response", "200 state=ws_connected")
    reauth = ws("send", "message", "reauth (fresh access token)", type="reauth")
    early = record([request, refresh_message(), response, reauth])
    late = record([request, response, reauth, refresh_message()])
    assert early == late
    lines = early.splitlines()
    assert lines.index("    Server-)Client: transition 6 ws_connected → ws_connected (refresh)") == (
        lines.index("    Server-->>Client: 200 state=ws_connected") + 1
    )


def test_heartbeats_are_drawn_once_per_connection_however_many_there_were() -> None:
    """Pings and pongs are left out and one loop block follows the welcome and its replayed transitions."""
    welcome = ws("receive", "message", "welcome state=ws_connected last_seq=1 recovered=true", type="welcome")
    replay = ws("receive", "message", "transition 1 a → b (x, replayed)", type="transition", event="x", replayed=True)
    ping, pong = ws("receive", "message", "ping", type="ping"), ws("send", "message", "pong", type="pong")
    close = ws("receive", "close", "close 1001 going_away")
    few = record([welcome, moved("welcome", "connecting", "connected"), replay, ping, pong, close])
    many = record([welcome, moved("welcome", "connecting", "connected"), replay, *[ping, pong] * 5, close])
    assert few == many
    body = few.splitlines()[5:]
    assert body[:3] == [
        "    Server-)Client: welcome state=ws_connected last_seq=1 recovered=true",
        "    Note over Client: connecting → connected (welcome)",
        "    Server-)Client: transition 1 a → b (x, replayed)",
    ]
    assert body[3].startswith("    loop every")
    assert body[-1] == "    Server-xClient: close 1001 going_away"


def test_random_waits_stay_out_of_the_diagram() -> None:
    """Backoff notes show the ceiling, never the random wait, so reruns draw the same picture."""
    one = moved("drop", "connected", "reconnecting", code=1001, delay=Delay(0, 0.5, 0.123, 0.0))
    other = moved("drop", "connected", "reconnecting", code=1001, delay=Delay(0, 0.5, 0.456, 7.0))
    assert record([one]) == record([other])
    assert "(drop 1001, backoff up to 0.5 s)" in record([one])


def test_a_failed_request_is_one_crossed_arrow() -> None:
    drawn = record([http(1, "request", "POST /api/session/{id}/ws-ticket"), http(1, "failure", "✗ ConnectError")])
    assert drawn.splitlines()[-1] == "    Client-xServer: POST /api/session/{id}/ws-ticket ✗ ConnectError"


def test_the_diagram_is_valid_mermaid_text() -> None:
    """A sequenceDiagram with the generated header; no ';' or '#', which end or escape Mermaid message text."""
    drawn = record([http(1, "request", "POST /api/auth/login"), http(1, "response", "200 state=session_active")])
    assert drawn.startswith(f"sequenceDiagram\n    {HEADER}\n")
    committed = (Path(__file__).resolve().parents[3] / "diagrams" / "demo-sequence.mmd").read_text(encoding="utf-8")
    for text in (drawn, committed):
        assert not re.search(r"[;#]", text.replace(HEADER, ""))


def test_check_mode_compares_and_write_mode_writes(tmp_path: Path) -> None:
    """--check exits 1 with a diff when the file differs (or is missing), 0 when it matches; writing makes it match."""
    target = tmp_path / "diagrams" / "demo-sequence.mmd"
    out = io.StringIO()
    assert _diagram("sequenceDiagram\n", target, check=True, out=out) == 1
    assert _diagram("sequenceDiagram\n", target, check=False, out=out) == 0
    assert target.read_text(encoding="utf-8") == "sequenceDiagram\n"
    assert _diagram("sequenceDiagram\n", target, check=True, out=out) == 0
    out = io.StringIO()
    assert _diagram("sequenceDiagram\n    A->>B: x\n", target, check=True, out=out) == 1
    assert "+    A->>B: x" in out.getvalue()


def test_waiting_for_a_step_gives_up_with_one_clear_error() -> None:
    """A step that never completes ends the demo with a message, not a hang."""
    from sessionflow.api import demo

    async def scenario() -> None:
        recorder = Recorder(io.StringIO())
        with pytest.raises(CommandFailed, match="gave up after"):
            await recorder.until("nothing", lambda seen: False)

    original = demo.STEP_TIMEOUT
    demo.STEP_TIMEOUT = 0.05
    try:
        asyncio.run(scenario())
    finally:
        demo.STEP_TIMEOUT = original
