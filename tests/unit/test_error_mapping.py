"""One place maps domain errors to gRPC status codes; internal details never reach the client."""

from __future__ import annotations

import grpc
import pytest

from musicrec_catalog.errors import CatalogUnavailableError
from musicrec_common.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from musicrec_common.grpc_server import status_for
from musicrec_vectorstore import VectorStoreUnavailableError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (NotFoundError("no track with MBID x"), grpc.StatusCode.NOT_FOUND, "no track with MBID x"),
        (
            InvalidArgumentError("limit", "must be 1..100"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "limit: must be 1..100",
        ),
        (FailedPreconditionError("no year"), grpc.StatusCode.FAILED_PRECONDITION, "no year"),
        (CatalogUnavailableError("database down"), grpc.StatusCode.UNAVAILABLE, "database down"),
        (VectorStoreUnavailableError("shard locked"), grpc.StatusCode.UNAVAILABLE, "shard locked"),
    ],
)
def test_domain_errors_map_to_their_codes(error: Exception, code: grpc.StatusCode, message: str) -> None:
    assert status_for(error) == (code, message)


def test_anything_else_is_internal_without_details() -> None:
    code, message = status_for(KeyError("secret internal state"))
    assert code is grpc.StatusCode.INTERNAL
    assert "secret" not in message
