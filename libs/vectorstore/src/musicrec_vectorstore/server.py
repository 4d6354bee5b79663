"""`QdrantServerVectorStore`: the VectorStore port over a Qdrant server, through qdrant-client.

qdrant-client's local mode (`QdrantClient(path=...)` or `location=":memory:"`) stands in for a
server in tests: it searches exactly and ignores payload indexes.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
from qdrant_client import QdrantClient, models
from qdrant_client.conversions.common_types import PointId
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

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
from musicrec_vectorstore._filters import client_filter, search_excluding_after
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

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "QdrantServerVectorStore"]

DEFAULT_TIMEOUT_SECONDS = 10

_METADATA_NAMESPACE = uuid.UUID("6f1c1f0e-7d53-4c55-9d7e-2b1f4a8e9c01")
_UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


def _index_schema(kind: str) -> models.PayloadSchemaType | models.PayloadSchemaParams:
    if kind == "keyword":
        return models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD)
    if kind == "integer":
        return models.IntegerIndexParams(type=models.IntegerIndexType.INTEGER, lookup=True, range=True)
    if kind == "bool":
        return models.PayloadSchemaType.BOOL
    raise VectorStoreError(f"unknown payload index kind {kind!r}")


def _describe(client: QdrantClient) -> str:
    """Where a ready client points, for messages (its URL, host or local path)."""
    options: dict[str, Any] = getattr(client, "init_options", None) or {}
    for key in ("url", "location", "host", "path"):
        value = options.get(key)
        if value:
            return "local Qdrant at " + str(value) if key == "path" else str(value)
    return "the Qdrant server"


def _is_local(client: QdrantClient) -> bool:
    """Whether `client` runs qdrant-client's local mode (in memory or on a path), not a server."""
    options: dict[str, Any] = getattr(client, "init_options", None) or {}
    return options.get("location") == ":memory:" or bool(options.get("path"))


