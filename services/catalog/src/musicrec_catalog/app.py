"""The catalog's composition root: a repository on the configured or the embedded PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from musicrec_catalog.database import EmbeddedPostgres, create_engine_for
from musicrec_catalog.migrate import upgrade_to_head
from musicrec_catalog.settings import CatalogSettings
from musicrec_catalog.sql_repository import SqlTrackRepository
from musicrec_common.logging import log_event

__all__ = ["open_repository"]

log = logging.getLogger(__name__)


@contextmanager
def open_repository(settings: CatalogSettings, data_dir: Path) -> Iterator[SqlTrackRepository]:
    """Connect (starting an embedded server when no URL is set), migrate to head, yield the repository."""
    embedded: EmbeddedPostgres | None = None
    url = settings.database_url
    if url is None:
        embedded = EmbeddedPostgres(data_dir)
        url = embedded.start()
        log_event(log, "embedded postgresql started", data_dir=str(data_dir / "postgres"))
    try:
        upgrade_to_head(url)
        engine = create_engine_for(url)
        try:
            yield SqlTrackRepository(engine)
        finally:
            engine.dispose()
    finally:
        if embedded is not None:
            embedded.stop()
