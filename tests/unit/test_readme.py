"""The README's promises stay true: CI runs its test command, and the diagrams it shows are current."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _shell_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_readme_opens_with_the_two_fresh_machine_commands() -> None:
    """The first two shell blocks install-and-serve, then install-and-test."""
    blocks = _shell_blocks((ROOT / "README.md").read_text())
    serve, test = (block.splitlines()[-1] for block in blocks[:2])
    assert serve.startswith("python3 -m venv .venv")
    assert serve.endswith("sessionflow serve")
    assert test.startswith("python3 -m venv .venv")
    assert test.endswith("pytest")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """.ci/run contains the README's test command verbatim."""
    test = _shell_blocks((ROOT / "README.md").read_text())[1].splitlines()[-1]
    assert test in (ROOT / ".ci" / "run").read_text()
