"""Diagrams are drawn from the machines the engine runs, and the committed copies never drift.

The drift tests compare ``diagrams/`` and the README with freshly rendered
output. The SVG needs Graphviz's ``dot``: without it the SVG comparison is
skipped locally and fails under ``CI=true``, where drift must always be caught.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from sessionflow.lifecycle import CONNECTION, MACHINES, SESSION, Definition, engine
from sessionflow.lifecycle.diagrams import (
    FORMATS,
    DiagramError,
    edges,
    generate,
    readme_block,
    render_dot,
    render_mermaid,
    render_svg,
    sync_readme,
)
from tests.conftest import HAVE_DOT, needs_dot

from .broken_machines import SOUND

ROOT = Path(__file__).resolve().parents[3]
DIAGRAMS = ROOT / "diagrams"
README = ROOT / "README.md"
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


# -- drift -------------------------------------------------------------------------------

FILE_CASES = [(definition, extension) for definition in DEFINITIONS for extension in FORMATS]


@pytest.mark.parametrize(
    ("definition", "extension"), FILE_CASES, ids=[f"{d.name}.{extension}" for d, extension in FILE_CASES]
)
def test_committed_diagram_matches_the_definition(definition: Definition, extension: str) -> None:
    """diagrams/<name>.<ext> is exactly what the renderer draws today; run `sessionflow diagrams` if not."""
    if extension == "svg":
        needs_dot()
    path = DIAGRAMS / f"{definition.name}.{extension}"
    assert path.is_file(), f"{path} is missing; run `sessionflow diagrams`"
    assert path.read_text(encoding="utf-8") == FORMATS[extension](definition), (
        f"{path} drifted from the definition; run `sessionflow diagrams`"
    )


def test_generate_in_check_mode_finds_no_drift_in_the_repository() -> None:
    """The same check the CLI runs in CI: nothing under diagrams/ differs."""
    needs_dot()
    assert generate(DIAGRAMS, DEFINITIONS, check=True) == []


def test_readme_diagrams_are_in_sync() -> None:
    """README.md shows each machine's current Mermaid diagram between its markers."""
    assert sync_readme(README, DEFINITIONS, check=True) is False
    text = README.read_text(encoding="utf-8")
    for definition in DEFINITIONS:
        assert readme_block(definition) in text


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


@pytest.mark.parametrize("extension", sorted(FORMATS))
def test_rendering_is_deterministic(extension: str) -> None:
    """Two renderings of one machine are byte-identical, so drift checks never flap."""
    if extension == "svg":
        needs_dot()
    assert FORMATS[extension](SESSION) == FORMATS[extension](SESSION)


def test_svg_has_no_graphviz_version_stamp() -> None:
    """The SVG is a complete document without the build-dependent 'Generated by graphviz version' comment."""
    needs_dot()
    svg = render_svg(SESSION)
    assert svg.startswith("<?xml")
    assert "<svg" in svg
    assert svg.rstrip().endswith("</svg>")
    assert "Generated by graphviz" not in svg
    assert "revoke (admin or server)" in svg


def test_missing_graphviz_is_reported_with_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without `dot` on PATH, render_svg raises DiagramError naming the Debian package graphviz."""
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(DiagramError, match=r"package `graphviz`"):
        render_svg(SESSION)


def test_dot_escapes_quotes_and_html_in_names_and_descriptions() -> None:
    """Odd characters in a description cannot break the DOT document."""
    odd = dataclasses.replace(SOUND, descriptions={"locked": 'says "no" & <waits>'})
    dot = render_dot(odd)
    assert "says &quot;no&quot; &amp; &lt;waits&gt;" in dot
    if HAVE_DOT:
        assert "<svg" in render_svg(odd)


# -- files -------------------------------------------------------------------------------


def test_generate_writes_every_format_of_every_machine(tmp_path: Path) -> None:
    """generate() creates the directory and writes <name>.<ext> per machine and format, returning them."""
    needs_dot()
    target = tmp_path / "out"
    written = generate(target, DEFINITIONS, check=False)
    expected = {target / f"{d.name}.{extension}" for d in DEFINITIONS for extension in FORMATS}
    assert set(written) == expected
    assert set(target.iterdir()) == expected
    assert (target / "session.mmd").read_text(encoding="utf-8") == render_mermaid(SESSION)
    assert generate(target, DEFINITIONS, check=True) == []


def test_check_mode_lists_changed_and_missing_files_and_writes_nothing(tmp_path: Path) -> None:
    """With check=True, edited and deleted files are reported and the directory is left as it was."""
    needs_dot()
    generate(tmp_path, DEFINITIONS, check=False)
    (tmp_path / "session.dot").write_text("digraph stale {}\n", encoding="utf-8")
    (tmp_path / "connection.mmd").unlink()
    assert generate(tmp_path, DEFINITIONS, check=True) == [tmp_path / "session.dot", tmp_path / "connection.mmd"]
    assert (tmp_path / "session.dot").read_text(encoding="utf-8") == "digraph stale {}\n"
    assert not (tmp_path / "connection.mmd").exists()
    fresh = tmp_path / "never-generated"
    assert len(generate(fresh, DEFINITIONS, check=True)) == len(FILE_CASES)
    assert not fresh.exists()


README_TEMPLATE = """# project

intro stays

<!-- BEGIN diagram:session -->
stale
<!-- END diagram:session -->

middle stays

<!-- BEGIN diagram:connection -->
<!-- END diagram:connection -->

<!-- BEGIN diagram:client -->
<!-- END diagram:client -->

outro stays
"""


def test_sync_readme_replaces_only_the_text_between_markers(tmp_path: Path) -> None:
    """Both blocks get a mermaid fence; text outside the markers is untouched; a second sync changes nothing."""
    readme = tmp_path / "README.md"
    readme.write_text(README_TEMPLATE, encoding="utf-8")
    assert sync_readme(readme, DEFINITIONS, check=False) is True
    text = readme.read_text(encoding="utf-8")
    for definition in DEFINITIONS:
        block = f"<!-- BEGIN diagram:{definition.name} -->\n```mermaid\n{render_mermaid(definition)}```\n"
        assert block + f"<!-- END diagram:{definition.name} -->" in text
    assert "stale" not in text
    outside = re.sub(r"<!-- BEGIN.*?END diagram:\w+ -->", "", text, flags=re.DOTALL)
    assert outside == re.sub(r"<!-- BEGIN.*?END diagram:\w+ -->", "", README_TEMPLATE, flags=re.DOTALL)
    assert sync_readme(readme, DEFINITIONS, check=False) is False
    assert readme.read_text(encoding="utf-8") == text


def test_sync_readme_in_check_mode_reports_drift_without_writing(tmp_path: Path) -> None:
    """check=True returns True for a stale README and leaves the file byte-identical."""
    readme = tmp_path / "README.md"
    readme.write_text(README_TEMPLATE, encoding="utf-8")
    assert sync_readme(readme, DEFINITIONS, check=True) is True
    assert readme.read_text(encoding="utf-8") == README_TEMPLATE


def test_sync_readme_refuses_a_readme_without_the_markers(tmp_path: Path) -> None:
    """A README missing a machine's markers is an error naming the marker, not a silent no-op."""
    readme = tmp_path / "README.md"
    readme.write_text("<!-- BEGIN diagram:session -->\n<!-- END diagram:session -->\n", encoding="utf-8")
    with pytest.raises(DiagramError, match="diagram:connection"):
        sync_readme(readme, DEFINITIONS, check=True)
