"""One ingest run: read sources in order, parse batches in worker processes, commit each batch to
the catalog and the vector index in order, checkpoint, and report progress.

    reader thread ──raw batches (bounded)──▶ worker processes ──results, in order──▶ commit
    (decompress, untar)                       (parse, clean, vector)                (catalog, vectors,
                                                                                     checkpoint)

Memory stays flat: at most `window` batches are in flight. A checkpoint is written after each
commit; a run stopped at any point (Ctrl-C, kill -9, reboot) and started again resumes from the
last one and ends with the same catalog and index as an uninterrupted run (see checkpoint.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.process
import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from musicrec_common.errors import UnavailableError
from musicrec_common.feature_model import FeatureModel, fit
from musicrec_common.logging import log_event
from musicrec_common.progress import ProgressMeter
from musicrec_ingestor.checkpoint import Checkpoint, CheckpointStore, sources_key
from musicrec_ingestor.pipeline import (
    MAX_SKIPPED_LISTED,
    BatchResult,
    IngestCounts,
    PackedDocuments,
    Skipped,
    count_distinct,
    count_problem,
    parse_batch,
    vector_winners,
)
from musicrec_ingestor.sources import (
    BytesRead,
    Document,
    SourceProblem,
    count_documents,
    iter_source,
    source_bytes,
)
from musicrec_vectorstore import VectorStore
from musicrec_vectorstore.feature_models import load_feature_model, save_feature_model

__all__ = [
    "CatalogSink",
    "IngestOptions",
    "Progress",
    "RawBatch",
    "Report",
    "parse_stage",
    "run_ingest",
    "worker_pool",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

CatalogSink = Callable[[bytes], Awaitable[tuple[int, int, int]]]
"""Stores one batch of tracks in the catalog, given as an encoded `UpsertTracksRequest` (built in the
worker that parsed them); returns (inserted, updated, unchanged)."""


@dataclass(frozen=True)
class IngestOptions:
    batch_size: int = 2_000
    # Worker processes for parsing; 0 parses in a thread of this process (small inputs, tests).
    workers: int = 2
    checkpoint_dir: Path | None = None
    # An index without a feature model gets one fitted on the first `fit_documents` valid documents.
    fit_documents: int = 20_000
    # Build the search index (HNSW) once the run has written everything.
    build_index: bool = True


@dataclass(frozen=True)
class Progress:
    stage: str
    source: str
    documents_read: int
    documents_total: int | None
    elapsed_seconds: float
    documents_per_second: float
    eta_seconds: float
    bytes_read: int = 0
    bytes_total: int = 0


@dataclass
class Report:
    counts: IngestCounts
    skipped: list[Skipped]
    elapsed_seconds: float
    stage_seconds: dict[str, float]
    resumed_from: int = 0  # documents already done by an earlier, interrupted run
    sources: list[str] = field(default_factory=list)


@dataclass
class RawBatch:
    source: str
    source_index: int
    items_done: int  # items of this source consumed once this batch is committed
    documents: PackedDocuments
    problems: list[SourceProblem]
    bytes_done: int  # bytes of all sources read once this batch was cut


_END = object()


def _reader(
    paths: Sequence[Path],
    start: Checkpoint,
    batch_size: int,
    put: Callable[[object], None],
    stop: threading.Event,
    busy: list[float],
) -> None:
    """Runs in a thread: slices the sources into raw batches, skipping what a checkpoint covers.
    `busy[0]` accumulates the time spent reading (decompressing, untarring), not waiting."""
    before = sum(source_bytes(p) for p in paths[: start.source_index])
    try:
        for index in range(start.source_index, len(paths)):
            skip = start.items_done if index == start.source_index else 0
            documents: list[Document] = []
            problems: list[SourceProblem] = []
            consumed = 0
            position = BytesRead()
            items = iter_source(paths[index], position)
            while True:
                began = time.perf_counter()
                item = next(items, None)
                busy[0] += time.perf_counter() - began
                if item is None or stop.is_set():
                    break
                consumed += 1
                if consumed <= skip:
                    continue
                if isinstance(item, Document):
                    documents.append(item)
                else:
                    problems.append(item)
                if len(documents) >= batch_size:
                    packed = PackedDocuments.pack(documents)
                    put(
                        RawBatch(str(paths[index]), index, consumed, packed, problems, before + position.done)
                    )
                    documents, problems = [], []
            if stop.is_set():
                return
            # The end of each source is a batch boundary, so a checkpoint never straddles sources.
            before += source_bytes(paths[index])
            put(RawBatch(str(paths[index]), index + 1, 0, PackedDocuments.pack(documents), problems, before))
    finally:
        put(_END)


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the server that started it is gone (kill -9 of
    the server would otherwise leave workers waiting forever on their task queue)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="musicrec-parent-watch", daemon=True).start()


def worker_pool(workers: int) -> concurrent.futures.Executor:
    """The pool `parse_stage` parses in: `workers` processes, or one thread when `workers` is 0."""
    if workers <= 0:
        return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="musicrec-parse")
    # spawn: the server process runs gRPC threads, which must not be forked.
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )


async def _parsed(future: asyncio.Future[BatchResult]) -> BatchResult:
    """A worker's result; a worker that died (killed by a signal, crashed) is named as such instead
    of surfacing as an internal error."""
    try:
        return await future
    except concurrent.futures.process.BrokenProcessPool as exc:
        raise UnavailableError(
            "a parse worker process ended abruptly (killed by a signal, e.g. the out-of-memory "
            "killer, or crashed); every batch written before it is kept: run the same ingest again "
            "to resume"
        ) from exc


async def parse_stage(
    paths: Sequence[Path],
    start: Checkpoint,
    options: IngestOptions,
    read_busy: list[float],
    executor: concurrent.futures.Executor | None = None,
) -> AsyncGenerator[tuple[RawBatch, BatchResult], None]:
    """The read and parse stages: every batch of `paths` after `start`, parsed, in source order.

    A reader thread cuts the sources into raw batches; `options.workers` worker processes parse
    them; at most 2 × workers batches are in flight (queued raw, or being parsed), so memory stays
    flat whatever the input size. `read_busy[0]` accumulates the reader's busy time. An `executor`
    given is used (and left running) instead of a pool of `options.workers` started here.
    """
    loop = asyncio.get_running_loop()
    window = max(2, options.workers * 2)  # batches in flight: raw ones queued, and ones being parsed
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=window)
    stop = threading.Event()

    def put(item: object) -> None:
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    reader = loop.run_in_executor(None, _reader, list(paths), start, options.batch_size, put, stop, read_busy)
    own_executor = executor is None
    pool = worker_pool(options.workers) if executor is None else executor
    pending: deque[tuple[RawBatch, asyncio.Future[BatchResult]]] = deque()
    try:
        while True:
            item = await queue.get()
            if item is _END:
                break
            assert isinstance(item, RawBatch)
            pending.append((item, loop.run_in_executor(pool, parse_batch, item.documents)))
            if len(pending) >= window:
                raw, future = pending.popleft()
                yield raw, await _parsed(future)
        while pending:
            raw, future = pending.popleft()
            yield raw, await _parsed(future)
        await reader
    finally:
        stop.set()
        # Unblock a reader waiting on a full queue, then let it end.
        while not reader.done():
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            await asyncio.sleep(0.01)
        for _, future in pending:
            future.cancel()
        if own_executor:
            pool.shutdown(wait=False, cancel_futures=True)


async def run_ingest(
    paths: Sequence[Path],
    *,
    catalog: CatalogSink,
    vectors: VectorStore,
    options: IngestOptions,
) -> AsyncIterator[Progress | Report]:
    """Ingest `paths`, yielding progress after every committed batch, then the final report."""
    started = time.monotonic()
    store = CheckpointStore(options.checkpoint_dir, sources_key(paths)) if options.checkpoint_dir else None
    resumed = store.load() if store else None
    state = resumed or Checkpoint()
    if store and resumed is None:
        store.start()
    if resumed:
        log_event(
            log,
            "resuming ingest from checkpoint",
            source=str(paths[min(state.source_index, len(paths) - 1)]),
            items_done=state.items_done,
            documents_done=state.counts.documents_read,
        )
    counts, skipped = state.counts, state.skipped
    stages = {"read": 0.0, "parse": 0.0, "catalog": 0.0, "vectors": 0.0, "index": 0.0, **state.stage_seconds}
    totals = [count_documents(p) for p in paths]
    bytes_total = sum(source_bytes(p) for p in paths)
    meter = ProgressMeter(total=sum(t or 0 for t in totals) if all(t is not None for t in totals) else None)
    meter.done = counts.documents_read
    resumed_from = counts.documents_read
    distinct_in_memory: list[np.ndarray] = []  # only without a checkpoint folder

    model = await asyncio.to_thread(load_feature_model, vectors)
    read_busy = [0.0]
    read_before = stages["read"]
    first_bytes = [0]  # bytes already covered by a checkpoint (re-read quickly on resume)

    async def timed(stage: str, work: Awaitable[T]) -> T:
        began = time.perf_counter()
        try:
            return await work
        finally:
            stages[stage] += time.perf_counter() - began

    async def commit(raw: RawBatch, result: BatchResult) -> Progress:
        for problem in raw.problems:
            count_problem(counts, problem.reason)
            if len(skipped) < MAX_SKIPPED_LISTED:
                skipped.append(Skipped(problem.source, problem.reason, problem.detail))
        counts.add(result.counts)
        skipped.extend(result.skipped[: MAX_SKIPPED_LISTED - len(skipped)])
        stages["parse"] += result.parse_seconds
        if result.ids:
            # The two stores are independent (each applies the preference rule itself): write both at once.
            (inserted, updated, unchanged), written = await asyncio.gather(
                timed("catalog", catalog(result.catalog_request)),
                timed("vectors", asyncio.to_thread(_upsert_vectors, vectors, result, model)),
            )
            counts.tracks_inserted += inserted
            counts.tracks_updated += updated
            counts.tracks_unchanged += unchanged
            counts.vectors_upserted += written
        if store:
            state.mbid_bytes = await asyncio.to_thread(store.append_mbids, result.mbids)
        else:
            distinct_in_memory.append(result.mbids)
        state.source_index, state.items_done = raw.source_index, raw.items_done
        state.elapsed_seconds = elapsed()
        stages["read"] = read_before + read_busy[0]
        state.stage_seconds = dict(stages)
        if store:
            await asyncio.to_thread(store.save, state)
        meter.done = counts.documents_read
        eta = meter.eta
        if eta < 0 and raw.bytes_done > first_bytes[0]:
            # No document count up front (archives): estimate from the bytes read in this run.
            rate = (raw.bytes_done - first_bytes[0]) / max(time.monotonic() - started, 1e-9)
            eta = (bytes_total - raw.bytes_done) / rate
        return Progress(
            "ingest",
            raw.source,
            meter.done,
            meter.total,
            elapsed(),
            meter.rate,
            eta,
            raw.bytes_done,
            bytes_total,
        )

    previous = state.elapsed_seconds

    def elapsed() -> float:
        return previous + time.monotonic() - started

    # Batches held back until the feature model is fitted (an index without one gets it from the
    # first `fit_documents` valid documents of its first ingest; nothing is written before that).
    waiting: list[tuple[RawBatch, BatchResult]] = []

    async def fit_model() -> None:
        nonlocal model
        if any(result.ids for _, result in waiting):
            model = await timed(
                "vectors", asyncio.to_thread(_fit_and_save, vectors, waiting, options.fit_documents)
            )
            log_event(log, "feature model fitted", model=model.model_id, tracks=model.fitted_on)

    # aclosing: a run stopped early (the client went away) stops the reader and the workers now.
    async with contextlib.aclosing(parse_stage(paths, state, options, read_busy)) as batches:
        async for raw, result in batches:
            if first_bytes[0] == 0 and resumed:
                first_bytes[0] = raw.bytes_done
            if model is None:
                waiting.append((raw, result))
                if sum(len(r.document_features) for _, r in waiting) < options.fit_documents:
                    continue
                await fit_model()
                for held in waiting:
                    yield await commit(*held)
                waiting.clear()
                continue
            yield await commit(raw, result)
    if waiting:
        await fit_model()
        for held in waiting:
            yield await commit(*held)
    await timed("vectors", asyncio.to_thread(vectors.flush))
    if options.build_index:
        # One index build after the bulk load instead of one while it runs. It can take minutes on
        # millions of points: say so first.
        yield Progress(
            "index", "", meter.done, meter.total, elapsed(), meter.rate, -1.0, bytes_total, bytes_total
        )
        await timed("index", asyncio.to_thread(vectors.optimize))

    if store:
        distinct = await asyncio.to_thread(store.distinct_mbids)
    else:
        distinct = count_distinct(np.concatenate(distinct_in_memory or [np.zeros((0, 16), np.uint8)]))
    valid = counts.documents_parsed - counts.missing_title - counts.missing_artist
    counts.tracks_stored = distinct
    counts.duplicate_submissions = valid - distinct
    report = Report(
        counts=counts,
        skipped=skipped,
        elapsed_seconds=elapsed(),
        stage_seconds=stages,
        resumed_from=resumed_from,
        sources=[str(p) for p in paths],
    )
    if store:
        store.finish()
    yield report


def _fit_and_save(
    vectors: VectorStore, batches: Sequence[tuple[RawBatch, BatchResult]], documents: int
) -> FeatureModel:
    """Fit on the first `documents` valid documents of the run, in input order, whatever the batches."""
    model = fit(np.concatenate([result.document_features for _, result in batches])[:documents])
    save_feature_model(vectors, model)
    return model


def _upsert_vectors(vectors: VectorStore, result: BatchResult, model: FeatureModel | None) -> int:
    """Write the vectors whose submission is preferred over what the index holds (see pipeline),
    transformed by the index's feature model."""
    stored = vectors.get_payloads(result.ids)
    winners = vector_winners(result.ids, result.payloads, stored)
    if not winners:
        return 0
    if model is None:
        raise RuntimeError("vectors written before the index has a feature model")
    if len(winners) == len(result.ids):
        vectors.upsert(result.ids, model.transform(result.features), result.payloads)
    else:
        ids, payloads = result.ids, result.payloads
        chosen = model.transform(result.features[winners])
        vectors.upsert([ids[i] for i in winners], chosen, [payloads[i] for i in winners])
    return len(winners)
