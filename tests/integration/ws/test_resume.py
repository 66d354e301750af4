"""Drop and resume: a client reconnecting with ``last_seq`` gets what it missed, in order, or ``recovered: false``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.ws.conftest import Login, Server, abort, expect_close, recv_json, recv_type

pytestmark = pytest.mark.slow


def _dropped_with_missed_transitions(server: Server) -> tuple[Login, int]:
    """A session whose only connection was lost at ``last_seq``, then refreshed twice over HTTP."""
    login = server.login()
    with server.connect(login) as ws:
        welcome = recv_type(ws, "welcome")
        abort(ws)
    server.wait_connection(welcome["connection_id"], "dropped")
    server.wait_state(login.session_id, "ws_disconnected")
    server.refresh(login)
    server.refresh(login)
    return login, welcome["last_seq"]


def _quiet(ws: Any, seconds: float = 0.3) -> None:
    """Nothing more arrives (no duplicates of what was replayed)."""
    with pytest.raises(TimeoutError):
        recv_json(ws, timeout=seconds)


def test_resume_replays_the_missed_transitions_in_order(server: Server) -> None:
    login, last_seq = _dropped_with_missed_transitions(server)

    with server.connect(login, query={"last_seq": str(last_seq)}) as ws:
        welcome = recv_json(ws)
        assert welcome["type"] == "welcome"
        assert welcome["recovered"] is True
        current = welcome["last_seq"]
        replayed = [recv_type(ws, "transition") for _ in range(current - last_seq)]
        _quiet(ws)

    assert [m["seq"] for m in replayed] == list(range(last_seq + 1, current + 1))  # no gaps, in order
    assert all(m["replayed"] is True for m in replayed)
    history = server.history(login.session_id, login.headers)
    by_seq = {h["seq"]: h for h in history}
    for message in replayed:
        item = by_seq[message["seq"]]
        assert (message["event"], message["from_state"], message["to_state"], message["actor"]) == (
            item["event"],
            item["from_state"],
            item["to_state"],
            item["actor"],
        )
    events = [m["event"] for m in replayed]
    # drop, (grace_elapsed if the 1 s grace ran out meanwhile), two refreshes, and this connection's connect.
    assert events[0] == "drop"
    assert events.count("refresh") == 2
    assert events[-1] == "connect"


def test_resume_with_the_session_id_is_the_same(server: Server) -> None:
    login, last_seq = _dropped_with_missed_transitions(server)
    with server.connect(login, query={"last_seq": str(last_seq), "session_id": login.session_id}) as ws:
        welcome = recv_json(ws)
        assert welcome["recovered"] is True
        replayed = [recv_type(ws, "transition") for _ in range(welcome["last_seq"] - last_seq)]
    assert [m["seq"] for m in replayed] == list(range(last_seq + 1, welcome["last_seq"] + 1))


def test_resume_at_the_current_seq_replays_only_the_new_connect(server: Server) -> None:
    login = server.login()
    version = server.session(login.session_id, login.headers)["version"]
    with server.connect(login, query={"last_seq": str(version)}) as ws:
        welcome = recv_json(ws)
        assert welcome["recovered"] is True
        assert welcome["last_seq"] == version + 1
        connect = recv_type(ws, "transition")
        assert (connect["seq"], connect["event"], connect["replayed"]) == (version + 1, "connect", True)
        _quiet(ws)


@pytest.mark.parametrize(
    "last_seq", ["-1", "abc", "", "\u00b2", "\u0663", "1" * 19, "9" * 5000], ids=lambda v: f"{v[:8]!r}x{len(v)}"
)
def test_a_malformed_last_seq_closes_4400_and_stores_nothing(server: Server, last_seq: str) -> None:
    """Issue 11, defect 5: not up to 18 ASCII digits (a superscript two, an Arabic-Indic three, 5,000 digits):
    4400, not a handler crash with 4500, and no connection row."""
    login, _ = _dropped_with_missed_transitions(server)
    before = server.session(login.session_id, login.headers)["version"]
    with server.connect(login, query={"last_seq": last_seq}) as ws:
        expect_close(ws, 4400, reason="last_seq must be a decimal sequence number")
    assert server.session(login.session_id, login.headers)["version"] == before


@pytest.mark.parametrize("last_seq", ["999999", "9" * 18])
def test_an_impossible_last_seq_is_not_recovered(server: Server, last_seq: str) -> None:
    """Beyond the current seq: recovered false, the full state in welcome, nothing replayed."""
    login, _ = _dropped_with_missed_transitions(server)
    with server.connect(login, query={"last_seq": last_seq}) as ws:
        welcome = recv_json(ws)
        assert welcome["recovered"] is False
        assert welcome["state"] == "ws_connected"
        assert welcome["last_seq"] == server.session(login.session_id, login.headers)["version"]
        _quiet(ws)


def test_last_seq_of_another_session_is_not_recovered(server: Server) -> None:
    login, last_seq = _dropped_with_missed_transitions(server)
    other = server.login()
    with server.connect(login, query={"last_seq": str(last_seq), "session_id": other.session_id}) as ws:
        welcome = recv_json(ws)
        assert welcome["session_id"] == login.session_id
        assert welcome["recovered"] is False
        _quiet(ws)


def test_after_resume_live_transitions_continue_from_the_replayed_seq(server: Server) -> None:
    login, last_seq = _dropped_with_missed_transitions(server)
    with server.connect(login, query={"last_seq": str(last_seq)}) as ws:
        current = recv_json(ws)["last_seq"]
        for _ in range(current - last_seq):
            recv_type(ws, "transition")
        server.refresh(login)
        live = recv_type(ws, "transition")
        assert (live["seq"], live["event"]) == (current + 1, "refresh")
        assert "replayed" not in live
