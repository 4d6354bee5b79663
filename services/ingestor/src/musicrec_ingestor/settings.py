"""Ingestor settings (env prefix MUSICREC_INGESTOR_)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from musicrec_common.settings import DEFAULT_PORTS, GrpcAddress

__all__ = ["IngestorSettings"]


class IngestorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MUSICREC_INGESTOR_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORTS["ingestor"]
    catalog_address: GrpcAddress = f"127.0.0.1:{DEFAULT_PORTS['catalog']}"
    # http://host:6333 of a Qdrant server; unset → the embedded Qdrant Edge engine under the data dir.
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    qdrant_collection: str = "tracks"
    # Tracks per catalog batch and per vector upsert.
    batch_size: int = 1_000
    shutdown_grace: float = 30.0
