"""Input checks and id handling shared by the adapters (private).

Point ids are MBIDs: UUID strings. Both engines accept any UUID spelling, so ids are normalised
to the lower-case hyphenated form before they reach an engine, and hits carry that form back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from musicrec_vectorstore.port import PayloadValue, PointBatch, VectorStoreError

# Points per engine update: big enough to amortise the call, small enough that a 100k-point
# upsert never builds one giant operation.
DEFAULT_BATCH_SIZE = 1024


def normalise_id(raw: str) -> str:
    """The lower-case hyphenated form of a UUID string; VectorStoreError when it is not a UUID."""
    try:
        return str(uuid.UUID(raw))
    except (ValueError, TypeError, AttributeError) as exc:
        raise VectorStoreError(f"point id {raw!r} is not a UUID (point ids are MBIDs)") from exc


def try_normalise_id(raw: str) -> str | None:
    """Like `normalise_id`, but None for something that is not a UUID (and so cannot be stored)."""
    try:
        return str(uuid.UUID(raw))
    except (ValueError, TypeError, AttributeError):
        return None


def id_to_str(raw: object) -> str:
    """An engine's point id (UUID object or string) as the lower-case hyphenated string."""
    if isinstance(raw, uuid.UUID):
        return str(raw)
    text = str(raw)
    normalised = try_normalise_id(text)
    return text if normalised is None else normalised


def lookup_table(ids: Sequence[str]) -> dict[str, list[str]]:
    """Normalised id -> the caller's spellings of it, skipping ids that are not UUIDs."""
    table: dict[str, list[str]] = {}
    for raw in ids:
        normalised = try_normalise_id(raw)
        if normalised is not None:
            table.setdefault(normalised, []).append(raw)
    return table


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True, slots=True)
class UpsertBatch:
    """One validated slice of an upsert, ready for an engine."""

    ids: list[str]
    vectors: list[list[float]]
    payloads: list[dict[str, Any]]


def check_dimension(dimension: int) -> int:
    if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
        raise VectorStoreError(f"the vector dimension must be a positive integer, not {dimension!r}")
    return dimension


def prepare_upsert(
    ids: Sequence[str],
    vectors: npt.NDArray[np.float32],
    payloads: Sequence[Mapping[str, PayloadValue]],
    dimension: int,
    batch_size: int,
) -> Iterator[UpsertBatch]:
    """Validate a whole upsert up front, then yield it in engine-sized batches.

    Everything is checked before the first batch is yielded, so a bad input never leaves half an
    upsert behind.
    """
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise VectorStoreError(f"vectors must be a 2-d array (n, {dimension}), not of shape {matrix.shape}")
    if matrix.shape[1] != dimension:
        raise VectorStoreError(
            f"vectors have dimension {matrix.shape[1]}, but this vector store holds "
            f"{dimension}-dimensional vectors"
        )
    if matrix.shape[0] != len(ids) or len(payloads) != len(ids):
        raise VectorStoreError(
            f"upsert needs one vector and one payload per id: got {len(ids)} ids, "
            f"{matrix.shape[0]} vectors and {len(payloads)} payloads"
        )
    if not np.isfinite(matrix).all():
        raise VectorStoreError("vectors contain NaN or infinite values")
    normalised = [normalise_id(raw) for raw in ids]
    for start in range(0, len(normalised), batch_size):
        stop = start + batch_size
        yield UpsertBatch(
            ids=normalised[start:stop],
            vectors=matrix[start:stop].tolist(),
            payloads=[_plain_payload(payload) for payload in payloads[start:stop]],
        )


def _plain_payload(payload: Mapping[str, PayloadValue]) -> dict[str, Any]:
    """A payload with numpy scalars (np.int64, np.bool_, ...) turned into Python values."""
    return {key: value.item() if isinstance(value, np.generic) else value for key, value in payload.items()}


def prepare_query(vector: npt.NDArray[np.float32], dimension: int) -> list[float]:
    """A query vector as a list of floats, after checking its shape and values."""
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1 or array.shape[0] != dimension:
        raise VectorStoreError(
            f"the query vector has shape {array.shape}, but this vector store holds "
            f"{dimension}-dimensional vectors"
        )
    if not np.isfinite(array).all():
        raise VectorStoreError("the query vector contains NaN or infinite values")
    values: list[float] = array.tolist()
    return values


def as_vector(raw: object) -> npt.NDArray[np.float32] | None:
    """An engine's stored vector (a list of floats, or {"": [...]}) as a float32 array."""
    if isinstance(raw, dict):
        raw = raw.get("")
    if not isinstance(raw, list):
        return None
    return np.asarray(raw, dtype=np.float32)


class StoredRecord(Protocol):
    """What both engines return for a retrieved point."""

    @property
    def id(self) -> Any: ...

    @property
    def vector(self) -> Any: ...

    @property
    def payload(self) -> Any: ...


class RecordReads:
    """get_vectors / get_payloads for an adapter that can fetch one chunk of points by id.

    Callers may spell an id any way a UUID can be spelled; results are keyed by their spelling.
    """

    _batch_size: int

    def _fetch(self, point_ids: Sequence[str], *, vectors: bool, payloads: bool) -> Sequence[StoredRecord]:
        raise NotImplementedError

    def _retrieve(
        self, ids: Sequence[str], *, vectors: bool, payloads: bool
    ) -> Iterator[tuple[str, StoredRecord]]:
        table = lookup_table(ids)
        for chunk in chunks(list(table), self._batch_size):
            for record in self._fetch(chunk, vectors=vectors, payloads=payloads):
                for raw in table.get(id_to_str(record.id), ()):
                    yield raw, record

    def get_vectors(self, ids: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        found: dict[str, npt.NDArray[np.float32]] = {}
        for raw, record in self._retrieve(ids, vectors=True, payloads=False):
            vector = as_vector(record.vector)
            if vector is not None:
                found[raw] = vector
        return found

    def get_payloads(self, ids: Sequence[str]) -> dict[str, Mapping[str, PayloadValue]]:
        return {
            raw: dict(record.payload or {})
            for raw, record in self._retrieve(ids, vectors=False, payloads=True)
        }


def point_batch(records: Sequence[StoredRecord], dimension: int) -> PointBatch:
    """Scrolled records (with vectors and payloads) as a PointBatch."""
    ids: list[str] = []
    rows: list[npt.NDArray[np.float32]] = []
    payloads: list[dict[str, PayloadValue]] = []
    for record in records:
        vector = as_vector(record.vector)
        if vector is None:
            raise VectorStoreError(f"point {record.id} came back without its vector")
        ids.append(id_to_str(record.id))
        rows.append(vector)
        payloads.append(dict(record.payload or {}))
    matrix = np.stack(rows) if rows else np.zeros((0, dimension), dtype=np.float32)
    return PointBatch(ids, matrix.astype(np.float32, copy=False), payloads)


MAX_SEARCH_WIDTH = 16


def check_width(width: int) -> int:
    """A search-width multiplier: 1 .. MAX_SEARCH_WIDTH."""
    if not 1 <= width <= MAX_SEARCH_WIDTH:
        raise VectorStoreError(f"search width must be in 1..{MAX_SEARCH_WIDTH}, not {width}")
    return width


def check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise VectorStoreError(f"batch_size must be a positive integer, not {batch_size!r}")
    return batch_size


def check_metadata(key: object, value: object = "") -> str:
    if not isinstance(key, str) or not key:
        raise VectorStoreError(f"metadata keys must be non-empty strings, not {key!r}")
    if not isinstance(value, str):
        raise VectorStoreError(f"metadata values must be strings, not {type(value).__name__}")
    return key
