"""`sessionflow demo --check`: a real run draws exactly the committed diagrams/demo-sequence.mmd."""

from __future__ import annotations

import io

import pytest

from sessionflow.api.demo import run_demo

from .conftest import ROOT, run

pytestmark = pytest.mark.slow


def test_the_committed_demo_diagram_is_what_a_real_run_produces() -> None:
    """The demo runs login, connect, restart, resume, refresh and logout; its diagram matches the committed one."""
    out = io.StringIO()
    code = run(run_demo(output=ROOT / "diagrams" / "demo-sequence.mmd", check=True, out=out), timeout=120)
    assert code == 0, out.getvalue()
    text = out.getvalue()
    assert "matches this run" in text
    for step in ("1. log in", "2. connect", "3. restart", "4. refresh while connected", "5. log out"):
        assert step in text
    assert "the client stopped: logged out (close code 4410)" in text
