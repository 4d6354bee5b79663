"""musicrec_vectorstore: the VectorStore port and its Qdrant adapters.

`EdgeVectorStore` runs Qdrant Edge in-process (the default); `QdrantServerVectorStore` talks to a
Qdrant server through qdrant-client; `open_vector_store` picks one from the configuration.

qdrant-client takes seconds to import, so `QdrantServerVectorStore` is imported on first use:
processes that only use Edge never load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from musicrec_vectorstore.edge import EdgeVectorStore
from musicrec_vectorstore.factory import edge_path, open_vector_store
from musicrec_vectorstore.index_config import DEFAULT_INDEX_CONFIG, IndexConfig
from musicrec_vectorstore.port import (
    PAYLOAD_FIELDS,
    Hit,
    PayloadValue,
    PointBatch,
    Range,
    SearchFilter,
    VectorStore,
    VectorStoreError,
    VectorStoreUnavailableError,
)

if TYPE_CHECKING:
    from musicrec_vectorstore.server import QdrantServerVectorStore

__all__ = [
    "DEFAULT_INDEX_CONFIG",
    "PAYLOAD_FIELDS",
    "EdgeVectorStore",
    "Hit",
    "IndexConfig",
    "PayloadValue",
    "PointBatch",
    "QdrantServerVectorStore",
    "Range",
    "SearchFilter",
    "VectorStore",
    "VectorStoreError",
    "VectorStoreUnavailableError",
    "edge_path",
    "open_vector_store",
]


def __getattr__(name: str) -> Any:
    if name == "QdrantServerVectorStore":
        from musicrec_vectorstore.server import QdrantServerVectorStore

        return QdrantServerVectorStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
