"""The IngestorService gRPC servicer: reads sources, keeps one submission per recording, sends
metadata to the catalog and vectors to the vector store, streaming progress and a final report."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from musicrec.ingestor.v1 import ingestor_pb2, ingestor_pb2_grpc
from musicrec_common.catalog_client import CatalogClient
from musicrec_common.errors import InvalidArgumentError
from musicrec_common.logging import log_event
from musicrec_common.model import ParsedDocument, Track
from musicrec_common.progress import ProgressMeter
from musicrec_ingestor.pipeline import Selection
from musicrec_ingestor.sources import count_documents, describe_unsupported, iter_source
from musicrec_vectorstore import VectorStore
from musicrec_vectorstore.payload import payload_for

__all__ = ["IngestorServicer"]

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]
_PROGRESS_EVERY = 0.5


def _batches(items: Sequence[ParsedDocument], size: int) -> Iterator[Sequence[ParsedDocument]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class IngestorServicer(ingestor_pb2_grpc.IngestorServiceServicer):
    def __init__(self, catalog: CatalogClient, vectors: VectorStore, *, batch_size: int = 1_000) -> None:
        self._catalog = catalog
        self._vectors = vectors
        self._batch_size = batch_size
        # One ingest at a time: two concurrent runs would race on the same recordings.
        self._lock = asyncio.Lock()

    async def Ingest(
        self, request: ingestor_pb2.IngestRequest, context: Context
    ) -> AsyncIterator[ingestor_pb2.IngestResponse]:
        if not request.paths:
            raise InvalidArgumentError("paths", "give at least one folder or file to ingest")
        paths = [Path(p) for p in request.paths]
        for i, path in enumerate(paths):
            problem = describe_unsupported(path)
            if problem:
                raise InvalidArgumentError(f"paths[{i}]", problem)
        async with self._lock:
            async for event in self._run(paths):
                yield event

    async def _run(self, paths: list[Path]) -> AsyncIterator[ingestor_pb2.IngestResponse]:
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[ingestor_pb2.IngestProgress | None] = asyncio.Queue()
        selection = Selection()
        totals = [count_documents(p) for p in paths]
        meter = ProgressMeter(
            total=sum(t for t in totals if t) if all(t is not None for t in totals) else None
        )

        def progress(stage: str, source: str) -> ingestor_pb2.IngestProgress:
            return ingestor_pb2.IngestProgress(
                documents_read=meter.done,
                documents_total=meter.total or 0,
                elapsed_seconds=meter.elapsed,
                documents_per_second=meter.rate,
                eta_seconds=meter.eta,
                stage=stage,
                current_source=source,
            )

        def read_all() -> None:
            # Runs in a worker thread: parsing is CPU-bound and must not stall the event loop.
            last = 0.0
            try:
                for path in paths:
                    for item in iter_source(path):
                        selection.add(item)
                        meter.done = selection.counts.documents_read
                        now = time.monotonic()
                        if now - last >= _PROGRESS_EVERY:
                            last = now
                            loop.call_soon_threadsafe(events.put_nowait, progress("parse", str(path)))
            finally:
                loop.call_soon_threadsafe(events.put_nowait, None)

        reader = asyncio.create_task(asyncio.to_thread(read_all))
        while (event := await events.get()) is not None:
            yield ingestor_pb2.IngestResponse(progress=event)
        await reader
        parse_seconds = time.monotonic() - started
        yield ingestor_pb2.IngestResponse(progress=progress("parse", "done"))

        chosen = [selection.chosen[mbid] for mbid in sorted(selection.chosen)]
        counts = selection.counts
        catalog_result = await self._catalog.upsert(
            [d.track for d in batch] for batch in _batches(chosen, self._batch_size)
        )
        counts.tracks_inserted = catalog_result.inserted
        counts.tracks_updated = catalog_result.updated
        counts.tracks_unchanged = catalog_result.unchanged
        counts.tracks_stored = catalog_result.received
        yield ingestor_pb2.IngestResponse(progress=progress("catalog", "done"))

        for batch in _batches(chosen, self._batch_size):
            await asyncio.to_thread(self._upsert_vectors, batch)
            counts.vectors_upserted += len(batch)
        await asyncio.to_thread(self._vectors.flush)
        elapsed = time.monotonic() - started
        log_event(
            log,
            "ingest finished",
            sources=[str(p) for p in paths],
            elapsed_seconds=round(elapsed, 2),
            parse_seconds=round(parse_seconds, 2),
            **counts.as_dict(),
        )
        report = ingestor_pb2.IngestReport(
            elapsed_seconds=elapsed,
            documents_per_second=counts.documents_read / elapsed if elapsed > 0 else 0.0,
            skipped=[
                ingestor_pb2.SkippedDocument(source=s.source, reason=s.reason, detail=s.detail)
                for s in selection.skipped
            ],
            **{
                k: v
                for k, v in counts.as_dict().items()
                if k in ingestor_pb2.IngestReport.DESCRIPTOR.fields_by_name
            },
        )
        yield ingestor_pb2.IngestResponse(report=report)

    def _upsert_vectors(self, batch: Sequence[ParsedDocument]) -> None:
        tracks: list[Track] = [d.track for d in batch]
        vectors = np.stack([d.features for d in batch]).astype(np.float32, copy=False)
        self._vectors.upsert([t.mbid for t in tracks], vectors, [payload_for(t) for t in tracks])
