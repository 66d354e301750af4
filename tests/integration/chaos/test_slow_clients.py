"""Slow, silent and oversized clients are refused with a clear status and their sockets freed.

The server reads a request head within ``SESSIONFLOW_HEADER_READ_TIMEOUT`` and at most
``SESSIONFLOW_HEADER_LIMIT`` bytes of it, and a body within ``SESSIONFLOW_BODY_READ_TIMEOUT``.
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid

import pytest
from websockets.sync.client import connect as ws_connect

from tests.integration.chaos.conftest import descriptors
from tests.integration.ws.conftest import Server, Servers, expect_close

HEAD_TIMEOUT = 1.0
SLOW_CLIENTS = 1000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(make_server: Servers) -> Server:
    return make_server(
        "limits", HEADER_READ_TIMEOUT=str(HEAD_TIMEOUT), BODY_READ_TIMEOUT=str(HEAD_TIMEOUT), HEADER_LIMIT="32768"
    )


def _open(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_until_closed(sock: socket.socket, timeout: float = 10.0) -> tuple[float, bytes]:
    """Seconds until the server closed ``sock``, and what it sent before."""
    started = time.monotonic()
    sock.settimeout(timeout)
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return time.monotonic() - started, received


def _handshake(extra: bytes) -> bytes:
    return (
        b"GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n"
    )


def test_a_client_that_sends_nothing_is_closed_after_the_head_timeout(server: Server) -> None:
    """A connection that never sends a byte is closed once the head timeout passes, not held."""
    with _open(server) as sock:
        held, received = _read_until_closed(sock)
    assert received == b""
    assert HEAD_TIMEOUT * 0.5 <= held < HEAD_TIMEOUT + 2


def test_an_unfinished_head_is_closed_after_the_head_timeout(server: Server) -> None:
    with _open(server) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        held, _ = _read_until_closed(sock)
    assert held < HEAD_TIMEOUT + 2


@pytest.mark.parametrize("path", [b"/api/health", b"/api/ws"])
def test_a_head_over_the_limit_gets_431_and_the_socket_closed(server: Server, path: bytes) -> None:
    """An 80 KiB header line (a huge Cookie, say) on HTTP or a WebSocket handshake: 431 at once, then closed."""
    big = b"Cookie: c=" + b"a" * 80_000 + b"\r\n"
    request = _handshake(big) if path == b"/api/ws" else b"GET /api/health HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n"
    with _open(server) as sock:
        sock.sendall(request)
        held, received = _read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 431 "), received[:80]
    assert held < 2


def test_a_16_kib_bearer_on_a_websocket_is_refused_like_on_http(server: Server) -> None:
    """Within the head limit, an oversized token is a credential problem: 401 over HTTP, 4401 over WebSocket."""
    token = "a" * 16 * 1024
    assert (
        server.http.get(f"/api/session/{uuid.uuid4()}", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    )
    with ws_connect(server.ws_url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=5) as ws:
        expect_close(ws, 4401)


def test_a_body_that_stops_arriving_gets_408_and_the_socket_closed(server: Server) -> None:
    with _open(server) as sock:
        sock.sendall(
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        held, received = _read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 408 "), received[:80]
    assert b"request_timeout" in received
    assert HEAD_TIMEOUT * 0.5 <= held < HEAD_TIMEOUT + 2


def test_a_thousand_slow_clients_have_their_descriptors_freed(server: Server) -> None:
    """1,000 clients each send half a head and stall: the server holds their sockets no longer than the timeout."""
    assert server.process is not None
    before = descriptors(server.process.pid)
    clients = []
    try:
        for _ in range(SLOW_CLIENTS):
            sock = _open(server)
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
            clients.append(sock)
        during = descriptors(server.process.pid)
        deadline = time.monotonic() + HEAD_TIMEOUT + 10
        while (after := descriptors(server.process.pid)) > before + 5 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for sock in clients:
            sock.close()
    print(f"descriptors of the server for {SLOW_CLIENTS} slow clients: before {before}, during {during}, after {after}")
    assert during >= before + SLOW_CLIENTS // 2  # the clients really were connected
    assert after <= before + 5
    assert server.http.get("/api/health").status_code == 200
