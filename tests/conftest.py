"""Shared fixtures.

PostgreSQL (catalog) fixtures:

- `postgres_server_url` (session): a SQLAlchemy URL of a database on a PostgreSQL server the tests
  may create databases on. `MUSICREC_TEST_DATABASE_URL` when set (its user needs CREATEDB), else an
  embedded server in a temporary directory, stopped and removed at the end of the session.
- `postgres_database_factory` (session): `factory(server_url, migrate=True)` is a context manager
  yielding the URL of a fresh, uniquely named database on that server (migrated to head unless
  `migrate=False`), dropped on exit.
- `database_url` (function): a fresh migrated catalog database on `postgres_server_url`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from musicrec_catalog.database import EmbeddedPostgres, create_engine_for, normalise_database_url
from musicrec_catalog.migrate import upgrade_to_head

PostgresDatabaseFactory = Callable[..., AbstractContextManager[str]]


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A database URL on a server where tests may CREATE/DROP DATABASE."""
    external = os.environ.get("MUSICREC_TEST_DATABASE_URL")
    if external:
        yield normalise_database_url(external).render_as_string(hide_password=False)
        return
    # Not under pytest's basetemp: as root the server runs as user `embedded_postgres`, and every
    # pytest session that starts (ours or a colleague's) resets /tmp/pytest-of-<user> to mode 0700.
    data_dir = Path(tempfile.mkdtemp(prefix="musicrec-test-pg-"))
    server = EmbeddedPostgres(data_dir, durable=False)  # throwaway cluster: skip fsync
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


class _PostgresDatabases:
    """Creates throwaway databases. Migrated ones are cloned from a per-server template database that
    is migrated once per session (much cheaper than running Alembic for every test)."""

    def __init__(self) -> None:
        self._templates: dict[str, str] = {}  # server URL -> migrated template database name

    @staticmethod
    def _admin(server_url: str) -> sa.Engine:
        return create_engine_for(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)

    @staticmethod
    def _url(server_url: str, name: str) -> str:
        return normalise_database_url(server_url).set(database=name).render_as_string(hide_password=False)

    def _create(self, server_url: str, name: str, template: str | None = None) -> None:
        admin = self._admin(server_url)
        quote = admin.dialect.identifier_preparer.quote
        clause = "" if template is None else f" TEMPLATE {quote(template)}"
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f"CREATE DATABASE {quote(name)}{clause}"))
        finally:
            admin.dispose()

    def _drop(self, server_url: str, name: str) -> None:
        admin = self._admin(server_url)
        try:
            with admin.connect() as conn:
                quoted = admin.dialect.identifier_preparer.quote(name)
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        finally:
            admin.dispose()

    def _template(self, server_url: str) -> str:
        if server_url not in self._templates:
            name = f"musicrec_template_{uuid.uuid4().hex[:16]}"
            self._create(server_url, name)
            self._templates[server_url] = name
            upgrade_to_head(self._url(server_url, name))
        return self._templates[server_url]

    @contextmanager
    def fresh(self, server_url: str, *, migrate: bool = True) -> Iterator[str]:
        name = f"musicrec_test_{uuid.uuid4().hex[:16]}"
        self._create(server_url, name, self._template(server_url) if migrate else None)
        try:
            yield self._url(server_url, name)
        finally:
            self._drop(server_url, name)

    def close(self) -> None:
        for server_url, name in self._templates.items():
            # The embedded server may already be stopped (fixture teardown order); its templates
            # went with it.
            with contextlib.suppress(sa.exc.OperationalError):
                self._drop(server_url, name)
        self._templates.clear()


@pytest.fixture(scope="session")
def postgres_database_factory() -> Iterator[PostgresDatabaseFactory]:
    """`factory(server_url, migrate=True)`: context manager yielding a fresh database's URL."""
    databases = _PostgresDatabases()
    yield databases.fresh
    databases.close()


@pytest.fixture
def database_url(
    postgres_server_url: str, postgres_database_factory: PostgresDatabaseFactory
) -> Iterator[str]:
    """A fresh catalog database, migrated to head, dropped after the test."""
    with postgres_database_factory(postgres_server_url) as url:
        yield url
