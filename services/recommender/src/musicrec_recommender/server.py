"""Builds the recommender's gRPC server from settings and its dependencies."""

from __future__ import annotations

from musicrec.recommender.v1 import recommender_pb2, recommender_pb2_grpc
from musicrec_common.catalog_client import CatalogClient
from musicrec_common.grpc_server import RunningServer, create_server
from musicrec_recommender.service import RecommenderServicer
from musicrec_recommender.settings import RecommenderSettings
from musicrec_vectorstore import VectorStore

__all__ = ["SERVICE_NAME", "build_server"]

SERVICE_NAME = recommender_pb2.DESCRIPTOR.services_by_name["RecommenderService"].full_name


async def build_server(
    settings: RecommenderSettings, catalog: CatalogClient, vectors: VectorStore
) -> RunningServer:
    servicer = RecommenderServicer(catalog, vectors)
    return await create_server(
        host=settings.host,
        port=settings.port,
        service_names=[SERVICE_NAME],
        register=lambda server: recommender_pb2_grpc.add_RecommenderServiceServicer_to_server(
            servicer, server
        ),
    )
