"""`EdgeVectorStore`: the VectorStore port over a Qdrant Edge shard, in-process.

A shard lives in one folder and is opened by one process at a time (its write-ahead log is
locked); a second open fails and is reported as `VectorStoreUnavailableError`.

Edge builds no index in the background: points land in a plain (exact, brute-force) segment,
which is fast enough for some hundred thousand points. `optimize()` builds the HNSW index and
is worth calling once after a large ingest; it blocks its caller while it runs. The engine's build
holds Python's GIL for its whole length (minutes at 1M points), so it runs in a child process that
opens the shard while this process has it closed: the rest of this process keeps running (gRPC,
health checks, signal handlers), and calls to the store meanwhile raise
`VectorStoreUnavailableError` instead of waiting.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import qdrant_edge as edge

from musicrec_vectorstore._common import (
    DEFAULT_BATCH_SIZE,
    RecordReads,
    check_batch_size,
    check_dimension,
    check_metadata,
    check_width,
    id_to_str,
    point_batch,
    prepare_query,
    prepare_upsert,
)
from musicrec_vectorstore._filters import edge_filter, search_excluding_after
from musicrec_vectorstore.index_config import (
    DEFAULT_INDEX_CONFIG,
    FULL_SCAN_THRESHOLD_KB,
    INT8_QUANTILE,
    RESCORE_OVERSAMPLING,
    IndexConfig,
)
from musicrec_vectorstore.port import (
    PAYLOAD_FIELDS,
    Hit,
    PayloadValue,
    PointBatch,
    SearchFilter,
    VectorStoreError,
    VectorStoreUnavailableError,
)

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess
    from uuid import UUID

    from qdrant_edge import PayloadSchemaParams

__all__ = ["EdgeVectorStore"]

_CONFIG_FILE = "edge_config.json"
# musicrec's own file in the shard folder (the engine ignores it): metadata such as the feature model.
_METADATA_FILE = "musicrec_metadata.json"
_SEGMENTS_DIR = "segments"


def _index_schema(kind: str) -> edge.PayloadSchemaType | PayloadSchemaParams:
    if kind == "keyword":
        return edge.PayloadSchemaType.Keyword
    if kind == "integer":
        return edge.IntegerIndexParams(lookup=True, range=True)
    if kind == "bool":
        return edge.PayloadSchemaType.Bool
    raise VectorStoreError(f"unknown payload index kind {kind!r}")


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "WouldBlock" in text or "failed to open WAL" in text


# The index build's process name: multiprocessing's, and the OS's (Linux: `ps`, /proc/PID/comm;
# at most 15 bytes there).
BUILD_PROCESS_NAME = "musicrec-index"


def _die_with_parent(parent: int) -> None:
    """In a child process: be killed when the parent dies, even by SIGKILL, and go by
    BUILD_PROCESS_NAME (Linux; elsewhere a no-op). The index build holds the GIL, so a watching
    thread could not run during it."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            libc.prctl(15, BUILD_PROCESS_NAME.encode())  # PR_SET_NAME
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)


def _build_index(path: str, dimension: int, parent: int, result: Connection) -> None:
    """The child process of `EdgeVectorStore.optimize`: open the shard, build, close; send back
    whether anything changed, or the error's text."""
    _die_with_parent(parent)
    try:
        vectors = edge.EdgeVectorParams(size=dimension, distance=edge.Distance.Cosine)
        shard = edge.EdgeShard.load(path, edge.EdgeConfig(vectors=vectors))
        try:
            changed = bool(shard.optimize())
            shard.flush()
        finally:
            shard.close()
        result.send(changed)
    except Exception as exc:
        result.send(f"{type(exc).__name__}: {exc}")
    finally:
        result.close()


