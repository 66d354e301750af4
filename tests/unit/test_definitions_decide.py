"""The machine definitions decide: a state added to the session machine is followed by every consumer.

A copy of the session definition gains ``step_up_required``: an admin (or the
server) can demand a second factor from a usable session; the holder can then
only log out until the server lets the session back in. The state declares
its :class:`Access` like every other, and nothing outside the definition
lists it, yet the store's CHECK constraint, the authenticator, the WebSocket
close codes, the connection cascade, "open session" queries, the API's
description, the diagrams and the docs tables all take it in.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, MetaData, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from sessionflow.api.auth.authenticate import Purpose, refusal, require
from sessionflow.api.errors import NotConnectable
from sessionflow.api.problems import close_code_for_state
from sessionflow.api.reference import events_table, states_table
from sessionflow.api.routes.lifecycle import describe
from sessionflow.lifecycle import (
    SESSION,
    Access,
    Actor,
    ConnectionEvent,
    Definition,
    DefinitionError,
    EventSpec,
    SessionState,
    StepContext,
    Transition,
    access,
    engine,
)
from sessionflow.lifecycle.diagrams import render_mermaid
from sessionflow.persistence.connections import cascade_event
from sessionflow.persistence.models import state_type
from sessionflow.persistence.sessions import not_ended

S = SessionState
STEP_UP = "step_up_required"
USABLE = (S.SESSION_ACTIVE, S.WS_CONNECTED, S.WS_DISCONNECTED)
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _with_step_up() -> Definition:
    events = {
        **SESSION.events,
        "require_step_up": EventSpec("require_step_up", frozenset({Actor.ADMIN, Actor.SERVER}), "second factor needed"),
        "step_up": EventSpec("step_up", frozenset({Actor.SERVER}), "second factor verified"),
    }
    transitions = tuple(
        dataclasses.replace(row, sources=(*row.sources, STEP_UP)) if row.event in ("logout", "revoke", "end") else row
        for row in SESSION.transitions
    )
    timers = tuple(
        dataclasses.replace(timer, armed_in=timer.armed_in | {STEP_UP}) if timer.name == "lifetime" else timer
        for timer in SESSION.timers
    )
    return dataclasses.replace(
        SESSION,
        states=(*SESSION.states, STEP_UP),
        events=events,
        transitions=(
            *transitions,
            Transition("require_step_up", USABLE, STEP_UP),
            Transition("step_up", (STEP_UP,), S.SESSION_ACTIVE),
        ),
        timers=timers,
        tags={**SESSION.tags, STEP_UP: frozenset({Access.LOGIN_PENDING})},
        descriptions={**SESSION.descriptions, STEP_UP: "a second factor is required before anything else"},
    )


STEPPED = _with_step_up()


def test_the_copy_is_a_sound_machine_the_engine_runs() -> None:
    outcome = engine(STEPPED).step(S.WS_CONNECTED, "require_step_up", StepContext(actor=Actor.ADMIN, now=NOW))
    assert outcome.dest == STEP_UP
    assert outcome.timers["idle"] is None  # idle is armed only where the session is usable
    assert engine(STEPPED).allowed_events(STEP_UP, Actor.CLIENT) == ("logout",)
    assert engine(STEPPED).allowed_events(STEP_UP, Actor.SERVER) == ("revoke", "step_up")


def test_a_state_without_its_access_is_a_broken_definition() -> None:
    untagged = dataclasses.replace(STEPPED, tags=SESSION.tags)
    with pytest.raises(DefinitionError, match="step_up_required"):
        access(STEP_UP, untagged)


def test_the_store_admits_the_new_state_in_its_check_constraint() -> None:
    column_type = state_type(STEPPED)
    assert STEP_UP in column_type.enums
    assert set(column_type.enums) == {str(state) for state in STEPPED.states}


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=["sqlite", "postgresql"])
def test_open_session_queries_count_the_new_state_as_not_ended(dialect: object) -> None:
    table = Table("sessions", MetaData(), Column("state", state_type(STEPPED)))
    sql = str(
        select(table)
        .where(not_ended(table.c.state, STEPPED))
        .compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    )
    assert sorted(re.findall(r"'(\w+)'", sql)) == sorted(STEPPED.terminal)


def test_the_authenticator_refuses_its_holder_as_its_access_says() -> None:
    refused = refusal(STEP_UP, STEPPED)
    assert isinstance(refused, NotConnectable)
    assert refused.code == "session_not_connectable"
    with pytest.raises(NotConnectable):
        require(STEP_UP, Purpose.USE, STEPPED)
    require(STEP_UP, Purpose.FIRE, STEPPED)  # not ended: the machine decides what may be fired (logout)


def test_websockets_close_with_the_code_of_its_access() -> None:
    assert close_code_for_state(STEP_UP, STEPPED) == (4409, "the session is step_up_required: finish login first")


def test_the_connection_cascade_asks_the_new_machine() -> None:
    """No connect while stepping up, and the last close leaves the session where it is."""
    assert cascade_event(ConnectionEvent.ACCEPT, STEP_UP, 0, STEPPED) is None
    assert cascade_event(ConnectionEvent.CLOSE, STEP_UP, 0, STEPPED) is None
    assert cascade_event(ConnectionEvent.ACCEPT, S.SESSION_ACTIVE, 0, STEPPED) == "connect"
    assert cascade_event(ConnectionEvent.DROP, S.WS_CONNECTED, 0, STEPPED) == "drop"
    assert cascade_event(ConnectionEvent.DROP, S.WS_CONNECTED, 1, STEPPED) is None


def test_the_api_describes_it_and_the_diagram_and_docs_show_it() -> None:
    described = {state["name"]: state for state in describe(STEPPED)["states"]}
    assert described[STEP_UP] == {
        "name": STEP_UP,
        "terminal": False,
        "tags": ["login_pending"],
        "description": "a second factor is required before anything else",
    }
    mermaid = render_mermaid(STEPPED)
    assert "session_active --> step_up_required: require_step_up (admin or server)" in mermaid
    assert "step_up_required --> closed: logout (client)" in mermaid
    assert f"| `{STEP_UP}` | `login_pending` |" in states_table(STEPPED)
    assert "| `step_up` | `step_up_required` | `session_active` |" in events_table(STEPPED)
