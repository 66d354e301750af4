"""Definition checks: a broken machine is refused before it can run.

The checks are structural and exhaustive over the definition. They run when
a definition is compiled (so the service cannot start with a broken machine)
and in the tests against deliberately broken examples.
"""

from __future__ import annotations

from collections import deque

from sessionflow.lifecycle.errors import DefinitionError
from sessionflow.lifecycle.model import Actor, Definition


def problems(definition: Definition) -> list[str]:
    """Return every structural problem of ``definition``; empty when it is sound."""
    found: list[str] = []
    states = set(definition.states)
    if len(states) != len(definition.states):
        found.append("duplicate state names")
    if definition.initial not in states:
        found.append(f"initial state {definition.initial!r} is not a state")
    for state in sorted(definition.terminal - states):
        found.append(f"terminal state {state!r} is not a state")
    for state in sorted(set(definition.tags) - states):
        found.append(f"tags name unknown state {state!r}")

    seen_pairs: set[tuple[str, str]] = set()
    found.extend(_transition_problems(definition, states, seen_pairs))

    for name, spec in definition.events.items():
        if name != spec.name:
            found.append(f"event registered as {name!r} is named {spec.name!r}")
        if not spec.fired_by:
            found.append(f"event {name!r} declares no actor that may fire it")
        if not any(row.event == name for row in definition.transitions):
            found.append(f"event {name!r} has no transition")
        if Actor.TIMER in spec.fired_by and not any(t.event == name for t in definition.timers):
            found.append(f"event {name!r} is fired by a timer but no timer fires it")

    found.extend(_timer_problems(definition, seen_pairs))
    found.extend(_graph_problems(definition))
    return found


def _transition_problems(definition: Definition, states: set[str], pairs: set[tuple[str, str]]) -> list[str]:
    """Problems of the transition rows; records every (event, source) pair seen in ``pairs``."""
    found: list[str] = []
    for row in definition.transitions:
        if row.event not in definition.events:
            found.append(f"transition uses undeclared event {row.event!r}")
        if not row.sources:
            found.append(f"a transition of event {row.event!r} has no source state")
        for source in row.sources:
            if source not in states:
                found.append(f"event {row.event!r} leaves unknown state {source!r}")
            if (row.event, source) in pairs:
                found.append(f"event {row.event!r} has two transitions from {source!r}")
            pairs.add((row.event, source))
        if row.dest is not None and row.dest not in states:
            found.append(f"event {row.event!r} enters unknown state {row.dest!r}")
    return found


def _timer_problems(definition: Definition, pairs: set[tuple[str, str]]) -> list[str]:
    found: list[str] = []
    names = [timer.name for timer in definition.timers]
    if len(set(names)) != len(names):
        found.append("duplicate timer names")
    for timer in definition.timers:
        spec = definition.events.get(timer.event)
        if spec is None:
            found.append(f"timer {timer.name!r} fires undeclared event {timer.event!r}")
            continue
        if Actor.TIMER not in spec.fired_by:
            found.append(f"timer {timer.name!r} fires {timer.event!r}, which timers may not fire")
        if not timer.armed_in:
            found.append(f"timer {timer.name!r} is armed in no state")
        for state in sorted(timer.armed_in):
            if state in definition.terminal:
                found.append(f"timer {timer.name!r} is armed in terminal state {state!r}")
            elif (timer.event, state) not in pairs:
                found.append(f"timer {timer.name!r} is armed in {state!r}, where {timer.event!r} is not allowed")
        if timer.default.total_seconds() <= 0:
            found.append(f"timer {timer.name!r} has a non-positive default duration")
    return found


def _graph_problems(definition: Definition) -> list[str]:
    found: list[str] = []
    exits: dict[str, set[str]] = {state: set() for state in definition.states}
    for row in definition.transitions:
        for source in row.sources:
            exits.setdefault(source, set()).add(row.dest if row.dest is not None else source)

    reachable = {definition.initial}
    queue = deque([definition.initial])
    while queue:
        for dest in exits.get(queue.popleft(), ()):
            if dest not in reachable:
                reachable.add(dest)
                queue.append(dest)
    for state in definition.states:
        if state not in reachable:
            found.append(f"state {state!r} is unreachable from {definition.initial!r}")
        leaves = {dest for dest in exits.get(state, ()) if dest != state}
        if state in definition.terminal and exits.get(state):
            found.append(f"terminal state {state!r} has a way out")
        elif state not in definition.terminal and not leaves:
            found.append(f"non-terminal state {state!r} has no way out")
    return found


def check(definition: Definition) -> None:
    """Raise :class:`DefinitionError` listing every problem of ``definition``, if any."""
    found = problems(definition)
    if found:
        raise DefinitionError(definition.name, found)
