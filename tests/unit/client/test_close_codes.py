"""Every close code of the shared table (api.protocol, served at /api/lifecycle/close-codes) moves the client."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sessionflow.client import EVENT_FOR_ACTION, close_action
from sessionflow.lifecycle import CLIENT, Actor, StepContext, engine, protocol
from sessionflow.lifecycle.protocol import CLOSE_CODES, ClientAction, CloseCode

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_the_client_reads_the_table_the_server_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    """One table: change a row in api.protocol and the client acts on the change (it keeps no copy)."""
    assert set(EVENT_FOR_ACTION) == set(ClientAction)
    assert close_action(4419) == ("expire", ClientAction.REFRESH)
    changed = CloseCode(4419, "session_expired", "changed for this test", ClientAction.STOP, retry=False)
    monkeypatch.setattr(protocol, "BY_CODE", {**protocol.BY_CODE, 4419: changed})
    assert close_action(4419) == ("end", ClientAction.STOP)


@pytest.mark.parametrize("row", CLOSE_CODES, ids=lambda row: f"{row.code}-{row.name}")
def test_each_close_code_maps_to_the_event_of_its_action(row: CloseCode) -> None:
    """The action in the table decides the event; codes worth retrying never stop the client, the others always do."""
    event, action = close_action(row.code)
    assert action is row.action
    assert event == EVENT_FOR_ACTION[row.action]
    assert (event == "end") is (not row.retry)


@pytest.mark.parametrize("row", CLOSE_CODES, ids=lambda row: f"{row.code}-{row.name}")
@pytest.mark.parametrize("state", ["connecting", "connected"])
def test_the_machine_takes_each_close_code_where_a_connection_can_close(row: CloseCode, state: str) -> None:
    """Whatever the code, the step is allowed from connecting and connected, and lands where the action says."""
    event, _ = close_action(row.code)
    outcome = engine(CLIENT).step(state, event, StepContext(actor=Actor.SERVER, now=NOW))
    expected = {"end": "stopped", "drop": "reconnecting", "throttle": "reconnecting", "expire": "refreshing"}
    assert outcome.dest == expected[event]


@pytest.mark.parametrize("code", [1006, 1011, 1012, 1013, 4999])
def test_codes_the_table_does_not_list_reconnect_with_backoff(code: int) -> None:
    """Lost connections (1006) and codes from elsewhere (proxies, future servers) are retried, not fatal."""
    assert close_action(code) == ("drop", ClientAction.RECONNECT)
