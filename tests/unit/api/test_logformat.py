"""Log messages stay on one line of printable text, whatever a client put in them."""

from __future__ import annotations

import logging
import sys

import pytest

from sessionflow.api.logformat import SafeFormatter, escape


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("nul\x00", "nul\\x00"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("c1\x85", "c1\\x85"),
        ("line\u2028sep", "line\\u2028sep"),
        ("typed\\n", "typed\\\\n"),
        ("plain é ✓", "plain é ✓"),
    ],
)
def test_escape_writes_controls_and_backslashes_as_escapes(raw: str, written: str) -> None:
    assert escape(raw) == written


def test_the_formatter_escapes_the_message_and_keeps_a_traceback_on_its_lines() -> None:
    formatter = SafeFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "path=%s", ("/a\n2026 forged",), None)
        record.exc_info = sys.exc_info()
    text = formatter.format(record)
    first, *rest = text.split("\n")
    assert first == "ERROR path=/a\\n2026 forged"
    assert rest[0] == "Traceback (most recent call last):"
