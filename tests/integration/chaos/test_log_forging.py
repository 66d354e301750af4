"""A header-injection and log-forging corpus against a real server logging at DEBUG.

CR, LF, NUL, ANSI escapes, C1 controls and Unicode line separators, each followed by a genuine-looking
log line, are sent in paths (encoded and raw), query strings, headers, usernames and WebSocket
handshakes. No case gets a 5xx, no line of the server's log is forged (every line starts the way the
server writes lines), no raw control character reaches the log, and no credential sent reaches it.
"""

from __future__ import annotations

import json
import re
import socket
from collections import Counter
from urllib.parse import quote

import pytest

from tests.integration.ws.conftest import Server, Servers

pytestmark = pytest.mark.slow

FORGED = "2026-11-30 16:00:00,000 WARNING sessionflow.auth [forged] admin login ok"
BREAKS = ["\n", "\r", "\r\n", "\x00", "\x1b[2K\r", "\x1b]0;title\x07", "\x85", "\u2028", "\u2029", "\x0b\x0c"]
TOKEN = "eyJforgedTOKEN.never-in-a-log.Zm9yZ2Vk"
# A line the server wrote: a timestamp and a level, or granian's own "[LEVEL]", or the CLI's "sessionflow:".
GENUINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+ \[[\w.:-]+\] |\[[A-Z]+\] |sessionflow: )")


@pytest.fixture(scope="module")
def server(make_server: Servers) -> Server:
    return make_server("forging", LOG_LEVEL="debug")


def _raw(server: Server, request: bytes) -> int | None:
    """Send ``request`` as is; the status line's code, or None if the server closed without one."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                return None
            received += chunk
    return int(received.split(b" ", 2)[1])


def _cases() -> list[tuple[str, str, bytes]]:
    """(class, name, raw HTTP request) for every payload in every place."""
    cases = []
    for i, brk in enumerate(BREAKS):
        payload = brk + FORGED
        enc = quote(payload, safe="")
        raw = payload.encode("utf-8")
        get = b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n"
        cases += [
            ("path", f"encoded-{i}", get % (f"/api/lifecycle/machines/x{enc}".encode(), b"")),
            ("path", f"encoded-session-{i}", get % (f"/api/session/{enc}/history".encode(), b"")),
            ("path", f"raw-{i}", get % (b"/api/lifecycle/machines/x" + raw.replace(b" ", b"%20"), b"")),
            ("query", f"encoded-{i}", get % (f"/api/health?x={enc}&ticket={TOKEN}".encode(), b"")),
            ("query", f"raw-{i}", get % (b"/api/health?x=" + raw.replace(b" ", b"+"), b"")),
            ("header", f"request-id-{i}", get % (b"/api/health", b"X-Request-ID: " + raw + b"\r\n")),
            ("header", f"user-agent-{i}", get % (b"/api/health", b"User-Agent: " + raw + b"\r\n")),
            ("header", f"authorization-{i}", get % (b"/api/admin/sessions", b"Authorization: Bearer " + raw + b"\r\n")),
            ("header", f"cookie-{i}", get % (b"/api/health", b"Cookie: sessionflow_refresh=" + raw + b"\r\n")),
            (
                "websocket",
                f"handshake-{i}",
                get
                % (
                    f"/api/ws?ticket={enc}".encode(),
                    b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://x" + raw + b"\r\n"
                    b"Authorization: Bearer " + TOKEN.encode() + raw + b"\r\n",
                ),
            ),
        ]
        for field in ("username", "password"):
            body = json.dumps({"username": payload if field == "username" else "alice", "password": payload}).encode()
            cases.append(
                (
                    "login",
                    f"{field}-{i}",
                    b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body),
                )
            )
    return cases


def test_no_client_input_forges_a_log_line_or_gets_a_5xx(server: Server) -> None:
    tried: Counter[str] = Counter()
    failed: list[str] = []
    for kind, name, request in _cases():
        tried[kind] += 1
        status = _raw(server, request)
        if status is not None and status >= 500:
            failed.append(f"{kind}/{name}: {status}")
    log = server.output()
    lines = log.split("\n")
    # A line that starts with the payload's timestamp was forged: the server cannot have written that one.
    forged = [line for line in lines if line and (not GENUINE.match(line) or line.startswith(FORGED[:23]))]
    controls = sorted({hex(ord(c)) for c in log if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) <= 0x9F})
    summary = ", ".join(f"{kind} {count}" for kind, count in sorted(tried.items()))
    print(
        f"log-forging corpus: {sum(tried.values())} cases ({summary}); 5xx: {len(failed)}; forged lines: {len(forged)}"
    )
    assert failed == []
    assert forged == [], forged[:5]
    assert controls == []
    assert TOKEN not in log
    assert "forged] admin login ok" in log  # the payloads did reach the log, escaped on the line they came in
