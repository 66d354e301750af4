"""Log lines no client can forge.

Whatever a client sends (a path, a query string, a header, a username) may reach a log message.
:class:`SafeFormatter` writes every message on one line: control characters (CR, LF, NUL, ESC and
the rest of C0 and C1, DEL) and the Unicode line and paragraph separators are written as escapes
(``\\n``, ``\\x1b``, ``\\u2028``), and so is a backslash, so an escape a client typed cannot pass for one
the formatter wrote. A traceback, which the server writes, keeps its lines.
"""

from __future__ import annotations

import logging
import re

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def escape(text: str) -> str:
    """``text`` on one line, with nothing that a terminal or a log reader would act on."""
    return _UNSAFE.sub(lambda m: _NAMED.get(m.group(), m.group().encode("unicode_escape").decode()), text)


class SafeFormatter(logging.Formatter):
    """A :class:`logging.Formatter` whose message part is always one line of printable text."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)
