"""`musicrec serve`: run services in this process until SIGTERM/SIGINT."""

from __future__ import annotations

import sys

from musicrec_catalog.settings import CatalogSettings
from musicrec_cli.stack import SERVICES, IndexSettings, ServiceStack, StackSettings
from musicrec_common.errors import UnavailableError
from musicrec_common.grpc_server import wait_for_signal
from musicrec_common.settings import CommonSettings
from musicrec_ingestor.settings import IngestorSettings
from musicrec_recommender.settings import RecommenderSettings
from musicrec_vectorstore import VectorStoreError

__all__ = ["ready_line", "serve", "stack_settings"]


def stack_settings(common: CommonSettings, service: str, host: str | None, port: int | None) -> StackSettings:
    """Settings from the environment, with the command line's --host/--port for `service`."""
    settings = StackSettings(
        data_dir=common.data_dir,
        catalog=CatalogSettings(),
        ingestor=IngestorSettings(),
        recommender=RecommenderSettings(),
        index=IndexSettings(),
    )
    targets = SERVICES if service == "all" else (service,)
    for name in targets:
        current = getattr(settings, name)
        update: dict[str, object] = {}
        if host is not None:
            update["host"] = host
        if port is not None:
            update["port"] = port
        setattr(settings, name, current.model_copy(update=update))
    return settings


def ready_line(addresses: dict[str, str]) -> str:
    return "musicrec ready: " + " ".join(f"{name}={address}" for name, address in addresses.items())


async def serve(
    service: str, common: CommonSettings, *, host: str | None = None, port: int | None = None
) -> int:
    settings = stack_settings(common, service, host, port)
    services = SERVICES if service == "all" else (service,)
    try:
        async with ServiceStack(settings, services) as stack:
            print(f"{ready_line(stack.addresses)} (data dir {common.data_dir}; Ctrl-C to stop)", flush=True)
            await wait_for_signal()
            print("musicrec: stopping…", file=sys.stderr, flush=True)
    except (VectorStoreError, UnavailableError, OSError) as error:
        print(f"musicrec serve {service}: {error}", file=sys.stderr)
        return 1
    return 0
