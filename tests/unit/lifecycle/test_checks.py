"""Definition checks refuse every kind of broken machine, and only broken ones.

The broken examples live in :mod:`broken_machines` as data; each changes a
sound machine in one way and lists exactly the problems it must produce.
"""

from __future__ import annotations

import pytest

from sessionflow.lifecycle import CLIENT, CONNECTION, MACHINES, SESSION, Definition, DefinitionError, LifecycleError
from sessionflow.lifecycle.checks import check, problems
from sessionflow.lifecycle.engine import Engine

from .broken_machines import BROKEN, SOUND

CASES = sorted(BROKEN)


@pytest.mark.parametrize("definition", [SESSION, CONNECTION, SOUND], ids=lambda definition: definition.name)
def test_sound_machines_have_no_problems(definition: Definition) -> None:
    """The shipped machines and the sound example pass every check and compile."""
    assert problems(definition) == []
    check(definition)
    assert Engine(definition).definition is definition


def test_every_shipped_machine_is_checked() -> None:
    """MACHINES holds exactly the session, connection and client machines, all sound."""
    assert MACHINES == {"session": SESSION, "connection": CONNECTION, "client": CLIENT}
    assert all(problems(definition) == [] for definition in MACHINES.values())


@pytest.mark.parametrize("case", CASES)
def test_each_broken_machine_reports_exactly_its_problems(case: str) -> None:
    """problems() names what is wrong with each broken example, and nothing else."""
    definition, expected = BROKEN[case]
    assert tuple(problems(definition)) == expected


@pytest.mark.parametrize("case", CASES)
def test_check_refuses_each_broken_machine_with_every_problem(case: str) -> None:
    """check() raises DefinitionError naming the machine and carrying each problem, also in its message."""
    definition, expected = BROKEN[case]
    with pytest.raises(DefinitionError) as refused:
        check(definition)
    assert refused.value.machine == "turnstile"
    assert refused.value.problems == expected
    assert refused.value.code == "definition_error"
    assert all(problem in str(refused.value) for problem in expected)
    assert isinstance(refused.value, LifecycleError)


@pytest.mark.parametrize("case", CASES)
def test_a_broken_machine_cannot_be_compiled(case: str) -> None:
    """Engine() runs the checks first, so a service can never start with a broken machine."""
    definition, expected = BROKEN[case]
    with pytest.raises(DefinitionError) as refused:
        Engine(definition)
    assert refused.value.problems == expected


def test_problems_are_all_reported_at_once() -> None:
    """Two independent faults produce two problems: fixing one does not reveal the next by surprise."""
    (unreachable, first), (nobody, second) = BROKEN["unreachable state"], BROKEN["event nobody may fire"]
    both = Definition(
        name="turnstile",
        states=unreachable.states,
        initial=unreachable.initial,
        terminal=unreachable.terminal,
        events=nobody.events,
        transitions=unreachable.transitions,
        timers=unreachable.timers,
    )
    assert sorted(problems(both)) == sorted(first + second)
