"""Run the catalog's Alembic migrations from code (no alembic.ini needed at runtime)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from musicrec_catalog.database import create_engine_for

__all__ = ["MIGRATIONS_DIR", "alembic_config", "downgrade_to", "upgrade_to_head"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An Alembic `Config` pointing at the packaged migrations; logging is left to the caller."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["configure_logging"] = False
    return config


def _run(database_url: str, action: str, revision: str) -> None:
    engine = create_engine_for(database_url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            if action == "upgrade":
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
    finally:
        engine.dispose()


def upgrade_to_head(database_url: str) -> None:
    """Bring the database at `database_url` to the newest schema. A no-op when it is already there.

    Runs in one transaction under an advisory lock, so concurrent callers do not race.
    """
    _run(database_url, "upgrade", "head")


def downgrade_to(database_url: str, revision: str = "base") -> None:
    """Downgrade to `revision` ("base" removes every catalog table). For tests and operators."""
    _run(database_url, "downgrade", revision)
