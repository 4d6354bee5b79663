"""What every musicrec gRPC server shares: the error interceptor, health, reflection, serving until
SIGTERM/SIGINT with a graceful drain."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from musicrec_common.errors import (
    DomainError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from musicrec_common.logging import log_event

__all__ = [
    "MAX_MESSAGE_BYTES",
    "ErrorMappingInterceptor",
    "RunningServer",
    "create_server",
    "status_for",
    "wait_for_signal",
]

log = logging.getLogger(__name__)

# Large enough for a 1,000-track batch with room to spare; anything larger is refused by gRPC itself.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

_CODES: tuple[tuple[type[DomainError], grpc.StatusCode], ...] = (
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE),
)


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and client-facing message for an exception raised by a handler."""
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code, str(error)
    return grpc.StatusCode.INTERNAL, "internal error; see the server log"


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: Exception, method: str) -> NoReturn:
    code, message = status_for(error)
    if code is grpc.StatusCode.INTERNAL:
        log.exception("unhandled error in %s", method)
    else:
        log_event(log, "request failed", logging.INFO, method=method, code=code.name, detail=message)
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # abort always raises; keeps the type checker honest


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Maps domain errors to status codes; anything else becomes INTERNAL with a generic message
    and the traceback in the log, never in the reply."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _wrap_stream(handler.stream_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _wrap_unary(behaviour: Callable[..., Any], method: str) -> Callable[..., Awaitable[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as error:
            await _abort(context, error, method)

    return wrapper


def _wrap_stream(behaviour: Callable[..., Any], method: str) -> Callable[..., AsyncIterator[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        try:
            async for response in behaviour(request, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as error:
            await _abort(context, error, method)

    return wrapper


@dataclass
class RunningServer:
    """A started server, the port it bound and its health servicer (flipped on shutdown)."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: Sequence[str]
    # Run when stopping, before the in-flight calls are waited for: work that would hold a call
    # past any sensible grace (an index build) is told to stop here.
    on_stop: list[Callable[[], None]] = field(default_factory=list)

    async def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING, run the on_stop hooks, stop taking new calls, let in-flight ones
        finish for `grace` seconds."""
        await self.health.enter_graceful_shutdown()
        for hook in self.on_stop:
            hook()
        await self.server.stop(grace)


async def create_server(
    *,
    host: str,
    port: int,
    service_names: Iterable[str],
    register: Callable[[grpc.aio.Server], None],
) -> RunningServer:
    """Build and start a grpc.aio server with the error interceptor, health and reflection.

    `register` adds the business servicers; `service_names` are their full names (for health and
    reflection). Port 0 binds a free port; the bound port is returned.
    """
    server = grpc.aio.server(
        interceptors=[ErrorMappingInterceptor()],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    names = list(service_names)
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as error:  # grpc reports a failed bind as a bare RuntimeError
        raise OSError(
            f"cannot listen on {host}:{port}: the port is in use (another `musicrec serve`?) "
            "or the address is not available here"
        ) from error
    await server.start()
    for name in [*names, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server=server, port=bound, health=health_servicer, service_names=names)


async def wait_for_signal() -> None:
    """Return when SIGTERM or SIGINT arrives (the caller then drains and stops its servers).

    The handlers stay installed afterwards: a second signal during the drain (process managers and
    `uv run` forward signals, so two can arrive) must not kill the process before it has stopped
    what it started, such as the embedded PostgreSQL."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            log_event(log, "shutdown already in progress")
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await stop.wait()
    log_event(log, "shutdown signal received")
