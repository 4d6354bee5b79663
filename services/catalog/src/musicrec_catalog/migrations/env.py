"""Alembic environment of the catalog.

Run programmatically by `musicrec_catalog.migrate` (which hands over an open connection in
`config.attributes["connection"]`), or by developers with `alembic -c services/catalog/alembic.ini`,
where the URL comes from `MUSICREC_DATABASE_URL` or the ini's `sqlalchemy.url`.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

from musicrec_catalog.database import create_engine_for
from musicrec_catalog.schema import metadata

#: Serialises concurrent migration runs (several service replicas starting at once).
MIGRATION_LOCK_KEY = 0x6D7573_6963_7265  # "musicre" as a number; any fixed bigint works

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=False)
    with context.begin_transaction():
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if isinstance(given, sa.Connection):
        _run(given)
        return
    url = os.environ.get("MUSICREC_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: set MUSICREC_DATABASE_URL or sqlalchemy.url in alembic.ini")
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


def run_migrations_offline() -> None:
    url = os.environ.get("MUSICREC_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=metadata, literal_binds=True, dialect_name="postgresql")
    with context.begin_transaction():
        context.run_migrations()


if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
