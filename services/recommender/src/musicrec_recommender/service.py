"""The RecommenderService gRPC servicer: resolve the seed, filtered vector search, catalog enrichment."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc

from musicrec.recommender.v1 import recommender_pb2, recommender_pb2_grpc
from musicrec_common.catalog_client import CatalogClient
from musicrec_common.convert import normalize_mbid
from musicrec_common.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from musicrec_common.features import FEATURE_MODEL_VERSION
from musicrec_common.logging import log_event
from musicrec_common.model import GenreClassifier, Track
from musicrec_recommender.ranking import resolve_filter, similarity_stats, validate_limit
from musicrec_vectorstore import SearchFilter, VectorStore

__all__ = ["RecommenderServicer"]

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]

_CLASSIFIERS = {
    recommender_pb2.GENRE_CLASSIFIER_UNSPECIFIED: GenreClassifier.ROSAMERICA,
    recommender_pb2.GENRE_CLASSIFIER_ROSAMERICA: GenreClassifier.ROSAMERICA,
    recommender_pb2.GENRE_CLASSIFIER_DORTMUND: GenreClassifier.DORTMUND,
    recommender_pb2.GENRE_CLASSIFIER_TZANETAKIS: GenreClassifier.TZANETAKIS,
}
_CLASSIFIER_ENUM = {
    GenreClassifier.ROSAMERICA: recommender_pb2.GENRE_CLASSIFIER_ROSAMERICA,
    GenreClassifier.DORTMUND: recommender_pb2.GENRE_CLASSIFIER_DORTMUND,
    GenreClassifier.TZANETAKIS: recommender_pb2.GENRE_CLASSIFIER_TZANETAKIS,
}


def _to_proto(track: Track, similarity: float = 0.0, rank: int = 0) -> recommender_pb2.RecommendedTrack:
    message = recommender_pb2.RecommendedTrack(
        mbid=track.mbid,
        artist=track.artist or "",
        title=track.title or "",
        album=track.album or "",
        rosamerica=track.rosamerica.label if track.rosamerica else "",
        dortmund=track.dortmund.label if track.dortmund else "",
        tzanetakis=track.tzanetakis.label if track.tzanetakis else "",
        similarity=similarity,
        rank=rank,
    )
    if track.year is not None:
        message.year = track.year
    return message


class RecommenderServicer(recommender_pb2_grpc.RecommenderServiceServicer):
    def __init__(self, catalog: CatalogClient, vectors: VectorStore) -> None:
        self._catalog = catalog
        self._vectors = vectors

    async def _resolve_seed(self, request: recommender_pb2.RecommendRequest) -> Track:
        which = request.WhichOneof("seed")
        if which == "seed_mbid":
            mbid = normalize_mbid(request.seed_mbid, "seed_mbid")
            found = await self._catalog.get_tracks([mbid])
            if not found:
                raise NotFoundError(f"no track with MBID {mbid} in the catalog")
            return found[0]
        if which == "seed_query" and request.seed_query.strip():
            matches = await self._catalog.search(query=request.seed_query, limit=1)
            if not matches:
                raise NotFoundError(f"no track in the catalog matches {request.seed_query!r}")
            return matches[0]
        raise InvalidArgumentError("seed", "give seed_mbid or seed_query")

    async def Recommend(
        self, request: recommender_pb2.RecommendRequest, context: Context
    ) -> recommender_pb2.RecommendResponse:
        limit = validate_limit(request.limit)
        if request.genre_classifier not in _CLASSIFIERS:
            raise InvalidArgumentError("genre_classifier", f"unknown value {request.genre_classifier}")
        classifier = _CLASSIFIERS[request.genre_classifier]
        seed = await self._resolve_seed(request)
        equals = resolve_filter(
            seed,
            classifier,
            genre=request.genre or None,
            same_genre=request.same_genre,
            decade=request.decade if request.HasField("decade") else None,
            same_decade=request.same_decade,
        )
        stored = await asyncio.to_thread(self._vectors.get_vectors, [seed.mbid])
        if seed.mbid not in stored:
            raise FailedPreconditionError(
                f"track {seed.mbid} is in the catalog but not in the vector index; run the ingest again"
            )
        search_filter = SearchFilter(
            equals=equals, exclude_ids=[seed.mbid], exclude_placeholders=not request.include_placeholders
        )
        hits = await asyncio.to_thread(self._vectors.search, stored[seed.mbid], limit, search_filter)
        by_mbid = {t.mbid: t for t in await self._catalog.get_tracks([h.id for h in hits])} if hits else {}
        results: list[recommender_pb2.RecommendedTrack] = []
        for hit in hits:
            track = by_mbid.get(hit.id)
            if track is None:
                log_event(log, "vector without catalog row", logging.WARNING, mbid=hit.id)
                continue
            results.append(_to_proto(track, hit.score, len(results) + 1))
        stats = similarity_stats([r.similarity for r in results])
        applied = recommender_pb2.AppliedFilter(
            genre_classifier=_CLASSIFIER_ENUM[classifier],
            genre=str(equals.get(classifier.value, "")),
            include_placeholders=request.include_placeholders,
        )
        if "decade" in equals:
            applied.decade = int(equals["decade"])
        return recommender_pb2.RecommendResponse(
            seed=_to_proto(seed),
            tracks=results,
            stats=recommender_pb2.SimilarityStats(
                count=stats.count, mean=stats.mean, std=stats.std, p95=stats.p95, max=stats.max
            ),
            filter=applied,
            feature_model=FEATURE_MODEL_VERSION,
        )
