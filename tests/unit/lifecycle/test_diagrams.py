"""Diagrams are drawn from the machines the engine runs: every transition, nothing else, parseable.

The committed copies and their drift check are tests/unit/api/test_generated.py's.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from sessionflow.lifecycle import CONNECTION, MACHINES, SESSION, Definition, engine
from sessionflow.lifecycle.diagrams import edges, render_dot, render_mermaid

from .broken_machines import SOUND

DEFINITIONS = list(MACHINES.values())

# Mermaid statements render_mermaid may emit; a transition label runs to the end of the line and,
# per Mermaid's grammar (DESCR = ":"[^:\n;]+), may contain neither ':' nor ';'.
_MERMAID_LINE = re.compile(
    r"stateDiagram-v2"
    r"|    %% [^\n]*"
    r"|    classDef \w+ [^\s;]+"
    r"|    class \w+(,\w+)* \w+"
    r"|    (\[\*\]|\w+) --> (\[\*\]|\w+)(: [^:;\n#%]+)?"
)
_MERMAID_EDGE = re.compile(r"^    (\w+) --> (\w+): (.+)$", re.MULTILINE)
_DOT_EDGE = re.compile(r'^    "(\w+)" -> "(\w+)" \[label="((?:[^"\\]|\\.)*)"', re.MULTILINE)


def design_transitions(definition: Definition) -> set[tuple[str, str, str]]:
    """(source, dest, event) for every transition row of the definition, self-loops resolved."""
    return {
        (str(source), str(row.dest if row.dest is not None else source), str(row.event))
        for row in definition.transitions
        for source in row.sources
    }


def labelled(found: list[tuple[str, str, str]], separator: str) -> set[tuple[str, str, str]]:
    """(source, dest, event) per label line, the event being the line's first word."""
    return {
        (source, dest, line.split(" ", 1)[0])
        for source, dest, label in found
        for line in label.split(separator)
        if line
    }


RENDERERS = {"mmd": render_mermaid, "dot": render_dot}


# -- content -----------------------------------------------------------------------------


@pytest.mark.parametrize("definition", DEFINITIONS, ids=lambda definition: definition.name)
def test_mermaid_shows_every_transition_and_nothing_else(definition: Definition) -> None:
    """Each (source, dest, event) of the definition is one label line in the Mermaid diagram, and vice versa."""
    found = _MERMAID_EDGE.findall(render_mermaid(definition))
    assert labelled(found, "<br/>") == design_transitions(definition)


@pytest.mark.parametrize("definition", DEFINITIONS, ids=lambda definition: definition.name)
def test_dot_shows_every_transition_and_nothing_else(definition: Definition) -> None:
    """Each (source, dest, event) of the definition is one label line in the DOT diagram, and vice versa."""
    found = _DOT_EDGE.findall(render_dot(definition))
    assert labelled(found, "\\l") == design_transitions(definition)


@pytest.mark.parametrize("definition", DEFINITIONS, ids=lambda definition: definition.name)
def test_parallel_edges_are_merged_into_one_arrow(definition: Definition) -> None:
    """At most one arrow joins two states, in both formats; its label has a line per event."""
    for found in (_MERMAID_EDGE.findall(render_mermaid(definition)), _DOT_EDGE.findall(render_dot(definition))):
        pairs = [(source, dest) for source, dest, _ in found]
        assert len(pairs) == len(set(pairs))


def test_the_eighteen_end_of_life_edges_become_twelve_arrows() -> None:
    """logout and end share an arrow from each non-terminal state; the session's 32 pairs draw as 26 arrows."""
    arrows = edges(SESSION)
    assert len(arrows) == 26
    into_terminal = [arrow for arrow in arrows if arrow.dest in {"closed", "revoked"}]
    assert len(into_terminal) == 12
    assert sum(len(arrow.lines) for arrow in into_terminal) == 18


