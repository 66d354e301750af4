"""Diagrams of the lifecycle machines, drawn from what the engine runs.

The edges are read from the compiled engine's shared ``transitions`` machine,
so a picture can neither show a transition the engine lacks nor miss one it
takes; the definition only adds what that machine does not hold: guards, who
may fire each event and the timer that fires it. Edges between the same two
states are merged into one edge with a label line per event. Output is
deterministic (declaration order, no timestamps) so the committed files
under ``diagrams/`` and the README can be checked for drift byte for byte.
Everything here is text from data; laying the DOT out as SVG with Graphviz and
writing files is the API layer's (:mod:`sessionflow.api.diagrams`).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from sessionflow.lifecycle.engine import engine
from sessionflow.lifecycle.model import Actor, Definition, Guard

_HEADER = "Generated from the lifecycle definitions by `sessionflow diagrams`. Do not edit."
_START = "__start__"
_TERMINAL_COLOURS = ("#1f5f99", "#a8322d", "#7a6a12", "#6c3483")  # blue, red, olive, purple


@dataclass(frozen=True, slots=True)
class Edge:
    """One arrow of a diagram: every event that takes ``source`` to ``dest``, one label line each."""

    source: str
    dest: str
    lines: tuple[str, ...]


def edges(definition: Definition) -> list[Edge]:
    """The arrows of ``definition`` as its compiled machine runs them, parallel ones merged.

    Ordered by source, then destination, in state declaration order; label
    lines follow event declaration order. Self-loops have ``source == dest``.
    """
    machine = engine(definition).machine
    rows = {(row.event, source): row for row in definition.transitions for source in row.sources}
    event_order = {name: index for index, name in enumerate(definition.events)}
    merged: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for name, event in machine.events.items():
        for source, transitions in event.transitions.items():
            for transition in transitions:
                # An internal transition (dest None) stays where it is, like the engine's "=" self-loops.
                dest = transition.source if transition.dest is None else transition.dest
                label = _label(definition, name, source, rows[(name, source)].guards)
                merged.setdefault((transition.source, dest), []).append((event_order[name], label))
    order = {state: index for index, state in enumerate(definition.states)}
    return [
        Edge(source, dest, tuple(label for _, label in sorted(merged[(source, dest)])))
        for source, dest in sorted(merged, key=lambda pair: (order[pair[0]], order[pair[1]]))
    ]


def _label(definition: Definition, event: str, source: str, guards: tuple[Guard, ...]) -> str:
    """``event [guards] (who fires it)``, e.g. ``expire (timer idle)`` or ``revoke (admin or server)``.

    Free of ``:`` and ``;``, which end a transition label in Mermaid's grammar.
    """
    spec = definition.events[event]
    text = str(event)
    if guards:
        text += " [" + ", ".join(guard.name for guard in guards) + "]"
    firers = [str(actor) for actor in Actor if actor in spec.fired_by and actor is not Actor.TIMER]
    if Actor.TIMER in spec.fired_by:
        timers = [timer.name for timer in definition.timers if timer.event == event and source in timer.armed_in]
        firers.append(" ".join(["timer", " or ".join(timers)]) if timers else "timer")
    return f"{text} ({' or '.join(firers)})"


# -- Mermaid ------------------------------------------------------------------------


def render_mermaid(definition: Definition) -> str:
    """A Mermaid ``stateDiagram-v2``: ``[*]`` marks the initial state and the terminal ones.

    Multi-event edges put one event per line (``<br/>``, which Mermaid turns into a
    line break in both its HTML and its SVG-text labels).
    """
    out = ["stateDiagram-v2", f"    %% {_HEADER}"]
    out.append("    classDef initial font-weight:bold,stroke-width:3px")
    out.append("    classDef terminal fill:#e8e8e8,stroke:#555,stroke-width:3px")
    out.append(f"    [*] --> {definition.initial}")
    for edge in edges(definition):
        out.append(f"    {edge.source} --> {edge.dest}: {'<br/>'.join(edge.lines)}")
    terminal = [state for state in definition.states if state in definition.terminal]
    out.extend(f"    {state} --> [*]" for state in terminal)
    out.append(f"    class {definition.initial} initial")
    if terminal:
        out.append(f"    class {','.join(terminal)} terminal")
    return "\n".join(out) + "\n"


# -- Graphviz -----------------------------------------------------------------------


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _quote(text: str) -> str:
    return f'"{_escape(text)}"'


def _node_label(definition: Definition, state: str) -> str:
    name = f"<b>{html.escape(state)}</b>"
    description = definition.descriptions.get(state)
    if not description:
        return f"<{name}>"
    return f'<{name}<br/><font point-size="9" color="#444444">{html.escape(description)}</font>>'


def render_dot(definition: Definition) -> str:
    """A Graphviz digraph read top to bottom.

    A dot points at the initial state (bold border); terminal states share the
    bottom rank, have a double border, and each has a colour that its incoming
    edges and their labels share, so the many "end of life" edges stay apart.
    """
    terminal = [state for state in definition.states if state in definition.terminal]
    colours = {state: _TERMINAL_COLOURS[index % len(_TERMINAL_COLOURS)] for index, state in enumerate(terminal)}
    out = [
        f"// {_HEADER}",
        f"digraph {_quote(definition.name)} {{",
        '    graph [rankdir=TB, nodesep=0.5, ranksep=0.6, fontname="Helvetica", newrank=true];',
        '    node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica", fontsize=12,'
        ' margin="0.15,0.08"];',
        '    edge [fontname="Helvetica", fontsize=10, color="#333333", arrowsize=0.8];',
        f'    {_quote(_START)} [shape=point, width=0.18, label="", fillcolor="#000000"];',
    ]
    for state in definition.states:
        attributes = [f"label={_node_label(definition, state)}"]
        if state == definition.initial:
            attributes.append("penwidth=2.5")
        if state in colours:
            attributes += ["peripheries=2", f'color="{colours[state]}"', 'fillcolor="#f2f2f2"']
        out.append(f"    {_quote(state)} [{', '.join(attributes)}];")
    out.append(f"    {_quote(_START)} -> {_quote(definition.initial)};")
    for edge in edges(definition):
        label = "".join(_escape(line) + "\\l" for line in edge.lines)  # \l ends a left-justified line
        attributes = [f'label="{label}"']
        if edge.dest in colours:
            attributes += [f'color="{colours[edge.dest]}"', f'fontcolor="{colours[edge.dest]}"']
        out.append(f"    {_quote(edge.source)} -> {_quote(edge.dest)} [{', '.join(attributes)}];")
    if terminal:
        out.append(f"    {{ rank=sink; {'; '.join(_quote(state) for state in terminal)}; }}")
    out.append("}")
    return "\n".join(out) + "\n"
