"""Bad input of every kind raises a clear, typed error and leaves the store untouched."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sessionflow.lifecycle import Actor, UnknownEvent
from sessionflow.persistence.errors import InstanceNotFound, InvalidInput, InvalidInstanceId
from sessionflow.persistence.service import TransitionService

GOOD: dict[str, Any] = {"actor": Actor.CLIENT}

CASES: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    # (label, overrides of the fire() call, expected error, text the message must contain)
    ("unknown event", {"event": "explode"}, UnknownEvent, "explode"),
    ("event of wrong type", {"event": 42}, UnknownEvent, "42"),
    ("event from the other machine", {"event": "accept"}, UnknownEvent, "accept"),
    ("unknown machine", {"machine": "sessions"}, InvalidInput, "machine"),
    ("id not a uuid", {"instance_id": "not-a-uuid"}, InvalidInstanceId, "not a UUID"),
    ("id empty", {"instance_id": ""}, InvalidInstanceId, "not a UUID"),
    ("id of wrong type", {"instance_id": 12345}, InvalidInstanceId, "not a UUID"),
    ("id oversize", {"instance_id": "a" * 10_000}, InvalidInstanceId, "not a UUID"),
    ("id with sql", {"instance_id": "'; DROP TABLE sessions; --"}, InvalidInstanceId, "not a UUID"),
    ("actor unknown", {"actor": "root"}, InvalidInput, "actor"),
    ("actor of wrong type", {"actor": 1}, InvalidInput, "actor"),
    ("facts not a mapping", {"facts": ["refresh_token_current"]}, InvalidInput, "facts"),
    ("fact not a boolean", {"facts": {"refresh_token_current": "yes"}}, InvalidInput, "facts"),
    ("version negative", {"expected_version": -1}, InvalidInput, "version"),
    ("version a string", {"expected_version": "2"}, InvalidInput, "version"),
    ("version a boolean", {"expected_version": True}, InvalidInput, "version"),
    ("key empty", {"idempotency_key": ""}, InvalidInput, "idempotency key"),
    ("key with spaces", {"idempotency_key": "a b"}, InvalidInput, "idempotency key"),
    ("key oversize", {"idempotency_key": "k" * 129}, InvalidInput, "idempotency key"),
    ("key not ascii", {"idempotency_key": "clé"}, InvalidInput, "idempotency key"),
    ("request id oversize", {"request_id": "r" * 65}, InvalidInput, "request id"),
    ("request id control chars", {"request_id": "a\nb"}, InvalidInput, "request id"),
    ("detail not an object", {"detail": ["x"]}, InvalidInput, "detail"),
]


@pytest.mark.parametrize(("label", "overrides", "error", "text"), CASES, ids=[c[0] for c in CASES])
def test_bad_fire_arguments_are_refused_and_write_nothing(
    service: TransitionService,
    active_session: uuid.UUID,
    unchanged: Any,
    label: str,
    overrides: dict[str, Any],
    error: type[Exception],
    text: str,
) -> None:
    """Each malformed argument raises its own error type, names the problem, and writes nothing."""
    check = unchanged(active_session)
    call: dict[str, Any] = {"machine": "session", "instance_id": active_session, "event": "logout", **GOOD, **overrides}
    with pytest.raises(error) as raised:
        service.fire(call.pop("machine"), call.pop("instance_id"), call.pop("event"), **call)
    assert text in str(raised.value), label
    assert len(str(raised.value)) < 400  # an oversize input is not echoed back whole
    check()


@pytest.mark.parametrize("bad_id", ["nope", 7, None, "0" * 33])
def test_get_with_a_malformed_id_is_invalid_not_missing(service: TransitionService, bad_id: object) -> None:
    """A malformed id is a client error distinct from an id that names nothing."""
    with pytest.raises(InvalidInstanceId):
        service.get("session", bad_id)


def test_well_formed_id_of_another_machine_is_not_found(service: TransitionService, active_session: uuid.UUID) -> None:
    """A session id looked up as a connection names no connection."""
    with pytest.raises(InstanceNotFound):
        service.get("connection", active_session)


def test_creating_with_a_malformed_id_is_refused(service: TransitionService) -> None:
    """Explicit ids are validated like any other."""
    with pytest.raises(InvalidInstanceId):
        service.create("session", instance_id="xyz")
