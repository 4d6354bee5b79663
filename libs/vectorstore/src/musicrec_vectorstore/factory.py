"""`open_vector_store`: the adapter the configuration asks for."""

from __future__ import annotations

from pathlib import Path

from musicrec_vectorstore.edge import EdgeVectorStore
from musicrec_vectorstore.index_config import DEFAULT_INDEX_CONFIG, IndexConfig
from musicrec_vectorstore.port import VectorStore, VectorStoreError

__all__ = ["edge_path", "open_vector_store"]


def edge_path(data_dir: Path, collection: str) -> Path:
    """Where the Edge shard of `collection` lives under `data_dir`."""
    return Path(data_dir) / "qdrant" / collection


def open_vector_store(
    *,
    qdrant_url: str | None,
    api_key: str | None,
    data_dir: Path,
    collection: str,
    dimension: int,
    config: IndexConfig = DEFAULT_INDEX_CONFIG,
) -> VectorStore:
    """A Qdrant server store when `qdrant_url` is set, else the Edge shard at data_dir/qdrant/collection;
    either built and searched as `config` says."""
    if not collection or collection in {".", ".."} or "/" in collection or "\\" in collection:
        raise VectorStoreError(f"invalid collection name {collection!r}")
    if qdrant_url:
        from musicrec_vectorstore.server import QdrantServerVectorStore  # imports qdrant-client: slow

        return QdrantServerVectorStore.from_url(
            qdrant_url, api_key=api_key, collection=collection, dimension=dimension, config=config
        )
    return EdgeVectorStore(edge_path(data_dir, collection), dimension, config=config)
