"""Client channels: created once and reused, with retries for transient codes only."""

from __future__ import annotations

import json
from collections.abc import Sequence

import grpc

from musicrec_common.errors import UnavailableError
from musicrec_common.grpc_server import MAX_MESSAGE_BYTES

__all__ = ["TRANSIENT_CODES", "create_channel", "raise_for_dependency"]

TRANSIENT_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")


def _service_config(services: Sequence[str]) -> str:
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": s} for s in services],
                    "retryPolicy": {
                        "maxAttempts": 4,
                        "initialBackoff": "0.1s",
                        "maxBackoff": "2s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": list(TRANSIENT_CODES),
                    },
                }
            ]
        }
    )


def create_channel(address: str, services: Sequence[str]) -> grpc.aio.Channel:
    """An insecure aio channel to `address` that retries `services`' calls on transient codes."""
    return grpc.aio.insecure_channel(
        address,
        options=[
            ("grpc.service_config", _service_config(services)),
            ("grpc.enable_retries", 1),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )


def raise_for_dependency(error: grpc.aio.AioRpcError, dependency: str, address: str) -> None:
    """Turn a failed call to another service into a domain error when the failure is the dependency's
    availability (so our own caller sees UNAVAILABLE with a clear message); other codes re-raise."""
    if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        raise UnavailableError(
            f"the {dependency} service at {address} is unavailable ({error.code().name}: {error.details()})"
        ) from error
    raise error
