"""The IngestorService gRPC servicer: validates the request, runs `run_ingest`, streams progress
and the final report as protobuf."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from musicrec.ingestor.v1 import ingestor_pb2, ingestor_pb2_grpc
from musicrec_common.catalog_client import CatalogClient
from musicrec_common.errors import InvalidArgumentError
from musicrec_common.logging import log_event
from musicrec_ingestor.runner import IngestOptions, Progress, Report, run_ingest
from musicrec_ingestor.sources import describe_unsupported
from musicrec_vectorstore import VectorStore

__all__ = ["IngestorServicer", "report_to_proto"]

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]
_REPORT_FIELDS = set(ingestor_pb2.IngestReport.DESCRIPTOR.fields_by_name)


def report_to_proto(report: Report) -> ingestor_pb2.IngestReport:
    counts = report.counts.as_dict()
    elapsed = report.elapsed_seconds
    # Stage times add up across an interrupted run and its resumption, like the counts.
    done = report.counts.documents_read
    return ingestor_pb2.IngestReport(
        elapsed_seconds=elapsed,
        documents_per_second=report.counts.documents_read / elapsed if elapsed > 0 else 0.0,
        skipped=[
            ingestor_pb2.SkippedDocument(source=s.source, reason=s.reason, detail=s.detail)
            for s in report.skipped
        ],
        stages=[
            ingestor_pb2.StageTiming(
                stage=stage, seconds=seconds, documents_per_second=done / seconds if seconds > 0 else 0.0
            )
            for stage, seconds in report.stage_seconds.items()
        ],
        resumed_from_documents=report.resumed_from,
        **{k: v for k, v in counts.items() if k in _REPORT_FIELDS},
    )


def _progress_to_proto(progress: Progress) -> ingestor_pb2.IngestProgress:
    return ingestor_pb2.IngestProgress(
        documents_read=progress.documents_read,
        documents_total=progress.documents_total or 0,
        elapsed_seconds=progress.elapsed_seconds,
        documents_per_second=progress.documents_per_second,
        eta_seconds=progress.eta_seconds,
        stage=progress.stage,
        current_source=progress.source,
        bytes_read=progress.bytes_read,
        bytes_total=progress.bytes_total,
    )


class IngestorServicer(ingestor_pb2_grpc.IngestorServiceServicer):
    def __init__(self, catalog: CatalogClient, vectors: VectorStore, options: IngestOptions) -> None:
        self._catalog = catalog
        self._vectors = vectors
        self._options = options
        # One ingest at a time: two concurrent runs would race on the same recordings.
        self._lock = asyncio.Lock()

    async def _store_tracks(self, request: bytes) -> tuple[int, int, int]:
        result = await self._catalog.upsert_encoded([request])
        return result.inserted, result.updated, result.unchanged

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
            events = run_ingest(
                paths, catalog=self._store_tracks, vectors=self._vectors, options=self._options
            )
            async for event in events:
                if isinstance(event, Report):
                    log_event(
                        log,
                        "ingest finished",
                        sources=event.sources,
                        elapsed_seconds=round(event.elapsed_seconds, 2),
                        stage_seconds={k: round(v, 2) for k, v in event.stage_seconds.items()},
                        resumed_from=event.resumed_from,
                        **event.counts.as_dict(),
                    )
                    yield ingestor_pb2.IngestResponse(report=report_to_proto(event))
                else:
                    yield ingestor_pb2.IngestResponse(progress=_progress_to_proto(event))
