"""The inspector's JavaScript, served by the server and committed, is what its TypeScript compiles to.

A fresh clone serves the page without Node.js, so ``api/inspector/static/js/`` is committed; this test
compiles ``clients/typescript/inspector/`` with the client's own TypeScript (``npm run build:inspector``
writes the same files in place) and fails on any difference.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BUILT = ROOT / "api" / "inspector" / "static" / "js"

pytestmark = pytest.mark.slow


def test_the_committed_javascript_is_what_the_typescript_compiles_to(built_client: Path, tmp_path: Path) -> None:
    npx = shutil.which("npx")
    assert npx is not None
    done = subprocess.run(
        [npx, "tsc", "-p", "tsconfig.inspector.json", "--outDir", str(tmp_path)],
        cwd=built_client,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    fresh = {p.relative_to(tmp_path).as_posix(): p.read_text() for p in tmp_path.rglob("*.js")}
    committed = {p.relative_to(BUILT).as_posix(): p.read_text() for p in BUILT.rglob("*.js")}
    assert sorted(fresh) == sorted(committed), "run `npm run build:inspector` in clients/typescript"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert stale == [], f"stale: {stale}; run `npm run build:inspector` in clients/typescript"
