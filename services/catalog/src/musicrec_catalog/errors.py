"""Domain errors of the catalog that the transport layer maps to status codes."""

from __future__ import annotations

from musicrec_common.errors import UnavailableError

__all__ = ["CatalogUnavailableError"]


class CatalogUnavailableError(UnavailableError):
    """The catalog database cannot be reached or cannot serve the request right now.

    Raised by the repository when the driver reports a connection-level problem (SQLAlchemy or
    psycopg `OperationalError` / `InterfaceError`, or an exhausted connection pool). The gRPC layer
    maps it to `UNAVAILABLE`, which tells clients the call may be retried.
    """
