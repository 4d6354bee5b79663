"""Catalog settings (env prefix MUSICREC_CATALOG_)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from musicrec_common.settings import DEFAULT_PORTS

__all__ = ["CatalogSettings"]


class CatalogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MUSICREC_CATALOG_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORTS["catalog"]
    # postgresql://user:password@host:5432/db ; unset → an embedded PostgreSQL under the data dir.
    database_url: str | None = None
    # Seconds in-flight calls get to finish on SIGTERM.
    shutdown_grace: float = 5.0
