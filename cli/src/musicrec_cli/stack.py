"""Starting musicrec services inside this process: one, several or all three.

With the embedded defaults all three must share one process, because the Qdrant Edge shard can be
open in one process only; the ingestor and the recommender then share one `VectorStore`. They
still talk to the catalog only through gRPC on loopback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from pydantic_settings import BaseSettings, SettingsConfigDict

from musicrec_catalog.app import open_repository
from musicrec_catalog.server import build_server as build_catalog
from musicrec_catalog.settings import CatalogSettings
from musicrec_common.catalog_client import CatalogClient
from musicrec_common.features import FEATURE_DIM
from musicrec_common.grpc_server import RunningServer
from musicrec_common.logging import log_event
from musicrec_ingestor.server import build_server as build_ingestor
from musicrec_ingestor.settings import IngestorSettings
from musicrec_recommender.server import build_server as build_recommender
from musicrec_recommender.settings import RecommenderSettings
from musicrec_vectorstore import DEFAULT_INDEX_CONFIG, IndexConfig, VectorStore, open_vector_store
from musicrec_vectorstore.index_config import Quantization

__all__ = ["SERVICES", "IndexSettings", "ServiceStack", "StackSettings", "loopback_address"]

log = logging.getLogger(__name__)
SERVICES = ("catalog", "ingestor", "recommender")


def loopback_address(host: str, port: int) -> str:
    """The address a local client dials for a server bound to host:port."""
    return (
        f"127.0.0.1:{port}" if host in ("0.0.0.0", "127.0.0.1", "localhost", "::", "") else f"{host}:{port}"
    )


class IndexSettings(BaseSettings):
    """How the vector index is built and searched (env prefix MUSICREC_INDEX_); see IndexConfig.
    The build settings apply when an index is created; MUSICREC_INDEX_HNSW_EF at every start."""

    model_config = SettingsConfigDict(env_prefix="MUSICREC_INDEX_", extra="ignore")

    hnsw_m: int = DEFAULT_INDEX_CONFIG.hnsw_m
    hnsw_ef_construct: int = DEFAULT_INDEX_CONFIG.hnsw_ef_construct
    hnsw_ef: int = DEFAULT_INDEX_CONFIG.hnsw_ef
    acorn: bool = DEFAULT_INDEX_CONFIG.acorn
    quantization: Quantization = DEFAULT_INDEX_CONFIG.quantization
    vectors_on_disk: bool = DEFAULT_INDEX_CONFIG.vectors_on_disk

    def config(self) -> IndexConfig:
        return IndexConfig(**self.model_dump())


@dataclass
class StackSettings:
    data_dir: Path
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    ingestor: IngestorSettings = field(default_factory=IngestorSettings)
    recommender: RecommenderSettings = field(default_factory=RecommenderSettings)
    index: IndexSettings = field(default_factory=IndexSettings)


class ServiceStack:
    """Async context manager: starts the asked services, stops them (and what they opened) on exit."""

    def __init__(self, settings: StackSettings, services: Collection[str]) -> None:
        unknown = set(services) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services: {', '.join(sorted(unknown))}")
        self.settings = settings
        self.services = [s for s in SERVICES if s in services]
        self.servers: dict[str, RunningServer] = {}
        self.addresses: dict[str, str] = {}
        self._exit = AsyncExitStack()
        self._stores: dict[tuple[str | None, str], VectorStore] = {}

    @property
    def vector_store(self) -> VectorStore:
        """The vector index the running recommender searches (in one process the ingestor shares it).
        For reading, e.g. by the evaluation; writes belong to the ingestor."""
        r = self.settings.recommender
        store = self._stores.get((r.qdrant_url, r.qdrant_collection))
        if store is None:
            raise LookupError("no recommender runs in this stack, so it has no vector store")
        return store

    def _vector_store(self, url: str | None, api_key: str | None, collection: str) -> VectorStore:
        key = (url, collection)
        if key not in self._stores:
            store = open_vector_store(
                qdrant_url=url,
                api_key=api_key,
                data_dir=self.settings.data_dir,
                collection=collection,
                dimension=FEATURE_DIM,
                config=self.settings.index.config(),
            )
            self._exit.callback(store.close)
            self._stores[key] = store
        return self._stores[key]

    async def _catalog_client(self, address: str, timeout: float = 10.0) -> CatalogClient:
        client = CatalogClient(address, timeout=timeout)
        self._exit.push_async_callback(client.close)
        return client

    def _register(self, name: str, server: RunningServer, host: str) -> None:
        self.servers[name] = server
        self.addresses[name] = loopback_address(host, server.port)
        log_event(log, "service started", service=name, address=self.addresses[name])

    async def __aenter__(self) -> Self:
        s = self.settings
        try:
            if "catalog" in self.services:
                repository = await asyncio.to_thread(
                    self._exit.enter_context, open_repository(s.catalog, s.data_dir)
                )
                server = await build_catalog(s.catalog, repository)
                self._exit.push_async_callback(server.stop, s.catalog.shutdown_grace)
                self._register("catalog", server, s.catalog.host)
            # Inside one process, the in-process catalog's real address wins over the configured one.
            local_catalog = self.addresses.get("catalog")
            if "ingestor" in self.services:
                i = s.ingestor
                catalog = await self._catalog_client(local_catalog or i.catalog_address)
                store = self._vector_store(i.qdrant_url, i.qdrant_api_key, i.qdrant_collection)
                server = await build_ingestor(i, catalog, store, data_dir=s.data_dir)
                self._exit.push_async_callback(server.stop, i.shutdown_grace)
                self._register("ingestor", server, i.host)
            if "recommender" in self.services:
                r = s.recommender
                catalog = await self._catalog_client(local_catalog or r.catalog_address, r.catalog_timeout)
                store = self._vector_store(r.qdrant_url, r.qdrant_api_key, r.qdrant_collection)
                server = await build_recommender(r, catalog, store)
                self._exit.push_async_callback(server.stop, r.shutdown_grace)
                self._register("recommender", server, r.host)
        except BaseException:
            await self._exit.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Servers stop first (registered last), then clients, then the stores and the database.
        await self._exit.aclose()
