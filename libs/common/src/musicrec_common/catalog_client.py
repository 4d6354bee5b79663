"""A typed async client of the CatalogService, shared by the ingestor and the recommender.

Every call carries a deadline; transient failures are retried by the channel's service config;
an unreachable catalog surfaces as `UnavailableError` naming the address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence

import grpc

from musicrec.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from musicrec_common.convert import track_from_proto, track_to_proto
from musicrec_common.grpc_client import create_channel, raise_for_dependency
from musicrec_common.model import Track

__all__ = ["CatalogClient", "UpsertCounts"]

UpsertCounts = catalog_pb2.UpsertTracksResponse
_UPSERT_METHOD = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].methods_by_name["UpsertTracks"]
_UPSERT_TRACKS = f"/{_UPSERT_METHOD.containing_service.full_name}/{_UPSERT_METHOD.name}"


class CatalogClient:
    def __init__(self, address: str, *, timeout: float = 10.0, upsert_timeout: float = 600.0) -> None:
        self.address = address
        self._timeout = timeout
        self._upsert_timeout = upsert_timeout
        self._channel = create_channel(address, ["musicrec.catalog.v1.CatalogService"])
        self._stub = catalog_pb2_grpc.CatalogServiceStub(self._channel)
        # UpsertTracks taking requests encoded elsewhere (the ingestor's workers encode them).
        self._upsert_encoded: grpc.aio.StreamUnaryMultiCallable[bytes, UpsertCounts] = (
            self._channel.stream_unary(
                _UPSERT_TRACKS,
                request_serializer=None,
                response_deserializer=catalog_pb2.UpsertTracksResponse.FromString,
            )
        )

    async def close(self) -> None:
        await self._channel.close()

    async def upsert(self, batches: Iterable[Sequence[Track]]) -> UpsertCounts:
        """Send tracks as one client stream of batches; returns the catalog's counts."""

        async def requests() -> AsyncIterator[catalog_pb2.UpsertTracksRequest]:
            for batch in batches:
                yield catalog_pb2.UpsertTracksRequest(tracks=[track_to_proto(t) for t in batch])

        try:
            response: catalog_pb2.UpsertTracksResponse = await self._stub.UpsertTracks(
                requests(), timeout=self._upsert_timeout
            )
        except grpc.aio.AioRpcError as error:
            raise_for_dependency(error, "catalog", self.address)
            raise
        return response

    async def upsert_encoded(self, requests: Iterable[bytes]) -> UpsertCounts:
        """`upsert` for batches already encoded as `UpsertTracksRequest` messages (the wire bytes)."""
        try:
            response: catalog_pb2.UpsertTracksResponse = await self._upsert_encoded(
                iter(requests), timeout=self._upsert_timeout
            )
        except grpc.aio.AioRpcError as error:
            raise_for_dependency(error, "catalog", self.address)
            raise
        return response

    async def get_tracks(self, mbids: Sequence[str]) -> list[Track]:
        try:
            response = await self._stub.GetTracks(
                catalog_pb2.GetTracksRequest(mbids=list(mbids)), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as error:
            raise_for_dependency(error, "catalog", self.address)
            raise
        return [track_from_proto(t) for t in response.tracks]

    async def search(
        self, *, query: str = "", artist: str = "", title: str = "", limit: int = 10
    ) -> list[Track]:
        try:
            response = await self._stub.SearchTracks(
                catalog_pb2.SearchTracksRequest(query=query, artist=artist, title=title, limit=limit),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise_for_dependency(error, "catalog", self.address)
            raise
        return [track_from_proto(t) for t in response.tracks]
