"""The TypeScript client's own unit tests (node's test runner, on fakes), run as part of the suite."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest


def test_the_typescript_clients_unit_tests_pass(built_client: Path) -> None:
    npm = shutil.which("npm")
    assert npm is not None
    done = subprocess.run([npm, "test"], cwd=built_client, capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    passed = re.search(r"^# pass (\d+)$", output, flags=re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", output, flags=re.MULTILINE)
    assert passed is not None, output[-4000:]
    assert failed is not None
    assert int(passed.group(1)) > 0
    assert int(failed.group(1)) == 0


pytestmark = pytest.mark.slow
