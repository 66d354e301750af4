"""How bench/ws.py words its figures: percentiles, sizes, close codes, server logs and judged results."""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessionflow.lifecycle.protocol import BY_CODE


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return float(ordered[int(min(rank, len(ordered))) - 1])


def log_summary(path: Path, top: int = 4) -> str:
    """Warnings and errors in a server log, counted by message (ids and numbers masked)."""
    counts: Counter[str] = Counter()
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            level = next((word for word in ("CRITICAL", "ERROR", "WARNING") if f" {word} " in line), None)
            if level is not None:
                message = line.split("] ", 1)[-1] if "] " in line else line.split(f" {level} ", 1)[-1]
                counts[f"{level} " + re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}|\d+", "#", message)[:110]] += 1
    if not counts:
        return "no warnings or errors"
    shown = "; ".join(f"{n:,} x {message!r}" for message, n in counts.most_common(top))
    return shown + (f"; {len(counts) - top} more kinds" if len(counts) > top else "")


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def code_names(codes: dict[Any, int]) -> str:
    if not codes:
        return "none"
    parts = []
    for code, n in sorted(codes.items(), key=lambda item: -item[1]):
        row = BY_CODE.get(int(code)) if str(code).isdigit() else None
        parts.append(f"{n:,} x {code}{f' {row.name}' if row else ''}")
    return ", ".join(parts)


@dataclass
class Judged:
    label: str
    shown: str
    target: str
    passed: bool | None  # None: not judged (and why is in ``shown``)
