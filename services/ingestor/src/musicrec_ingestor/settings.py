"""Ingestor settings (env prefix MUSICREC_INGESTOR_)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
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
    # Documents per parse batch (and so per catalog batch and vector upsert, and per checkpoint).
    batch_size: int = Field(default=2_000, ge=1, le=100_000)
    # Worker processes that parse documents; 0 parses inside the server process.
    workers: int = Field(default_factory=lambda: min(os.cpu_count() or 1, 8), ge=0, le=64)
    # Where interrupted runs keep their checkpoints; unset → <data dir>/ingest-checkpoints.
    checkpoint_dir: Path | None = None
    shutdown_grace: float = 30.0