class QdrantServerVectorStore(RecordReads):
    """The VectorStore port over collection `collection` of the Qdrant behind `client`.

    The collection (cosine distance, HNSW and quantization as `config` says) and the payload
    indexes of PAYLOAD_FIELDS are created when missing; a collection of another vector size is refused with
    VectorStoreError. `close()` closes the client only when `owns_client` is true (as it is for
    stores made by `from_url`).
    """

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        dimension: int,
        *,
        target: str | None = None,
        owns_client: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        config: IndexConfig = DEFAULT_INDEX_CONFIG,
    ) -> None:
        if not collection:
            raise VectorStoreError("the collection name must not be empty")
        if batch_size < 1:
            raise VectorStoreError(f"batch_size must be positive, not {batch_size}")
        self._client: QdrantClient | None = client
        self._collection = collection
        self._dimension = check_dimension(dimension)
        self._target = target or _describe(client)
        self._owns_client = owns_client
        self._batch_size = batch_size
        self._payload_schema: dict[str, models.PayloadIndexInfo] = {}
        self._config = config
        # qdrant-client's local mode searches exactly and warns about any search parameters.
        self._local = _is_local(client)
        self._search_params = self._widened(1)
        try:
            self._ensure_collection()
            self._ensure_payload_indexes()
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        collection: str,
        dimension: int,
        timeout: int = DEFAULT_TIMEOUT_SECONDS,
        config: IndexConfig = DEFAULT_INDEX_CONFIG,
    ) -> QdrantServerVectorStore:
        """Connect to the Qdrant server at `url` (REST); VectorStoreUnavailableError if it does not answer."""
        try:
            # The compatibility check runs in a background thread and only warns; the collection
            # check below is the connection test that matters.
            client = QdrantClient(url=url, api_key=api_key, timeout=timeout, check_compatibility=False)
        except (ValueError, TypeError) as exc:
            raise VectorStoreError(f"invalid Qdrant URL {url!r}: {exc}") from exc
        return cls(client, collection, dimension, target=url, owns_client=True, config=config)

    def _widened(self, width: int) -> models.SearchParams | None:
        # qdrant-client's local mode searches exactly and warns about any search parameters.
        if self._local:
            return None
        return models.SearchParams(
            hnsw_ef=self._config.hnsw_ef * width,
            quantization=models.QuantizationSearchParams(rescore=True, oversampling=RESCORE_OVERSAMPLING),
            acorn=models.AcornSearchParams(enable=self._config.acorn),
        )

    # -- setup ---------------------------------------------------------------------------------

    def _ensure_collection(self) -> None:
        client = self._live()
        with self._engine("check the collection on"):
            exists = client.collection_exists(self._collection)
        if not exists:
            try:
                with self._engine("create the collection on"):
                    client.create_collection(
                        self._collection,
                        vectors_config=models.VectorParams(
                            size=self._dimension,
                            distance=models.Distance.COSINE,
                            on_disk=self._config.vectors_on_disk,
                        ),
                        hnsw_config=models.HnswConfigDiff(
                            m=self._config.hnsw_m,
                            ef_construct=self._config.hnsw_ef_construct,
                            full_scan_threshold=FULL_SCAN_THRESHOLD_KB,
                        ),
                        quantization_config=(
                            models.ScalarQuantization(
                                scalar=models.ScalarQuantizationConfig(
                                    type=models.ScalarType.INT8, quantile=INT8_QUANTILE, always_ram=True
                                )
                            )
                            if self._config.quantized
                            else None
                        ),
                    )
            except VectorStoreUnavailableError:
                raise
            except VectorStoreError:
                # Another process may have created it in between: then carry on with that one.
                with self._engine("check the collection on"):
                    created_elsewhere = client.collection_exists(self._collection)
                if not created_elsewhere:
                    raise
        with self._engine("read the collection from"):
            info = client.get_collection(self._collection)
        params = info.config.params.vectors
        if not isinstance(params, models.VectorParams):
            raise VectorStoreError(
                f"collection {self._collection!r} on {self._target} uses named vectors; it was not made "
                "by musicrec (use another collection name)"
            )
        if params.size != self._dimension:
            raise VectorStoreError(
                f"collection {self._collection!r} on {self._target} holds {params.size}-dimensional "
                f"vectors, but this store needs {self._dimension}; re-ingest into another collection"
            )
        if params.distance != models.Distance.COSINE:
            raise VectorStoreError(
                f"collection {self._collection!r} on {self._target} uses {params.distance.value} distance, "
                "not Cosine; re-ingest into another collection"
            )
        self._payload_schema = dict(info.payload_schema)

    def _ensure_payload_indexes(self) -> None:
        client = self._live()
        for name, kind in PAYLOAD_FIELDS.items():
            if name in self._payload_schema:
                continue
            with self._engine(f"create the payload index {name!r} on"), warnings.catch_warnings():
                # Local mode (the test stand-in) warns that it ignores payload indexes.
                warnings.filterwarnings(
                    "ignore", message="Payload indexes have no effect", category=UserWarning
                )
                client.create_payload_index(
                    self._collection, name, field_schema=_index_schema(kind), wait=True
                )

    # -- plumbing ------------------------------------------------------------------------------

    def _live(self) -> QdrantClient:
        if self._client is None:
            raise VectorStoreError(f"the vector store for collection {self._collection!r} is closed")
        return self._client

    @contextmanager
    def _engine(self, action: str) -> Iterator[None]:
        """Turn qdrant-client's exceptions into VectorStoreError / VectorStoreUnavailableError."""
        try:
            yield
        except VectorStoreError:
            raise
        except ResponseHandlingException as exc:
            raise VectorStoreUnavailableError(
                f"the Qdrant server at {self._target} does not answer ({exc.source!r}); "
                "is it running and is the URL right?"
            ) from exc
        except UnexpectedResponse as exc:
            detail = exc.content.decode("utf-8", "replace").strip()[:500]
            if exc.status_code in _UNAVAILABLE_STATUSES:
                raise VectorStoreUnavailableError(
                    f"the Qdrant server at {self._target} is unavailable (HTTP {exc.status_code}): {detail}"
                ) from exc
            if exc.status_code in (401, 403):
                raise VectorStoreError(
                    f"the Qdrant server at {self._target} refused the request (HTTP {exc.status_code}); "
                    "check the API key"
                ) from exc
            raise VectorStoreError(
                f"cannot {action} {self._target} (collection {self._collection!r}): "
                f"HTTP {exc.status_code}: {detail}"
            ) from exc
        except (ConnectionError, TimeoutError) as exc:
            raise VectorStoreUnavailableError(
                f"the Qdrant server at {self._target} does not answer ({exc})"
            ) from exc
        except Exception as exc:
            raise VectorStoreError(
                f"cannot {action} {self._target} (collection {self._collection!r}): {exc}"
            ) from exc

    # -- the port ------------------------------------------------------------------------------

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def collection(self) -> str:
        return self._collection

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.NDArray[np.float32],
        payloads: Sequence[Mapping[str, PayloadValue]],
    ) -> None:
        client = self._live()
        for batch in prepare_upsert(ids, vectors, payloads, self._dimension, self._batch_size):
            point_ids: list[models.ExtendedPointId] = list(batch.ids)
            vector_rows: list[list[float]] = batch.vectors
            points = models.Batch(ids=point_ids, vectors=vector_rows, payloads=batch.payloads)
            with self._engine("upsert into"):
                client.upsert(self._collection, points=points, wait=True)

    def _fetch(self, point_ids: Sequence[str], *, vectors: bool, payloads: bool) -> Sequence[models.Record]:
        client = self._live()
        ids: list[models.ExtendedPointId] = list(point_ids)
        with self._engine("read from"):
            return client.retrieve(self._collection, ids, with_payload=payloads, with_vectors=vectors)

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
        client = self._live()
        params = self._search_params if width == 1 else self._widened(check_width(width))

        def run(limit: int, search_filter: SearchFilter, payload_keys: Sequence[str] | None) -> list[Hit]:
            with self._engine("search"):
                response = client.query_points(
                    self._collection,
                    query=query,
                    query_filter=client_filter(search_filter),
                    limit=limit,
                    with_payload=True if payload_keys is None else list(payload_keys),
                    with_vectors=False,
                    search_params=params,
                )
            return [
                Hit(id=id_to_str(point.id), score=float(point.score), payload=dict(point.payload or {}))
                for point in response.points
            ]

        return search_excluding_after(run, limit, search_filter, payload_keys)

    def count(self) -> int:
        client = self._live()
        with self._engine("count the points of"):
            return client.count(self._collection, exact=True).count

    def iter_points(self, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[PointBatch]:
        check_batch_size(batch_size)
        offset: PointId | None = None
        while True:
            client = self._live()
            with self._engine("read from"):
                records, next_offset = client.scroll(
                    self._collection, limit=batch_size, offset=offset, with_payload=True, with_vectors=True
                )
            if records:
                yield point_batch(records, self._dimension)
            if next_offset is None or not records:
                return
            offset = next_offset

    @property
    def _metadata_collection(self) -> str:
        return f"{self._collection}__musicrec_metadata"

    def get_metadata(self, key: str) -> str | None:
        """Metadata lives in a companion collection (one point per key, a 1-d vector, the value in
        its payload): Qdrant has no free-form collection metadata that every version supports."""
        client = self._live()
        point_id = str(uuid.uuid5(_METADATA_NAMESPACE, check_metadata(key)))
        with self._engine("read metadata from"):
            if not client.collection_exists(self._metadata_collection):
                return None
            records = client.retrieve(self._metadata_collection, [point_id], with_payload=True)
        if not records:
            return None
        value = (records[0].payload or {}).get("value")
        return value if isinstance(value, str) else None

    def set_metadata(self, key: str, value: str) -> None:
        client = self._live()
        point_id = str(uuid.uuid5(_METADATA_NAMESPACE, check_metadata(key, value)))
        with self._engine("write metadata to"):
            if not client.collection_exists(self._metadata_collection):
                client.create_collection(
                    self._metadata_collection,
                    vectors_config=models.VectorParams(size=1, distance=models.Distance.DOT),
                )
            point = models.PointStruct(id=point_id, vector=[1.0], payload={"key": key, "value": value})
            client.upsert(self._metadata_collection, points=[point], wait=True)

    def optimize(self) -> bool:
        """A Qdrant server builds its indexes in the background as points arrive: nothing to do."""
        self._live()
        return False

    def stop_build(self) -> None:
        """The server's own background indexing is not this store's to stop: nothing to do."""

    def flush(self) -> None:
        """Upserts wait for the server's write-ahead log, so they are durable once accepted."""
        self._live()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None or not self._owns_client:
            return
        try:
            client.close()
        except Exception as exc:
            raise VectorStoreError(f"cannot close the client of {self._target}: {exc}") from exc

    def __enter__(self) -> QdrantServerVectorStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._client is None else "open"
        return (
            f"QdrantServerVectorStore(target={self._target!r}, collection={self._collection!r}, "
            f"dimension={self._dimension}, {state})"
        )
