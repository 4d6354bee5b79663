"""Builds the catalog's gRPC server from settings and a repository."""

from __future__ import annotations

from musicrec.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from musicrec_catalog.repository import TrackRepository
from musicrec_catalog.service import CatalogServicer
from musicrec_catalog.settings import CatalogSettings
from musicrec_common.grpc_server import RunningServer, create_server

__all__ = ["SERVICE_NAME", "build_server"]

SERVICE_NAME = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name


async def build_server(settings: CatalogSettings, repository: TrackRepository) -> RunningServer:
    """Start the catalog on settings.host:settings.port (0 → a free port); the bound port is in the result."""
    servicer = CatalogServicer(repository)
    return await create_server(
        host=settings.host,
        port=settings.port,
        service_names=[SERVICE_NAME],
        register=lambda server: catalog_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server),
    )
