"""Settings shared by the services. Each service defines its own `Settings` with its env prefix;
they are read in `main()` only and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import platformdirs
from pydantic import AfterValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from musicrec_common.logging import LogFormat

__all__ = [
    "DEFAULT_PORTS",
    "CommonSettings",
    "GrpcAddress",
    "default_data_dir",
    "validate_address",
]

DEFAULT_PORTS = {"catalog": 50051, "ingestor": 50052, "recommender": 50053}


def default_data_dir() -> Path:
    """Where embedded PostgreSQL and Qdrant keep data unless told otherwise (e.g. ~/.local/share/musicrec)."""
    return Path(platformdirs.user_data_dir("musicrec", appauthor=False))


def validate_address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


GrpcAddress = Annotated[str, AfterValidator(validate_address)]


class CommonSettings(BaseSettings):
    """Settings every process reads: MUSICREC_DATA_DIR, MUSICREC_LOG_LEVEL, MUSICREC_LOG_FORMAT."""

    model_config = SettingsConfigDict(env_prefix="MUSICREC_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    log_level: str = "INFO"
    log_format: LogFormat = "auto"