def _optimize_in_child(path: Path, dimension: int, started: Callable[[BaseProcess], None]) -> bool:
    """Build the index of the (closed) shard at `path` in a child process, given to `started` once
    it runs; True when anything changed."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=_build_index,
        args=(str(path), dimension, os.getpid(), send),
        name=BUILD_PROCESS_NAME,
        daemon=True,  # ended with this process when it exits
    )
    child.start()
    send.close()
    started(child)
    try:
        outcome = receive.recv()
    except EOFError:
        child.join()
        raise VectorStoreError(
            f"the index build of {path} ended without finishing (exit code {child.exitcode}); "
            "the points are kept: build again (run the ingest again) to finish it"
        ) from None
    finally:
        receive.close()
    child.join()
    if isinstance(outcome, str):
        raise VectorStoreError(f"cannot build the vector index at {path}: {outcome}")
    return bool(outcome)


class EdgeVectorStore(RecordReads):
    """The VectorStore port over a Qdrant Edge shard stored in `path`.

    The shard is created (cosine distance, HNSW and quantization as `config` says) when `path`
    holds none and loaded otherwise (keeping the build settings it was created with); a stored
    shard of another vector size is refused with VectorStoreError. The payload indexes of
    PAYLOAD_FIELDS are created when missing.
    """

    def __init__(
        self,
        path: Path,
        dimension: int,
        *,
        config: IndexConfig = DEFAULT_INDEX_CONFIG,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self._path = Path(path)
        self._dimension = check_dimension(dimension)
        if batch_size < 1:
            raise VectorStoreError(f"batch_size must be positive, not {batch_size}")
        self._batch_size = batch_size
        self._config = config
        self._search_params = self._widened(1)
        # Calls using the shard now, and whether an index build (in a child process) has it.
        self._state = threading.Condition()
        self._users = 0
        self._building = False
        self._child: BaseProcess | None = None  # the build's process, while it runs
        self._stopping = False  # stop_build() asked the running build to stop
        self._closed = False
        self._shard: edge.EdgeShard | None = self._open()
        try:
            self._metadata = self._read_metadata()
            self._ensure_payload_indexes()
        except BaseException:
            self.close()
            raise

    def _widened(self, width: int) -> edge.SearchParams:
        # Rescoring applies only to a quantized shard (whatever the config says, the stored build
        # settings decide); for others the engine ignores it.
        return edge.SearchParams(
            hnsw_ef=self._config.hnsw_ef * width,
            quantization=edge.QuantizationSearchParams(rescore=True, oversampling=RESCORE_OVERSAMPLING),
            acorn=edge.AcornSearchParams(enable=self._config.acorn),
        )

    # -- opening -------------------------------------------------------------------------------

    def _holds_shard(self) -> bool:
        return (self._path / _CONFIG_FILE).is_file() or (self._path / _SEGMENTS_DIR).is_dir()

    def _open(self) -> edge.EdgeShard:
        vectors = edge.EdgeVectorParams(size=self._dimension, distance=edge.Distance.Cosine)
        try:
            if self._holds_shard():
                # Passing the vector parameters makes the engine check them against the stored
                # segments; everything left unspecified keeps its stored value.
                return edge.EdgeShard.load(str(self._path), edge.EdgeConfig(vectors=vectors))
            if self._path.is_dir() and any(self._path.iterdir()):
                raise VectorStoreError(
                    f"{self._path} is not empty and holds no Qdrant Edge shard; "
                    "point --data-dir somewhere else"
                )
            self._path.mkdir(parents=True, exist_ok=True)
            wanted = self._config
            config = edge.EdgeConfig(
                vectors=edge.EdgeVectorParams(
                    size=self._dimension,
                    distance=edge.Distance.Cosine,
                    memory=edge.Memory.Cold if wanted.vectors_on_disk else None,
                ),
                quantization_config=(
                    edge.ScalarQuantizationConfig(
                        type=edge.ScalarType.Int8, quantile=INT8_QUANTILE, memory=edge.Memory.Pinned
                    )
                    if wanted.quantized
                    else None
                ),
                hnsw_config=edge.HnswIndexConfig(
                    m=wanted.hnsw_m,
                    ef_construct=wanted.hnsw_ef_construct,
                    full_scan_threshold=FULL_SCAN_THRESHOLD_KB,
                    # No extra graph per payload value: with it (the default, payload_m = m) one
                    # index build over ~700k points ran for more than 25 minutes here.
                    payload_m=0,
                ),
            )
            return edge.EdgeShard.create(str(self._path), config)
        except VectorStoreError:
            raise
        except Exception as exc:
            raise self._open_error(exc) from exc

    def _open_error(self, exc: Exception) -> VectorStoreError:
        if _is_lock_error(exc):
            return VectorStoreUnavailableError(
                f"the vector index at {self._path} is already open in another process; stop that "
                "process (e.g. `musicrec serve all`) or use another --data-dir"
            )
        if "incompatible" in str(exc).lower():
            stored = self._stored_size()
            holds = (
                f"holds {stored}-dimensional vectors" if stored is not None else f"is incompatible ({exc})"
            )
            return VectorStoreError(
                f"the vector index at {self._path} {holds}, but this store needs "
                f"{self._dimension}-dimensional cosine vectors; re-ingest into another --data-dir "
                "or delete that folder"
            )
        return VectorStoreError(f"cannot open the vector index at {self._path}: {exc}")

    def _stored_size(self) -> int | None:
        """The vector size recorded in the shard's config file, for messages only (best effort)."""
        try:
            config = json.loads((self._path / _CONFIG_FILE).read_text(encoding="utf-8"))
            size = config["vectors"][""]["size"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return size if isinstance(size, int) else None

    def _read_metadata(self) -> dict[str, str]:
        path = self._path / _METADATA_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise VectorStoreError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise VectorStoreError(f"{path} is not a JSON object of strings; was it edited by hand?")
        return {str(k): v for k, v in data.items()}

    def _ensure_payload_indexes(self) -> None:
        with self._use("read the payload indexes of") as shard:
            existing = set(shard.info().payload_schema)
        for name, kind in PAYLOAD_FIELDS.items():
            if name not in existing:
                with self._use(f"create the payload index {name!r} in") as shard:
                    shard.update(edge.UpdateOperation.create_field_index(name, _index_schema(kind)))

    # -- plumbing ------------------------------------------------------------------------------

    def _live(self) -> edge.EdgeShard:
        if self._building:
            raise VectorStoreUnavailableError(
                f"the vector index at {self._path} is being built (the last stage of an ingest); "
                "try again when it ends"
            )
        if self._shard is None:
            raise VectorStoreError(f"the vector index at {self._path} is closed")
        return self._shard

    @contextmanager
    def _use(self, action: str) -> Iterator[edge.EdgeShard]:
        """The open shard for one call, with the engine's errors named as `_engine` does. An index
        build waits for the calls in flight and refuses new ones while it runs."""
        with self._state:
            shard = self._live()
            self._users += 1
        try:
            with self._engine(action):
                yield shard
        finally:
            with self._state:
                self._users -= 1
                self._state.notify_all()

    @contextmanager
    def _engine(self, action: str) -> Iterator[None]:
        """Turn the engine's bare exceptions into VectorStoreError naming what failed."""
        try:
            yield
        except VectorStoreError:
            raise
        except Exception as exc:
            if _is_lock_error(exc):
                raise self._open_error(exc) from exc
            if "not initialized" in str(exc) and self._shard is None:
                raise VectorStoreError(f"the vector index at {self._path} is closed") from exc
            raise VectorStoreError(f"cannot {action} the vector index at {self._path}: {exc}") from exc

    # -- the port ------------------------------------------------------------------------------

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def path(self) -> Path:
        return self._path

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.NDArray[np.float32],
        payloads: Sequence[Mapping[str, PayloadValue]],
    ) -> None:
        self._live()
        for batch in prepare_upsert(ids, vectors, payloads, self._dimension, self._batch_size):
            points = [
                edge.Point(point_id, vector, payload)
                for point_id, vector, payload in zip(batch.ids, batch.vectors, batch.payloads, strict=True)
            ]
            with self._use("upsert into") as shard:
                shard.update(edge.UpdateOperation.upsert_points(points))

    def _fetch(self, point_ids: Sequence[str], *, vectors: bool, payloads: bool) -> Sequence[edge.Record]:
        ids: list[int | UUID | str] = list(point_ids)
        with self._use("read from") as shard:
            return shard.retrieve(ids, with_payload=payloads, with_vector=vectors)

    def search(
        self,
        vector: npt.NDArray[np.float32],
        limit: int,
        search_filter: SearchFilter,
        payload_keys: Sequence[str] | None = None,
        width: int = 1,
    ) -> list[Hit]:
        query = prepare_query(vector, self._dimension)
        if limit < 1:
            return []
        params = self._search_params if width == 1 else self._widened(check_width(width))

        def run(limit: int, search_filter: SearchFilter, payload_keys: Sequence[str] | None) -> list[Hit]:
            selector = True if payload_keys is None else edge.PayloadSelector.Include(list(payload_keys))
            request = edge.QueryRequest(
                limit=limit,
                query=edge.Query.Nearest(query),
                filter=edge_filter(search_filter),
                with_payload=selector,
                with_vector=False,
                params=params,
            )
            with self._use("search") as shard:
                scored = shard.query(request)
            return [Hit(id_to_str(p.id), float(p.score), dict(p.payload or {})) for p in scored]

        return search_excluding_after(run, limit, search_filter, payload_keys)

    def count(self) -> int:
        with self._use("count the points of") as shard:
            return shard.count(edge.CountRequest(exact=True))

    def iter_points(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[PointBatch]:
        check_batch_size(batch_size)
        offset: int | UUID | str | None = None
        while True:
            request = edge.ScrollRequest(offset=offset, limit=batch_size, with_payload=True, with_vector=True)
            with self._use("read from") as shard:
                records, offset = shard.scroll(request)
            if records:
                yield point_batch(records, self._dimension)
            if offset is None or not records:
                return

    def get_metadata(self, key: str) -> str | None:
        self._live()
        return self._metadata.get(check_metadata(key))

    def set_metadata(self, key: str, value: str) -> None:
        self._live()
        updated = {**self._metadata, check_metadata(key, value): value}
        path = self._path / _METADATA_FILE
        temporary = path.with_suffix(".tmp")
        try:
            with temporary.open("w", encoding="utf-8") as handle:
                json.dump(updated, handle, indent=2, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            temporary.replace(path)
        except OSError as exc:
            raise VectorStoreError(f"cannot write {path}: {exc}") from exc
        self._metadata = updated

    def flush(self) -> None:
        with self._use("flush") as shard:
            shard.flush()

    def optimize(self) -> bool:
        """Build the HNSW index over large segments (blocking); True when anything changed.

        Worth calling once after a large ingest; searches stay exact until then. The build runs in
        a child process (see the module's docstring): the shard is closed here meanwhile, and other
        calls raise VectorStoreUnavailableError until it is open again.
        """
        with self._state:
            self._live()
            self._building = True
            self._stopping = False
            self._state.wait_for(lambda: self._users == 0)
        try:
            self._close_shard()
            try:
                return _optimize_in_child(self._path, self._dimension, self._started_build)
            except VectorStoreError as exc:
                if self._stopping and not self._closed:
                    raise VectorStoreUnavailableError(
                        f"the index build of {self._path} was stopped (the service is shutting down); "
                        "every point is kept: run the ingest again to build the index"
                    ) from exc
                raise
            finally:
                with self._state:  # held while reopening, so that a close() waits for it
                    self._child = None
                    if not self._closed:  # close() during the build ended it: the store stays closed
                        self._shard = self._open()
        finally:
            with self._state:
                self._building = False

    def _started_build(self, child: BaseProcess) -> None:
        with self._state:
            self._child = child
        if self._closed or self._stopping:  # closed or stopped while the child was starting
            child.kill()

    def stop_build(self) -> None:
        """Kill a running build's process (an interrupted build loses no point); optimize() then
        reopens the shard and raises VectorStoreUnavailableError."""
        with self._state:
            if not self._building:
                return
            self._stopping = True
            child = self._child
        if child is not None:
            child.kill()

    def close(self) -> None:
        """Close the shard. An index build running meanwhile is stopped (killed: an interrupted
        build loses no point; the next ingest builds again), so that this process can exit now."""
        with self._state:
            self._closed = True
            child = self._child
        if child is not None:
            child.kill()
        self._close_shard()

    def _close_shard(self) -> None:
        shard, self._shard = self._shard, None
        if shard is None:
            return
        try:
            try:
                shard.flush()
            finally:
                shard.close()
        except Exception as exc:
            raise VectorStoreError(f"cannot close the vector index at {self._path}: {exc}") from exc

    def __enter__(self) -> EdgeVectorStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._shard is None else "open"
        return f"EdgeVectorStore(path={str(self._path)!r}, dimension={self._dimension}, {state})"
