"""The inspector's screenshots in docs/images/, and what they were taken from.

The browser tests take them (``SESSIONFLOW_SCREENSHOTS=1``) and record the
SHA-256 of every file that decides how the page looks: its HTML, CSS and
built JavaScript, and the diagrams the server draws from the machines. A unit
test compares those with the files as they are now, so a change to the page
or to a machine that leaves the screenshots behind fails until they are taken
again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
RECORD = IMAGES / "inspector-screenshots.json"
COMMAND = "SESSIONFLOW_SCREENSHOTS=1 .venv/bin/pytest tests/integration/browser/test_inspector.py -p no:randomly"
NAMES = ("overview", "session")


def sources() -> dict[str, str]:
    """Path (from the repository root) -> SHA-256 of each file the screenshots show."""
    files = sorted((ROOT / "api" / "inspector" / "static").rglob("*"))
    files += [ROOT / "diagrams" / "session.svg", ROOT / "diagrams" / "connection.svg"]
    return {
        path.relative_to(ROOT).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in files
        if path.is_file()
    }


def recorded() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RECORD.read_text(encoding="utf-8"))
    return data


def take(page: Any, name: str) -> None:
    """Save the page as ``docs/images/inspector-<name>.png`` and record its sources."""
    assert name in NAMES
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / f"inspector-{name}.png"), full_page=True)
    record = {"command": COMMAND, "sources": sources()}
    RECORD.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
