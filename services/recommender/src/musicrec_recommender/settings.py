"""Recommender settings (env prefix MUSICREC_RECOMMENDER_)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from musicrec_common.settings import DEFAULT_PORTS, GrpcAddress

__all__ = ["RecommenderSettings"]


class RecommenderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MUSICREC_RECOMMENDER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORTS["recommender"]
    catalog_address: GrpcAddress = f"127.0.0.1:{DEFAULT_PORTS['catalog']}"
    # http://host:6333 of a Qdrant server; unset → the embedded Qdrant Edge engine under the data dir.
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    qdrant_collection: str = "tracks"
    # Deadline of each call to the catalog, seconds.
    catalog_timeout: float = 5.0
    shutdown_grace: float = 5.0
