"""The RecommenderService gRPC servicer: resolve the seeds, filtered vector search, selection,
catalog enrichment, explanations."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from musicrec.recommender.v1 import recommender_pb2, recommender_pb2_grpc
from musicrec_common.catalog_client import CatalogClient
from musicrec_common.convert import normalize_mbid
from musicrec_common.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from musicrec_common.feature_model import group_agreement
from musicrec_common.logging import log_event
from musicrec_common.model import GenreClassifier, Track
from musicrec_recommender.ranking import (
    DEFAULT_MAX_PER_ARTIST,
    DEFAULT_TARGET_WEIGHT,
    Candidate,
    FilterSpec,
    SeedFacts,
    TraitBound,
    query_vector,
    resolve_filter,
    search_width,
    select,
    similarity_stats,
    trait_penalty,
    trait_value,
    validate_limit,
    validate_traits,
)
from musicrec_vectorstore import Hit, PayloadValue, VectorStore
from musicrec_vectorstore.feature_models import FeatureModelRef

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
# Trait enum value -> payload key (TRAIT_UNSPECIFIED has none).
_TRAITS = {
    value: name.removeprefix("TRAIT_").lower()
    for name, value in recommender_pb2.Trait.items()
    if value != recommender_pb2.TRAIT_UNSPECIFIED
}
_TRAIT_ENUM = {key: value for value, key in _TRAITS.items()}
MAX_SEEDS = 20
# Candidates asked of the index per result when results are filtered after the search; the ask
# doubles while too few survive and the index still has more.
_OVERSAMPLE = 5
_MAX_CANDIDATES = 2_000


def _to_proto(
    track: Track, similarity: float = 0.0, rank: int = 0, score: float | None = None
) -> recommender_pb2.RecommendedTrack:
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
        score=similarity if score is None else score,
    )
    if track.year is not None:
        message.year = track.year
    return message


def _optional(message: Any, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


def _trait_bounds(request: recommender_pb2.RecommendRequest) -> tuple[TraitBound, ...]:
    bounds = []
    for i, item in enumerate(request.traits):
        if item.trait not in _TRAITS:
            raise InvalidArgumentError(f"traits[{i}].trait", "give a trait (TRAIT_UNSPECIFIED is not one)")
        bounds.append(
            TraitBound(
                _TRAITS[item.trait], _optional(item, "min"), _optional(item, "max"), _optional(item, "target")
            )
        )
    return validate_traits(bounds)


def _facts(track: Track, seed: SeedFacts, bounds: Sequence[TraitBound], hit: Candidate) -> list[str]:
    """Plain-language reasons besides the feature groups: what the track shares with the first seed,
    and its traits where the request bounds or targets them."""
    facts = []
    for classifier in GenreClassifier:
        mine, theirs = track.genre(classifier), seed.genre(classifier)
        if mine is not None and mine.label == theirs:
            facts.append(f"same {classifier.value} genre as the seed: {mine.label}")
    if track.decade is not None and track.decade == seed.decade:
        facts.append(f"same decade as the seed: {track.decade}s")
    for bound in bounds:
        value = trait_value(hit.payload, bound.trait)
        if value is None:
            continue
        if bound.target is not None:
            facts.append(f"{bound.trait} {value:.2f} (target {bound.target:.2f})")
        else:
            facts.append(f"{bound.trait} {value:.2f} (within the bounds asked)")
    return facts


@dataclass(frozen=True, slots=True)
class _Seed:
    facts: SeedFacts
    vector: npt.NDArray[np.float32]
    track: Track | None = None  # the catalog's row when the seed was found by a text query


async def _nothing() -> list[Track]:
    return []


async def _nothing_stored() -> dict[str, npt.NDArray[np.float32]]:
    return {}


class RecommenderServicer(recommender_pb2_grpc.RecommenderServiceServicer):
    def __init__(self, catalog: CatalogClient, vectors: VectorStore) -> None:
        self._catalog = catalog
        self._vectors = vectors
        self._models = FeatureModelRef(vectors)

    async def _seeds(self, specs: Sequence[tuple[str, str, str]]) -> list[_Seed]:
        """The seeds of (field, kind, value) specs, in order; kind is "mbid" or "query".

        A seed given by MBID is read from the vector index alone (its vector, and from its payload
        what the filters need); the catalog is asked only about seeds given by a query, and about
        seeds the index lacks, to tell an unknown track from one that was never indexed.
        """
        mbids: list[str] = []
        tracks: dict[str, Track] = {}
        for field_name, kind, value in specs:
            if kind == "mbid":
                mbids.append(normalize_mbid(value, field_name))
                continue
            if not value.strip():
                raise InvalidArgumentError(field_name, "the seed query is empty")
            matches = await self._catalog.search(query=value, limit=1)
            if not matches:
                raise NotFoundError(f"no track in the catalog matches {value!r} ({field_name})")
            mbids.append(matches[0].mbid)
            tracks[matches[0].mbid] = matches[0]
        vectors, payloads = await asyncio.to_thread(self._stored, mbids)
        missing = [(spec[0], mbid) for spec, mbid in zip(specs, mbids, strict=True) if mbid not in vectors]
        if missing:
            in_catalog = {t.mbid for t in await self._catalog.get_tracks([m for _, m in missing])}
            for field_name, mbid in missing:
                if mbid not in in_catalog:
                    raise NotFoundError(f"no track with MBID {mbid} in the catalog ({field_name})")
            raise FailedPreconditionError(
                f"track {missing[0][1]} is in the catalog but not in the vector index; run the ingest again"
            )
        return [
            _Seed(SeedFacts.from_payload(mbid, payloads.get(mbid, {})), vectors[mbid], tracks.get(mbid))
            for mbid in mbids
        ]

    def _stored(
        self, mbids: Sequence[str]
    ) -> tuple[dict[str, npt.NDArray[np.float32]], dict[str, Mapping[str, PayloadValue]]]:
        return self._vectors.get_vectors(mbids), self._vectors.get_payloads(mbids)

    @staticmethod
    def _seed_specs(
        request: recommender_pb2.RecommendRequest,
    ) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
        positive: list[tuple[str, str, str]] = []
        which = request.WhichOneof("seed")
        if which == "seed_mbid":
            positive.append(("seed_mbid", "mbid", request.seed_mbid))
        elif which == "seed_query":
            positive.append(("seed_query", "query", request.seed_query))
        negative: list[tuple[str, str, str]] = []
        for name, seeds, out in (
            ("seeds", request.seeds, positive),
            ("negative_seeds", request.negative_seeds, negative),
        ):
            for i, seed in enumerate(seeds):
                kind = seed.WhichOneof("track")
                if kind is None:
                    raise InvalidArgumentError(f"{name}[{i}]", "give mbid or query")
                out.append((f"{name}[{i}].{kind}", kind, getattr(seed, kind)))
        if not positive:
            raise InvalidArgumentError("seed", "give seed_mbid, seed_query or seeds")
        if len(positive) + len(negative) > MAX_SEEDS:
            raise InvalidArgumentError("seeds", f"at most {MAX_SEEDS} seeds, positive and negative together")
        return positive, negative

    async def Recommend(
        self, request: recommender_pb2.RecommendRequest, context: Context
    ) -> recommender_pb2.RecommendResponse:
        limit = validate_limit(request.limit)
        feature_model = self._models.fresh()
        if feature_model is None:
            feature_model = await asyncio.to_thread(self._models.current)
        if request.feature_model and request.feature_model != feature_model:
            raise FailedPreconditionError(
                f"the index was built with feature model {feature_model or '(none yet)'}, not "
                f"{request.feature_model}; results from different feature models are not comparable"
            )
        if request.genre_classifier not in _CLASSIFIERS:
            raise InvalidArgumentError("genre_classifier", f"unknown value {request.genre_classifier}")
        classifier = _CLASSIFIERS[request.genre_classifier]
        bounds = _trait_bounds(request)
        diversity = request.diversity
        if not (math.isfinite(diversity) and 0.0 <= diversity <= 1.0):
            raise InvalidArgumentError("diversity", f"must be in [0, 1], got {diversity}")
        min_similarity = _optional(request, "min_similarity")
        if min_similarity is not None and not (
            math.isfinite(min_similarity) and -1.0 <= min_similarity <= 1.0
        ):
            raise InvalidArgumentError("min_similarity", f"must be in [-1, 1], got {min_similarity}")
        weight = _optional(request, "target_weight")
        weight = DEFAULT_TARGET_WEIGHT if weight is None else weight
        if not (math.isfinite(weight) and weight >= 0.0):
            raise InvalidArgumentError("target_weight", f"must be a non-negative number, got {weight}")
        cap = DEFAULT_MAX_PER_ARTIST if not request.HasField("max_per_artist") else request.max_per_artist

        positive_specs, negative_specs = self._seed_specs(request)
        resolved = await self._seeds([*positive_specs, *negative_specs])
        seeds, negatives = resolved[: len(positive_specs)], resolved[len(positive_specs) :]
        first = seeds[0].facts
        spec = resolve_filter(
            first,
            classifier,
            genre=request.genre or None,
            genres=list(request.genres),
            same_genre=request.same_genre,
            min_genre_probability=_optional(request, "min_genre_probability"),
            decade=_optional(request, "decade"),
            same_decade=request.same_decade,
            min_year=_optional(request, "min_year"),
            max_year=_optional(request, "max_year"),
        )
        all_seeds = [*seeds, *negatives]
        artists = (
            [s.facts.artist_hash for s in seeds if s.facts.artist_hash is not None]
            if request.exclude_seed_artists
            else []
        )
        spec = dataclasses.replace(
            spec,
            include_placeholders=request.include_placeholders,
            exclude_ids=tuple(dict.fromkeys(s.facts.mbid for s in all_seeds)),
            exclude_artist_hashes=tuple(dict.fromkeys(artists)),
            traits=bounds,
        )
        query = query_vector([s.vector for s in seeds], [s.vector for s in negatives])
        candidates, considered = await asyncio.to_thread(
            self._candidates,
            query,
            limit,
            spec,
            bounds,
            weight,
            cap,
            request.include_duplicates,
            diversity,
            min_similarity,
            len(all_seeds),
        )

        # One catalog call for the seeds' and the results' metadata, while the results' vectors
        # (for the explanations) are read from the index.
        wanted = [s.facts.mbid for s in all_seeds if s.track is None] + [c.id for c in candidates]
        unseen = [c.id for c in candidates if c.vector is None]
        tracks, vectors = await asyncio.gather(
            self._catalog.get_tracks(list(dict.fromkeys(wanted))) if wanted else _nothing(),
            asyncio.to_thread(self._vectors.get_vectors, unseen) if unseen else _nothing_stored(),
        )
        by_mbid = {t.mbid: t for t in tracks}

        def catalog_row(seed: _Seed) -> Track:
            track = seed.track or by_mbid.get(seed.facts.mbid)
            if track is None:
                raise NotFoundError(f"no track with MBID {seed.facts.mbid} in the catalog")
            return track

        seed_tracks = [catalog_row(s) for s in seeds]
        negative_tracks = [catalog_row(s) for s in negatives]
        results: list[recommender_pb2.RecommendedTrack] = []
        for candidate in candidates:
            track = by_mbid.get(candidate.id)
            if track is None:
                log_event(log, "vector without catalog row", logging.WARNING, mbid=candidate.id)
                continue
            message = _to_proto(track, candidate.similarity, len(results) + 1, candidate.score)
            vector = candidate.vector if candidate.vector is not None else vectors.get(candidate.id)
            if vector is not None:
                agreement = group_agreement(query, vector)
                for group, contribution in sorted(agreement.items(), key=lambda kv: -kv[1]):
                    message.explanation.groups.add(group=group, contribution=contribution)
            message.explanation.facts.extend(_facts(track, first, bounds, candidate))
            results.append(message)

        stats = similarity_stats([r.similarity for r in results])
        candidate_stats = similarity_stats(considered)
        applied = recommender_pb2.AppliedFilter(
            genre_classifier=_CLASSIFIER_ENUM[classifier],
            genre=spec.genres[0] if len(spec.genres) == 1 else "",
            genres=list(spec.genres),
            include_placeholders=spec.include_placeholders,
            exclude_seed_artists=request.exclude_seed_artists,
            max_per_artist=cap,
            include_duplicates=request.include_duplicates,
            traits=request.traits,
            diversity=diversity,
        )
        if spec.decade is not None:
            applied.decade = spec.decade
        if spec.min_genre_probability is not None:
            applied.min_genre_probability = spec.min_genre_probability
        if spec.min_year is not None:
            applied.min_year = spec.min_year
        if spec.max_year is not None:
            applied.max_year = spec.max_year
        if min_similarity is not None:
            applied.min_similarity = min_similarity
        return recommender_pb2.RecommendResponse(
            seed=_to_proto(seed_tracks[0]),
            seeds=[_to_proto(t) for t in seed_tracks],
            negative_seeds=[_to_proto(t) for t in negative_tracks],
            tracks=results,
            stats=_stats_proto(stats),
            candidate_stats=_stats_proto(candidate_stats),
            filter=applied,
            feature_model=feature_model,
        )

    def _candidates(
        self,
        query: npt.NDArray[np.float32],
        limit: int,
        spec: FilterSpec,
        bounds: Sequence[TraitBound],
        weight: float,
        cap: int,
        include_duplicates: bool,
        diversity: float,
        min_similarity: float | None,
        seeds: int,
    ) -> tuple[list[Candidate], list[float]]:
        """The selected candidates, and the similarities of every candidate that passed the filters."""
        search_filter = spec.search_filter()
        width = search_width(seeds)
        # Only the payload keys read here: the artist and work for the caps, the bounded traits.
        keys = list(dict.fromkeys(["artist", "work", *(b.trait for b in bounds)]))
        targets = any(b.target is not None for b in bounds)
        post = targets or cap or not include_duplicates or diversity > 0 or min_similarity is not None
        ask = limit if not post else min(max(limit * _OVERSAMPLE, limit + 20), _MAX_CANDIDATES)
        while True:
            hits: list[Hit] = self._vectors.search(query, ask, search_filter, keys, width)
            exhausted = len(hits) < ask
            pool = [
                Candidate(h.id, h.score, h.payload, h.score - trait_penalty(h.payload, bounds, weight))
                for h in hits
                if min_similarity is None or h.score >= min_similarity
            ]
            if min_similarity is not None and len(pool) < len(hits):
                exhausted = True  # hits come best first: the rest are below the threshold too
            if diversity > 0 and pool:
                found = self._vectors.get_vectors([c.id for c in pool])
                for candidate in pool:
                    candidate.vector = found.get(candidate.id)
                pool = [c for c in pool if c.vector is not None]
            chosen = select(
                pool, limit, max_per_artist=cap, include_duplicates=include_duplicates, diversity=diversity
            )
            if len(chosen) >= limit or exhausted or ask >= _MAX_CANDIDATES:
                return chosen, [c.similarity for c in pool]
            ask = min(ask * 2, _MAX_CANDIDATES)


def _stats_proto(stats: Any) -> recommender_pb2.SimilarityStats:
    return recommender_pb2.SimilarityStats(
        count=stats.count, mean=stats.mean, std=stats.std, p95=stats.p95, max=stats.max
    )
