"""The layers import one way, and everything imports ``sessionflow.<layer>``, never a bare folder name.

Read from the source with :mod:`ast`, so a forbidden import is caught even in
a module no test happens to load (docs/layers.md).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python" / "src" / "sessionflow" / "client"
PACKAGES = {
    "lifecycle": ROOT / "lifecycle",
    "persistence": ROOT / "persistence",
    "api": ROOT / "api",
    "migrations": ROOT / "migrations",
    "client": CLIENT,
    "middleware": CLIENT.parent / "middleware",
}
# What each layer may import from sessionflow, besides itself.
ALLOWED = {
    "lifecycle": set(),
    "client": {"lifecycle"},
    "middleware": {"lifecycle"},  # the services middleware ships with the client, without the server
    "persistence": {"lifecycle", "migrations"},  # migrate.py runs the Alembic scripts of the migrations package
    "migrations": {"persistence", "lifecycle"},
    # api/demo.py drives the reference client; api/auth/tokens.py applies the middleware's claims rule
    "api": {"persistence", "lifecycle", "client", "middleware"},
}
BARE = {"lifecycle", "persistence", "api", "migrations", "client", "middleware"}


def _modules(folder: Path) -> Iterator[Path]:
    yield from sorted(path for path in folder.rglob("*.py") if "build" not in path.parts)


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "sessionflow":
                yield from (f"sessionflow.{alias.name}" for alias in node.names)
            else:
                yield node.module


def _every_source_file() -> list[Path]:
    folders = [*PACKAGES.values(), ROOT / "bench", ROOT / "tests"]
    return [path for folder in folders for path in _modules(folder)]


@pytest.mark.parametrize("path", _every_source_file(), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_module_imports_a_bare_folder_name(path: Path) -> None:
    """``import api`` would find the folder in a checkout and nothing in an installation."""
    bare = [name for name in _imports(path) if name.split(".")[0] in BARE]
    assert bare == [], f"{path.relative_to(ROOT)} imports {bare}; import sessionflow.<layer> instead"


@pytest.mark.parametrize("layer", sorted(PACKAGES))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    crossings = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in _modules(PACKAGES[layer])
        for name in _imports(path)
        if name.startswith("sessionflow.") and name.split(".")[1] not in {layer, *ALLOWED[layer]}
    }
    assert crossings == set()


def test_the_lifecycle_layer_needs_nothing_but_the_standard_library_and_transitions() -> None:
    """It ships in the client distribution, whose only dependencies are transitions, httpx and websockets."""
    outside = {
        name.split(".")[0]
        for path in _modules(PACKAGES["lifecycle"])
        for name in _imports(path)
        if not name.startswith("sessionflow")
    } - {"__future__", "transitions", *sys.stdlib_module_names}
    assert outside == set()


def test_the_client_needs_only_what_its_distribution_declares() -> None:
    outside = {
        name.split(".")[0] for path in _modules(CLIENT) for name in _imports(path) if not name.startswith("sessionflow")
    } - {"__future__", "httpx", "websockets", *sys.stdlib_module_names}
    assert outside == set()
