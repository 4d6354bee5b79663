"""Domain errors. Services raise these; one server interceptor maps them to gRPC status codes."""

from __future__ import annotations

__all__ = [
    "DomainError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "NotFoundError",
    "UnavailableError",
]


class DomainError(Exception):
    """Base of the errors whose message is safe to show to a client."""


class NotFoundError(DomainError):
    """The thing asked for does not exist (→ NOT_FOUND)."""


class InvalidArgumentError(DomainError):
    """A request field is invalid (→ INVALID_ARGUMENT). The message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class FailedPreconditionError(DomainError):
    """The request is valid but cannot be served in the current state (→ FAILED_PRECONDITION)."""


class UnavailableError(DomainError):
    """A dependency (database, vector index, another service) cannot be reached (→ UNAVAILABLE)."""
