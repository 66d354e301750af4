"""Errors raised by the lifecycle layer.

Every error carries machine-readable fields so that the API layer can map it
to a problem-details response or a WebSocket close code in one place::

    LifecycleError                  root of this package
    ├── DefinitionError             a machine definition is broken (checks.py)
    ├── UnknownEvent                the event is not part of the machine
    ├── UnknownState                the state is not part of the machine
    └── EventRefused                a well-formed event the machine will not take now
        ├── TransitionNotAllowed    no transition for this event from this state
        ├── ActorNotPermitted       this actor may not fire this event
        └── GuardFailed             a guard of the transition was not satisfied
"""

from __future__ import annotations

from collections.abc import Sequence


class LifecycleError(Exception):
    """Root of every error the lifecycle layer raises."""

    code = "lifecycle_error"


class DefinitionError(LifecycleError):
    """A machine definition fails its checks; ``problems`` lists every failure."""

    code = "definition_error"

    def __init__(self, machine: str, problems: Sequence[str]) -> None:
        self.machine = machine
        self.problems = tuple(problems)
        super().__init__(f"machine {machine!r} is broken: " + "; ".join(self.problems))


class UnknownEvent(LifecycleError):
    """The event name is not declared by the machine."""

    code = "unknown_event"

    def __init__(self, machine: str, event: object, known: Sequence[str]) -> None:
        self.machine = machine
        self.event = event
        self.known = tuple(known)
        super().__init__(f"machine {machine!r} has no event {event!r}; known events: {', '.join(self.known)}")


class UnknownState(LifecycleError):
    """The state name is not declared by the machine."""

    code = "unknown_state"

    def __init__(self, machine: str, state: object, known: Sequence[str]) -> None:
        self.machine = machine
        self.state = state
        self.known = tuple(known)
        super().__init__(f"machine {machine!r} has no state {state!r}; known states: {', '.join(self.known)}")


class EventRefused(LifecycleError):
    """A valid event that the machine refuses in the instance's current state.

    Carries everything a client needs to decide what to do next: the machine,
    the instance (when known), its state, the event and the events it would
    accept instead.
    """

    code = "event_refused"

    def __init__(
        self,
        machine: str,
        state: str,
        event: str,
        allowed_events: Sequence[str],
        *,
        reason: str,
        instance_id: object | None = None,
    ) -> None:
        self.machine = machine
        self.state = state
        self.event = event
        self.allowed_events = tuple(allowed_events)
        self.reason = reason
        self.instance_id = instance_id
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.machine} {self.instance_id}" if self.instance_id is not None else self.machine
        allowed = ", ".join(self.allowed_events) or "none"
        return (
            f"{where}: event {self.event!r} refused in state {self.state!r}: {self.reason} (allowed events: {allowed})"
        )

    def for_instance(self, instance_id: object) -> EventRefused:
        """Return this error bound to ``instance_id`` (same class, same fields)."""
        self.instance_id = instance_id
        self.args = (self._message(),)
        return self


class TransitionNotAllowed(EventRefused):
    """The machine has no transition for this event from this state."""

    code = "transition_not_allowed"


class ActorNotPermitted(EventRefused):
    """The event exists and may be valid, but this actor may not fire it."""

    code = "actor_not_permitted"


class GuardFailed(EventRefused):
    """A guard of the transition was not satisfied; ``guards`` names the failed ones.

    ``descriptions`` (one per guard, when known) say what each guard means, so
    the reason reads "guard not satisfied: refresh_token_current (the refresh
    token presented is the current one)".
    """

    code = "guard_failed"

    def __init__(
        self,
        machine: str,
        state: str,
        event: str,
        allowed_events: Sequence[str],
        *,
        guards: Sequence[str],
        descriptions: Sequence[str] = (),
        instance_id: object | None = None,
    ) -> None:
        self.guards = tuple(guards)
        named = [
            f"{guard} ({description})" if description else guard
            for guard, description in zip(self.guards, [*descriptions, *[""] * len(self.guards)], strict=False)
        ]
        super().__init__(
            machine,
            state,
            event,
            allowed_events,
            reason="guard not satisfied: " + ", ".join(named),
            instance_id=instance_id,
        )
