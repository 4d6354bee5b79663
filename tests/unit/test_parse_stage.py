"""The ingest's parse stage when a worker process dies."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

import pytest

from musicrec_common.corpus import write_corpus_archive
from musicrec_common.errors import UnavailableError
from musicrec_ingestor.checkpoint import Checkpoint
from musicrec_ingestor.runner import IngestOptions, parse_stage

T = TypeVar("T")


class _PoolWithADeadWorker(concurrent.futures.Executor):
    """Parses the first `good` batches, then fails as ProcessPoolExecutor does once one of its
    processes was killed (the out-of-memory killer, a crash)."""

    def __init__(self, good: int) -> None:
        self.good = good

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self.good > 0:
            self.good -= 1
            future.set_result(fn(*args, **kwargs))
        else:
            future.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))
        return future


async def test_a_dead_parse_worker_ends_the_stage_with_a_clear_error_after_the_batches_before_it(
    tmp_path: Path,
) -> None:
    archive = tmp_path / "corpus.tar.zst"
    write_corpus_archive(archive, tracks=300, workers=1)
    options = IngestOptions(batch_size=50, workers=1)
    parsed: list[int] = []

    async def consume() -> None:
        async for _, result in parse_stage([archive], Checkpoint(), options, [0.0], _PoolWithADeadWorker(3)):
            parsed.append(len(result.ids))

    with pytest.raises(UnavailableError, match="parse worker process ended abruptly") as failed:
        await consume()
    assert len(parsed) == 3
    assert sum(parsed) > 0  # the batches parsed before the worker died were handed on
    assert "run the same ingest again" in str(failed.value)
