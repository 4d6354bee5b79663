"""Stopping the ingestor while an ingest builds its index: the shutdown does not wait for the build."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from multiprocessing.process import BaseProcess
from pathlib import Path

import grpc
import pytest

from musicrec.ingestor.v1 import ingestor_pb2, ingestor_pb2_grpc
from musicrec_cli.stack import ServiceStack, StackSettings
from musicrec_common.corpus import CorpusSummary
from musicrec_common.features import FEATURE_DIM
from musicrec_vectorstore import VectorStoreError
from musicrec_vectorstore import edge as edge_module

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def database_url(
    postgres_server_url: str, postgres_database_factory: Callable[..., AbstractContextManager[str]]
) -> Iterator[str]:
    with postgres_database_factory(postgres_server_url, migrate=False) as url:
        yield url


def _endless_build(path: Path, dimension: int, started: Callable[[BaseProcess], None]) -> bool:
    """Stands in for the engine's build of a large index (minutes at 1M points): a child process
    that does not end by itself, handed to `started` as the real one is."""
    child = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(600,), daemon=True)
    child.start()
    started(child)
    child.join()
    raise VectorStoreError(f"the index build of {path} ended without finishing (exit code {child.exitcode})")


async def test_stopping_the_ingestor_during_the_index_build_ends_the_build_and_the_call_now(
    tmp_path: Path,
    database_url: str,
    corpus: tuple[Path, CorpusSummary],
    make_stack_settings: Callable[[Path, str], StackSettings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(edge_module, "_optimize_in_child", _endless_build)
    settings = make_stack_settings(tmp_path / "data", database_url)
    grace = 60.0  # far longer than the stop may take
    settings.ingestor = settings.ingestor.model_copy(update={"shutdown_grace": grace})
    async with ServiceStack(settings, ["catalog", "ingestor"]) as stack:
        async with grpc.aio.insecure_channel(stack.addresses["ingestor"]) as channel:
            call = ingestor_pb2_grpc.IngestorServiceStub(channel).Ingest(
                ingestor_pb2.IngestRequest(paths=[str(corpus[0])]), timeout=300
            )
            async for response in call:
                if response.WhichOneof("event") == "progress" and response.progress.stage == "index":
                    break
            else:
                pytest.fail("the ingest ended without reaching its index build")
            await asyncio.sleep(0.5)  # the build's process is running
            began = time.monotonic()
            await stack.servers["ingestor"].stop(grace)
            stopped_in = time.monotonic() - began
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                async for _ in call:
                    pass
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "was stopped" in (failed.value.details() or "")
        assert stopped_in < 10, f"the ingestor took {stopped_in:.1f} s to stop"
    # The points written before the build are kept (most of the corpus's recordings are valid).
    with edge_module.EdgeVectorStore(tmp_path / "data" / "qdrant" / "tracks", FEATURE_DIM) as index:
        assert index.count() > 0.9 * corpus[1].tracks
