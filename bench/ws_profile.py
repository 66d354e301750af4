"""``--profile``: where the server's time goes while it holds the connections of (a), sampled by py-spy."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


class Profile:
    """py-spy sampling the server's thread that holds the GIL for ``seconds``, in the background.

    The server is one process bound by its GIL: the event loop and the worker threads of ``asyncio.to_thread``
    take turns. Sampling only the GIL holder shows where that shared time goes.
    """

    def __init__(self, pid: int, seconds: float, output: Path) -> None:
        self.output = output
        self.spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        self.process: subprocess.Popen[bytes] | None = None
        if self.spy is not None:
            argv = [self.spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", "100"]
            argv += ["--gil", "--threads", "--format", "raw", "--output", str(output)]
            self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def report(self, top: int = 16) -> None:
        print("  profile     py-spy on the server during the hold, sampling the thread holding the GIL (--gil)")
        if self.process is None:
            print("              skipped: py-spy not found (pip install py-spy)")
            return
        try:
            _, stderr = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            stderr = b"timed out"
        if not self.output.exists():
            print(f"              skipped: py-spy failed: {stderr.decode(errors='replace').strip()[-300:]}")
            return
        threads: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        leaves: Counter[str] = Counter()
        total = 0
        for line in self.output.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames, n = stack.split(";"), int(count)
            total += n
            thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread") else "?"
            threads["event loop" if thread == "MainThread" else "threads " + thread.rstrip("0123456789_")] += n
            leaves[_frame(frames[-1])] += n
            for name in {_frame(f) for f in frames[1:] if _ours(f) and not _entry(f)}:
                inclusive[name] += n
        if not total:
            print("              no samples")
            return
        shares = ", ".join(f"{name} {100 * n / total:.0f}%" for name, n in threads.most_common())
        print(f"              {total:,} samples: {shares}")
        print("              self time by function (% of all samples):")
        for name, n in leaves.most_common(top // 2):
            print(f"                {100 * n / total:5.1f}%  {name}")
        print("              our functions most often on the stack (inclusive, % of all samples):")
        for name, n in inclusive.most_common(top):
            print(f"                {100 * n / total:5.1f}%  {name}")


OURS = re.compile(r"(^|/)(api|persistence|lifecycle)/")  # py-spy names our files relative to the working directory


def _ours(frame: str) -> bool:
    path = frame.rpartition(" (")[2]
    return "site-packages/" not in path and OURS.search(path) is not None


def _entry(frame: str) -> bool:
    """The frames from ``python -m sessionflow.api.cli serve`` down to the event loop: on every sample of it."""
    path = frame.rpartition(" (")[2]
    return path.startswith(("api/cli/", "api/server.py")) or "/api/cli/" in path or "/api/server.py" in path


def _frame(frame: str) -> str:
    """``name (path:line)`` as ``name (module)``: ours by module, libraries by package."""
    name, _, where = frame.rpartition(" (")
    path = where.rsplit(":", 1)[0]
    if "site-packages/" in path:
        return f"{name} ({path.split('site-packages/', 1)[1].split('/', 1)[0].removesuffix('.py')})"
    if (ours := OURS.search(path)) is not None:
        return f"{name} ({path[ours.start(2) :].removesuffix('.py').replace('/', '.')})"
    return f"{name} ({Path(path).stem})"
