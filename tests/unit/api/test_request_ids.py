"""Request ids: the caller's when well formed, else a new one that no other request, in any worker, shares."""

from __future__ import annotations

import multiprocessing
import re

from sessionflow.api.observability import new_request_id, request_id_of


def _ids_in_a_forked_worker(queue: multiprocessing.Queue[list[str]]) -> None:
    queue.put([new_request_id() for _ in range(100)])


def test_a_well_formed_caller_id_is_kept_and_anything_else_replaced() -> None:
    assert request_id_of([(b"x-request-id", b"trace-42.a:b_c")]) == "trace-42.a:b_c"
    for forged in (b"line\nbreak", b"", b"x" * 65, b"sp ace"):
        made = request_id_of([(b"x-request-id", forged)])
        assert re.fullmatch(r"[0-9a-f]{32}", made), made
    assert re.fullmatch(r"[0-9a-f]{32}", request_id_of([]))


def test_new_ids_differ_within_a_worker_and_across_forked_workers() -> None:
    """granian forks its workers from one parent: each must draw its own ids, not the parent's sequence."""
    new_request_id()  # the parent has drawn before forking, as an app that logged at start would have
    fork = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[list[str]] = fork.Queue()
    workers = [fork.Process(target=_ids_in_a_forked_worker, args=(queue,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    batches = [queue.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    mine = [new_request_id() for _ in range(100)]
    every = [*batches[0], *batches[1], *mine]
    assert len(set(every)) == len(every)
