"""The CatalogService gRPC servicer: protobuf in, domain calls on a TrackRepository, protobuf out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from musicrec.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from musicrec_catalog.repository import TrackRepository
from musicrec_common.convert import normalize_mbid, track_from_proto, track_to_proto
from musicrec_common.errors import InvalidArgumentError
from musicrec_common.text import split_artist_title

__all__ = ["MAX_GET_TRACKS", "MAX_SEARCH_LIMIT", "CatalogServicer"]

MAX_GET_TRACKS = 1_000
MAX_SEARCH_LIMIT = 100
_DEFAULT_SEARCH_LIMIT = 10

Context = grpc.aio.ServicerContext[Any, Any]


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    """Blocking repository calls run in worker threads so the event loop keeps serving."""

    def __init__(self, repository: TrackRepository) -> None:
        self._repository = repository

    async def UpsertTracks(
        self, request_iterator: AsyncIterator[catalog_pb2.UpsertTracksRequest], context: Context
    ) -> catalog_pb2.UpsertTracksResponse:
        received = inserted = updated = unchanged = 0
        async for request in request_iterator:
            tracks = [track_from_proto(t, f"tracks[{i}]") for i, t in enumerate(request.tracks)]
            if not tracks:
                continue
            result = await asyncio.to_thread(self._repository.upsert, tracks)
            received += len(tracks)
            inserted += result.inserted
            updated += result.updated
            unchanged += result.unchanged
        return catalog_pb2.UpsertTracksResponse(
            received=received, inserted=inserted, updated=updated, unchanged=unchanged
        )

    async def GetTracks(
        self, request: catalog_pb2.GetTracksRequest, context: Context
    ) -> catalog_pb2.GetTracksResponse:
        if len(request.mbids) > MAX_GET_TRACKS:
            raise InvalidArgumentError(
                "mbids", f"at most {MAX_GET_TRACKS} per call, got {len(request.mbids)}"
            )
        mbids = [normalize_mbid(m, f"mbids[{i}]") for i, m in enumerate(request.mbids)]
        tracks = await asyncio.to_thread(self._repository.get_many, mbids)
        return catalog_pb2.GetTracksResponse(tracks=[track_to_proto(t) for t in tracks])

    async def SearchTracks(
        self, request: catalog_pb2.SearchTracksRequest, context: Context
    ) -> catalog_pb2.SearchTracksResponse:
        limit = request.limit or _DEFAULT_SEARCH_LIMIT
        if limit > MAX_SEARCH_LIMIT:
            raise InvalidArgumentError("limit", f"must be 1..{MAX_SEARCH_LIMIT}, got {limit}")
        artist: str | None
        title: str | None
        if request.artist.strip() or request.title.strip():
            artist, title = request.artist.strip() or None, request.title.strip() or None
        elif request.query.strip():
            artist, title = split_artist_title(request.query)
        else:
            raise InvalidArgumentError("query", 'give a query ("Artist - Title") or an artist and/or a title')
        tracks = await asyncio.to_thread(self._repository.search, artist=artist, title=title, limit=limit)
        return catalog_pb2.SearchTracksResponse(tracks=[track_to_proto(t) for t in tracks])
