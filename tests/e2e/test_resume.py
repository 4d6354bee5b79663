"""An ingest killed half-way (kill -9) and run again ends with exactly the catalog and the vector
index of an uninterrupted run."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import grpc
import numpy as np
import pytest

from musicrec.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from musicrec.ingestor.v1 import ingestor_pb2, ingestor_pb2_grpc
from musicrec_cli.clients import ingest
from musicrec_cli.stack import ServiceStack, StackSettings
from musicrec_common.corpus import CorpusSummary, read_ground_truth
from musicrec_common.features import FEATURE_DIM
from musicrec_vectorstore import EdgeVectorStore

pytestmark = [pytest.mark.e2e]

READY = re.compile(r"musicrec ready: (?P<pairs>.*?) \(")
# Counts that do not depend on where a run was interrupted (the catalog's inserted/updated split
# does: work redone after the last checkpoint finds its rows already written).
STABLE = (
    "documents_read",
    "documents_parsed",
    "invalid_json",
    "missing_title",
    "missing_artist",
    "missing_release_date",
    "invalid_release_date",
    "duplicate_submissions",
    "placeholder_titles",
    "tracks_stored",
)


async def _catalog_rows(address: str, mbids: list[str]) -> dict[str, bytes]:
    rows: dict[str, bytes] = {}
    async with grpc.aio.insecure_channel(address) as channel:
        stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        for start in range(0, len(mbids), 1000):
            response = await stub.GetTracks(
                catalog_pb2.GetTracksRequest(mbids=mbids[start : start + 1000]), timeout=10
            )
            rows.update({t.mbid: t.SerializeToString(deterministic=True) for t in response.tracks})
    return rows


def _index(data_dir: Path, mbids: list[str]) -> tuple[dict[str, np.ndarray], Mapping[str, object]]:
    store = EdgeVectorStore(data_dir / "qdrant" / "tracks", FEATURE_DIM)
    try:
        return store.get_vectors(mbids), store.get_payloads(mbids)
    finally:
        store.close()


async def _start_server(env: dict[str, str], log: Path) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    # Output goes to a file, not a pipe: the test waits for the process itself, not for every
    # process that might inherit its stdout.
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "musicrec_cli.main", "serve", "all", stdout=out, stderr=out, env=env
        )
    for _ in range(600):
        match = READY.search(log.read_text(errors="replace"))
        if match:
            return process, dict(pair.split("=", 1) for pair in match["pairs"].split())
        if process.returncode is not None:
            break
        await asyncio.sleep(0.1)
    process.kill()
    await process.wait()
    raise AssertionError(f"server did not start:\n{log.read_text(errors='replace')[-2000:]}")


async def test_an_ingest_killed_half_way_resumes_to_the_same_state(
    tmp_path: Path,
    database_url: str,
    postgres_server_url: str,
    postgres_database_factory: Callable[..., object],
    corpus: tuple[Path, CorpusSummary],
    make_stack_settings: Callable[[Path, str], StackSettings],
) -> None:
    corpus_dir, summary = corpus
    mbids = sorted(read_ground_truth(corpus_dir))

    # The reference: one uninterrupted run.
    clean_dir = tmp_path / "clean"
    with postgres_database_factory(postgres_server_url) as clean_url:  # type: ignore[attr-defined]
        async with ServiceStack(
            make_stack_settings(clean_dir, clean_url), ["catalog", "ingestor", "recommender"]
        ) as s:
            clean_report = await ingest(s.addresses["ingestor"], [corpus_dir], show_progress=False)
            clean_rows = await _catalog_rows(s.addresses["catalog"], mbids)
    clean_vectors, clean_payloads = _index(clean_dir, mbids)

    # The same run in its own server process, killed with SIGKILL half-way, then run again.
    data_dir = tmp_path / "interrupted"
    env = {
        **os.environ,
        "MUSICREC_DATA_DIR": str(data_dir),
        "MUSICREC_CATALOG_DATABASE_URL": database_url,
        "MUSICREC_CATALOG_PORT": "0",
        "MUSICREC_INGESTOR_PORT": "0",
        "MUSICREC_RECOMMENDER_PORT": "0",
        "MUSICREC_INGESTOR_BATCH_SIZE": "250",
        "MUSICREC_INGESTOR_WORKERS": "1",
        "MUSICREC_LOG_FORMAT": "json",
    }
    log = tmp_path / "server.log"
    process, addresses = await _start_server(env, log)
    killed_at = 0
    try:
        async with grpc.aio.insecure_channel(addresses["ingestor"]) as channel:
            stub = ingestor_pb2_grpc.IngestorServiceStub(channel)
            call = stub.Ingest(ingestor_pb2.IngestRequest(paths=[str(corpus_dir)]), timeout=120)
            async for event in call:
                if event.HasField("progress") and event.progress.documents_read >= summary.documents // 2:
                    killed_at = event.progress.documents_read
                    process.send_signal(signal.SIGKILL)
                    break
    except grpc.aio.AioRpcError:
        pass
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    assert 0 < killed_at < summary.documents, "the ingest was not interrupted half-way"

    log.write_bytes(b"")
    process, addresses = await _start_server(env, log)
    try:
        report = await ingest(addresses["ingestor"], [corpus_dir], show_progress=False)
        rows = await _catalog_rows(addresses["catalog"], mbids)
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=60) == 0
    vectors, payloads = _index(data_dir, mbids)

    assert 0 < report.resumed_from_documents <= killed_at
    for name in STABLE:
        assert getattr(report, name) == getattr(clean_report, name), name
    assert rows == clean_rows
    assert payloads == clean_payloads
    assert vectors.keys() == clean_vectors.keys()
    for mbid, vector in clean_vectors.items():
        np.testing.assert_allclose(vectors[mbid], vector, rtol=0, atol=1e-6)
