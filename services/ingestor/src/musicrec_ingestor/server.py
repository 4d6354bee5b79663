"""Builds the ingestor's gRPC server from settings and its dependencies."""

from __future__ import annotations

from pathlib import Path

from musicrec.ingestor.v1 import ingestor_pb2, ingestor_pb2_grpc
from musicrec_common.catalog_client import CatalogClient
from musicrec_common.grpc_server import RunningServer, create_server
from musicrec_ingestor.runner import IngestOptions
from musicrec_ingestor.service import IngestorServicer
from musicrec_ingestor.settings import IngestorSettings
from musicrec_vectorstore import VectorStore

__all__ = ["SERVICE_NAME", "build_server"]

SERVICE_NAME = ingestor_pb2.DESCRIPTOR.services_by_name["IngestorService"].full_name


async def build_server(
    settings: IngestorSettings, catalog: CatalogClient, vectors: VectorStore, *, data_dir: Path
) -> RunningServer:
    """Start the ingestor; interrupted runs checkpoint under settings.checkpoint_dir or data_dir."""
    options = IngestOptions(
        batch_size=settings.batch_size,
        workers=settings.workers,
        checkpoint_dir=settings.checkpoint_dir or data_dir / "ingest-checkpoints",
    )
    servicer = IngestorServicer(catalog, vectors, options)
    running = await create_server(
        host=settings.host,
        port=settings.port,
        service_names=[SERVICE_NAME],
        register=lambda server: ingestor_pb2_grpc.add_IngestorServiceServicer_to_server(servicer, server),
    )
    # An ingest in its index build (minutes at 1M) would hold the shutdown for the whole grace and
    # be cancelled anyway: stop the build at once; the ingest's call then ends with UNAVAILABLE and
    # the points it stored are kept (the same ingest, run again, builds the index).
    running.on_stop.append(vectors.stop_build)
    return running
