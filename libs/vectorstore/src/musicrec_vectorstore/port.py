"""The `VectorStore` port: what the ingestor and the recommender need from a vector index.

Adapters: `EdgeVectorStore` (Qdrant Edge in-process, the default) and `QdrantServerVectorStore`
(a Qdrant server through qdrant-client; qdrant-client's local mode stands in for it in tests).
Filters are expressed in domain terms (`SearchFilter`) and translated by each adapter, so the
same contract tests run against both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from musicrec_common.errors import UnavailableError

__all__ = [
    "PAYLOAD_FIELDS",
    "Hit",
    "PayloadValue",
    "PointBatch",
    "Range",
    "SearchFilter",
    "VectorStore",
    "VectorStoreError",
    "VectorStoreUnavailableError",
]

PayloadValue = str | int | float | bool | None

# Payload fields that carry an index, with their kind: the filters every request may use. Other
# payload fields (see payload.py) are filtered without an index, after these narrowed the candidates.
PAYLOAD_FIELDS: Mapping[str, str] = {
    "rosamerica": "keyword",
    "dortmund": "keyword",
    "tzanetakis": "keyword",
    # "<label>@<decade>" per genre model: a genre + decade filter is one keyword match, so the
    # engine visits only the matching points instead of a genre's or a decade's (payload.py).
    "rosamerica_decade": "keyword",
    "dortmund_decade": "keyword",
    "tzanetakis_decade": "keyword",
    "year": "integer",
    "placeholder": "bool",
}


class VectorStoreError(Exception):
    """A vector-store operation failed for a reason the caller cannot fix by retrying."""


class VectorStoreUnavailableError(VectorStoreError, UnavailableError):
    """The vector store cannot be reached or opened (server down, shard locked by another process)."""


@dataclass(frozen=True, slots=True)
class Range:
    """An inclusive range of an integer payload field; None leaves that side open."""

    gte: int | None = None
    lte: int | None = None


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Exact conditions every hit must satisfy (all of them at once).

    - `equals`: the field holds exactly this value (e.g. {"rosamerica": "roc"});
    - `any_of`: the field holds one of these values (e.g. {"dortmund": ["rock", "pop"]});
    - `ranges`: the integer field lies in the range (e.g. {"year": Range(1990, 1999)});
    - `exclude_values`: the field holds none of these values (points without the field stay);
    - `exclude_ids`: point ids (MBIDs) never returned;
    - `exclude_placeholders`: drop points whose payload has placeholder = true.
    A point without a field never satisfies `equals`, `any_of` or `ranges` on it.
    """

    equals: Mapping[str, str | int] = field(default_factory=dict)
    any_of: Mapping[str, Sequence[str | int]] = field(default_factory=dict)
    ranges: Mapping[str, Range] = field(default_factory=dict)
    exclude_values: Mapping[str, Sequence[str | int]] = field(default_factory=dict)
    exclude_ids: Sequence[str] = ()
    exclude_placeholders: bool = True


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: the point id (MBID), its cosine similarity and its payload."""

    id: str
    score: float
    payload: Mapping[str, PayloadValue]


@dataclass(frozen=True, slots=True)
class PointBatch:
    """Stored points: `ids[i]` has the vector `vectors[i]` and the payload `payloads[i]`."""

    ids: list[str]
    vectors: npt.NDArray[np.float32]
    payloads: list[dict[str, PayloadValue]]


@runtime_checkable
class VectorStore(Protocol):
    """A cosine-similarity index over track feature vectors, keyed by MBID."""

    @property
    def dimension(self) -> int: ...

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.NDArray[np.float32],
        payloads: Sequence[Mapping[str, PayloadValue]],
    ) -> None:
        """Insert or replace points. `vectors` has shape (len(ids), dimension)."""
        ...

    def get_vectors(self, ids: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        """The stored vectors of the given ids; ids that are not stored are absent from the result."""
        ...

    def get_payloads(self, ids: Sequence[str]) -> dict[str, Mapping[str, PayloadValue]]:
        """The stored payloads of the given ids; ids that are not stored are absent from the result."""
        ...

    def search(
        self,
        vector: npt.NDArray[np.float32],
        limit: int,
        search_filter: SearchFilter,
        payload_keys: Sequence[str] | None = None,
        width: int = 1,
    ) -> list[Hit]:
        """The `limit` nearest points by cosine similarity that satisfy `search_filter`, best first.

        Each hit carries its whole payload, or only `payload_keys` when given (the request path asks
        for the few keys it reads: turning a payload into Python objects costs more than the search).
        `width` multiplies the index's search width (HNSW ef) for this query: a query averaged from
        several seeds lies between clusters, where a graph walk needs more candidates to find its
        true neighbours.
        """
        ...

    def count(self) -> int:
        """How many points are stored."""
        ...

    def iter_points(self, batch_size: int = 1024) -> Iterator[PointBatch]:
        """Every stored point, in batches of at most `batch_size`, each point exactly once (in an
        engine-defined order). For evaluation and export; not for the request path."""
        ...

    def get_metadata(self, key: str) -> str | None:
        """A text value stored with the index under `key` (e.g. its feature model), or None."""
        ...

    def set_metadata(self, key: str, value: str) -> None:
        """Store `value` with the index under `key`, durably, replacing what was there."""
        ...

    def flush(self) -> None:
        """Make every accepted upsert durable."""
        ...

    def optimize(self) -> bool:
        """Build the search index (HNSW, payload indexes) over what was written, now; True when
        anything changed. Worth calling once after a bulk load. A Qdrant server optimizes by itself."""
        ...

    def stop_build(self) -> None:
        """Stop an index build that `optimize()` is running (a service shutting down): that call
        then raises VectorStoreUnavailableError, every point stays stored and the store open, and
        the next `optimize()` builds again. Nothing happens when no build runs."""
        ...

    def close(self) -> None:
        """Release the store (for Edge: the shard and its WAL lock)."""
        ...
