"""A stopping worker's last log lines reach the output before the lifespan returns."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from litestar.logging.standard import QueueListenerHandler

from sessionflow.api import observability


class _SlowHandler(logging.Handler):
    """Writes each record only after a pause, as a busy output stream would."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []
        self.unblock = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.unblock.wait(5)
        self.written.append(record.getMessage())


@pytest.fixture
def slow() -> Iterator[_SlowHandler]:
    logger = logging.getLogger("sessionflow")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    slow = _SlowHandler()
    queued = QueueListenerHandler([slow])
    logger.handlers[:] = [queued]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield slow
    slow.unblock.set()  # its writer thread is stopped at exit, as in the server
    logger.handlers[:], logger.level, logger.propagate = saved


def test_flush_waits_for_queued_lines_to_be_written(slow: _SlowHandler) -> None:
    logging.getLogger("sessionflow.api").info("application shutdown complete")
    assert slow.written == []  # still queued behind the writer thread
    threading.Timer(0.2, slow.unblock.set).start()
    observability.flush_logs(timeout=5)
    assert slow.written == ["application shutdown complete"]


def test_flush_is_bounded_when_the_writer_is_stuck(slow: _SlowHandler) -> None:
    logging.getLogger("sessionflow.api").info("never written while the output is stuck")
    observability.flush_logs(timeout=0.3)  # returns although the writer has not finished
    assert slow.written == []