@pytest.mark.parametrize("definition", DEFINITIONS, ids=lambda definition: definition.name)
def test_mermaid_is_made_only_of_statements_its_parser_accepts(definition: Definition) -> None:
    """Every line is a header, comment, classDef, class or transition; labels carry no ':' ';' '#' or '%'."""
    lines = render_mermaid(definition).splitlines()
    assert lines[0] == "stateDiagram-v2"
    for line in lines:
        assert _MERMAID_LINE.fullmatch(line), line


@pytest.mark.parametrize("definition", DEFINITIONS, ids=lambda definition: definition.name)
def test_initial_and_terminal_states_are_marked(definition: Definition) -> None:
    """Mermaid starts at [*] and ends terminals in [*]; DOT points a dot at the initial and double-borders terminals."""
    mermaid = render_mermaid(definition)
    starts = re.findall(r"^    \[\*\] --> (\w+)$", mermaid, re.MULTILINE)
    ends = re.findall(r"^    (\w+) --> \[\*\]$", mermaid, re.MULTILINE)
    assert starts == [definition.initial]
    assert set(ends) == set(definition.terminal)
    assert f"class {definition.initial} initial" in mermaid
    dot = render_dot(definition)
    assert f'"__start__" -> "{definition.initial}";' in dot
    for state in definition.states:
        (node,) = re.findall(rf'^    "{state}" \[(.*)\];$', dot, re.MULTILINE)
        assert ("peripheries=2" in node) == (state in definition.terminal)
        assert ("penwidth=2.5" in node) == (state == definition.initial)


def test_session_labels_carry_guards_actors_and_timers() -> None:
    """Labels read `event [guards] (who fires it)`, naming the timers armed in the edge's source state."""
    mermaid = render_mermaid(SESSION)
    assert "anonymous --> authenticated: authenticate [credentials_verified] (server)\n" in mermaid
    assert "authenticated --> session_active: activate [user_enabled, under_session_cap] (server)\n" in mermaid
    assert "session_active --> session_expired: expire (timer idle)\n" in mermaid
    assert "ws_disconnected --> session_active: grace_elapsed (timer grace)\n" in mermaid
    assert "anonymous --> revoked: revoke (admin or server)\n" in mermaid
    assert "anonymous --> closed: logout (client)<br/>end (timer login_window or lifetime)\n" in mermaid
    assert "session_expired --> closed: logout (client)<br/>end (timer refresh_window or lifetime)\n" in mermaid
    assert "connecting --> rejected: reject (server or timer handshake)\n" in render_mermaid(CONNECTION)


def test_refresh_self_loops_appear_on_every_live_state() -> None:
    """The refresh self-loop is drawn on session_active, ws_connected and ws_disconnected."""
    mermaid = render_mermaid(SESSION)
    for state in ("session_active", "ws_connected", "ws_disconnected"):
        assert f"{state} --> {state}: refresh [refresh_token_current] (client)\n" in mermaid


def test_edges_are_read_from_the_compiled_machine() -> None:
    """A transition removed from the engine's shared machine disappears from the picture: it shows what runs."""
    definition = dataclasses.replace(SOUND)  # a fresh identity, so the cached engine mutated here is private
    assert "unlocked --> locked: push (client)" in render_mermaid(definition)
    del engine(definition).machine.events["push"].transitions["unlocked"]
    assert "push" not in render_mermaid(definition)
    assert "push" not in render_dot(definition)


@pytest.mark.parametrize("extension", sorted(RENDERERS))
def test_rendering_is_deterministic(extension: str) -> None:
    """Two renderings of one machine are byte-identical, so drift checks never flap."""
    assert RENDERERS[extension](SESSION) == RENDERERS[extension](SESSION)


def test_dot_escapes_quotes_and_html_in_names_and_descriptions() -> None:
    """Odd characters in a description cannot break the DOT document."""
    odd = dataclasses.replace(SOUND, descriptions={"locked": 'says "no" & <waits>'})
    assert "says &quot;no&quot; &amp; &lt;waits&gt;" in render_dot(odd)
