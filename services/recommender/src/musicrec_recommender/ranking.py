"""Pure rules of the recommender: the filter of a request, the query vector of several seeds, the
selection of results (trait targets, one per title, a cap per artist, diversity) and statistics.

Everything here is deterministic: the same request over the same index gives the same answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from musicrec_common.errors import FailedPreconditionError, InvalidArgumentError
from musicrec_common.features import FEATURE_LAYOUT
from musicrec_common.model import GenreClassifier, decade_of
from musicrec_vectorstore import PayloadValue, Range, SearchFilter
from musicrec_vectorstore.payload import (
    PPM,
    TRAIT_KEYS,
    genre_decade,
    genre_decade_key,
    ppm_at_least,
    ppm_at_most,
    probability_key,
)

__all__ = [
    "DEFAULT_MAX_PER_ARTIST",
    "DEFAULT_TARGET_WEIGHT",
    "MAX_LIMIT",
    "MAX_SEED_WIDTH",
    "Candidate",
    "FilterSpec",
    "SeedFacts",
    "SimilarityStats",
    "TraitBound",
    "genre_labels",
    "query_vector",
    "resolve_filter",
    "search_width",
    "select",
    "similarity_stats",
    "trait_penalty",
    "trait_value",
    "validate_limit",
    "validate_traits",
]

MAX_LIMIT = 100
DEFAULT_MAX_PER_ARTIST = 3
DEFAULT_TARGET_WEIGHT = 0.5
# A trait a track lacks counts as this far from any target (the middle of the scale).
MISSING_TRAIT_DISTANCE = 0.5
MIN_YEAR, MAX_YEAR = 1000, 9999


@dataclass(frozen=True, slots=True)
class SimilarityStats:
    count: int
    mean: float
    std: float
    p95: float
    max: float


def similarity_stats(similarities: Sequence[float]) -> SimilarityStats:
    """mean, population std, 95th percentile (linear interpolation) and max of the given similarities."""
    if not similarities:
        return SimilarityStats(0, 0.0, 0.0, 0.0, 0.0)
    values = np.asarray(similarities, dtype=np.float64)
    return SimilarityStats(
        count=len(values),
        mean=float(values.mean()),
        std=float(values.std()),
        p95=float(np.percentile(values, 95)),
        max=float(values.max()),
    )


def genre_labels(classifier: GenreClassifier) -> tuple[str, ...]:
    for block in FEATURE_LAYOUT:
        if block.model == classifier.model_name:
            return block.labels
    raise KeyError(classifier)


def validate_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgumentError("limit", f"must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


@dataclass(frozen=True, slots=True)
class TraitBound:
    """Bounds and a target for one trait (payload key of `TRAIT_KEYS`), each in [0, 1] or None."""

    trait: str
    min: float | None = None
    max: float | None = None
    target: float | None = None


def validate_traits(bounds: Sequence[TraitBound], field_name: str = "traits") -> tuple[TraitBound, ...]:
    seen: set[str] = set()
    for i, bound in enumerate(bounds):
        where = f"{field_name}[{i}]"
        if bound.trait not in TRAIT_KEYS:
            raise InvalidArgumentError(
                where, f"unknown trait {bound.trait!r}; one of {', '.join(TRAIT_KEYS)}"
            )
        if bound.trait in seen:
            raise InvalidArgumentError(where, f"{bound.trait} is given twice")
        seen.add(bound.trait)
        for name in ("min", "max", "target"):
            value = getattr(bound, name)
            if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise InvalidArgumentError(f"{where}.{name}", f"must be in [0, 1], got {value}")
        if bound.min is not None and bound.max is not None and bound.min > bound.max:
            raise InvalidArgumentError(where, f"min {bound.min} is above max {bound.max}")
        if bound.min is None and bound.max is None and bound.target is None:
            raise InvalidArgumentError(where, f"give min, max or target for {bound.trait}")
    return tuple(bounds)


@dataclass(frozen=True, slots=True)
class SeedFacts:
    """What the vector index's payload tells of a seed: its genre labels, release year and artist
    hash. Enough to resolve "same genre", "same decade" and "not the seed's artist" before the
    search, without waiting for the catalog."""

    mbid: str
    genres: Mapping[str, str] = field(default_factory=dict)  # classifier value -> winning label
    year: int | None = None
    artist_hash: int | None = None

    @classmethod
    def from_payload(cls, mbid: str, payload: Mapping[str, PayloadValue]) -> SeedFacts:
        genres = {c.value: label for c in GenreClassifier if isinstance(label := payload.get(c.value), str)}
        year, artist = payload.get("year"), payload.get("artist")
        return cls(
            mbid=mbid,
            genres=genres,
            year=year if isinstance(year, int) and not isinstance(year, bool) else None,
            artist_hash=artist if isinstance(artist, int) and not isinstance(artist, bool) else None,
        )

    def genre(self, classifier: GenreClassifier) -> str | None:
        return self.genres.get(classifier.value)

    @property
    def decade(self) -> int | None:
        return decade_of(self.year)


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """The exact conditions of a request, in domain terms (also reported back as applied)."""

    classifier: GenreClassifier
    genres: tuple[str, ...] = ()
    min_genre_probability: float | None = None
    decade: int | None = None
    min_year: int | None = None
    max_year: int | None = None
    include_placeholders: bool = False
    exclude_ids: tuple[str, ...] = ()
    exclude_artist_hashes: tuple[int, ...] = ()  # payload "artist" values (`payload.name_hash`)
    traits: tuple[TraitBound, ...] = ()

    def search_filter(self) -> SearchFilter:
        """The vector store's filter: every condition here becomes an exact payload condition.

        Genres with a decade become one match on the genre model's "<label>@<decade>" keyword
        rather than a genre match and a year range: the same tracks, found from one index.
        """
        any_of: dict[str, Sequence[str | int]] = {}
        ranges: dict[str, Range] = {}
        exclude: dict[str, Sequence[str | int]] = {}
        # The decade the genres are matched in, or None where genres and years stay apart.
        decade = self.decade
        whole = decade is not None and (self.min_year, self.max_year) == (decade, decade + 9)
        if not (self.genres and whole):
            decade = None
        if self.genres:
            if decade is not None:
                key = genre_decade_key(self.classifier.value)
                any_of[key] = [genre_decade(label, decade) for label in self.genres]
            else:
                any_of[self.classifier.value] = list(self.genres)
            if self.min_genre_probability is not None:
                ranges[probability_key(self.classifier.value)] = Range(
                    gte=ppm_at_least(self.min_genre_probability)
                )
        if (self.min_year is not None or self.max_year is not None) and decade is None:
            ranges["year"] = Range(gte=self.min_year, lte=self.max_year)
        for bound in self.traits:
            if bound.min is not None or bound.max is not None:
                ranges[bound.trait] = Range(
                    gte=None if bound.min is None else ppm_at_least(bound.min),
                    lte=None if bound.max is None else ppm_at_most(bound.max),
                )
        if self.exclude_artist_hashes:
            exclude["artist"] = sorted(set(self.exclude_artist_hashes))
        return SearchFilter(
            any_of=any_of,
            ranges=ranges,
            exclude_values=exclude,
            exclude_ids=list(self.exclude_ids),
            exclude_placeholders=not self.include_placeholders,
        )


def resolve_filter(
    seed: SeedFacts,
    classifier: GenreClassifier,
    *,
    genre: str | None = None,
    genres: Sequence[str] = (),
    same_genre: bool = False,
    min_genre_probability: float | None = None,
    decade: int | None = None,
    same_decade: bool = False,
    min_year: int | None = None,
    max_year: int | None = None,
) -> FilterSpec:
    """Genre and time conditions of a request. Explicit values win over the seed's: `genre` and
    `genres` over `same_genre`; a year range over `decade`, which wins over `same_decade`."""
    labels = genre_labels(classifier)
    wanted = [g for g in ([genre] if genre else []) + list(genres)]
    for i, label in enumerate(wanted):
        if label not in labels:
            where = "genre" if genre and i == 0 else "genres"
            raise InvalidArgumentError(
                where, f"{label!r} is not a {classifier.value} label; one of {', '.join(labels)}"
            )
    if not wanted and same_genre:
        seed_label = seed.genre(classifier)
        if seed_label is None:
            raise FailedPreconditionError(f"the seed track has no {classifier.value} genre to filter by")
        wanted = [seed_label]
    if min_genre_probability is not None:
        if not (math.isfinite(min_genre_probability) and 0.0 <= min_genre_probability <= 1.0):
            raise InvalidArgumentError(
                "min_genre_probability", f"must be in [0, 1], got {min_genre_probability}"
            )
        if not wanted:
            raise InvalidArgumentError(
                "min_genre_probability", "needs a genre filter (genre, genres or same_genre)"
            )
    for name, year in (("min_year", min_year), ("max_year", max_year)):
        if year is not None and not MIN_YEAR <= year <= MAX_YEAR:
            raise InvalidArgumentError(name, f"must be a year between {MIN_YEAR} and {MAX_YEAR}, got {year}")
    if min_year is not None and max_year is not None and min_year > max_year:
        raise InvalidArgumentError("min_year", f"{min_year} is after max_year {max_year}")
    chosen_decade: int | None = None
    if min_year is None and max_year is None:
        if decade is not None:
            if decade % 10 or not 1000 <= decade <= 9990:
                raise InvalidArgumentError("decade", f"must be a decade such as 1990, got {decade}")
            chosen_decade = decade
        elif same_decade:
            if seed.decade is None:
                raise FailedPreconditionError(
                    "the seed track has no known release year, so it has no decade to filter by"
                )
            chosen_decade = seed.decade
        if chosen_decade is not None:
            min_year, max_year = chosen_decade, chosen_decade + 9
    return FilterSpec(
        classifier=classifier,
        genres=tuple(dict.fromkeys(wanted)),
        min_genre_probability=min_genre_probability if wanted else None,
        decade=chosen_decade,
        min_year=min_year,
        max_year=max_year,
    )


# The most the recommender widens a query of several seeds (the store itself accepts up to 16×).
MAX_SEED_WIDTH = 3


def search_width(seeds: int) -> int:
    """How many times the index's base width to search for a query made of `seeds` seeds (positive
    and negative): one per seed, at most MAX_SEED_WIDTH.

    Several seeds average into a query between clusters, where the graph walk needs more candidates.
    Measured at 1M tracks (engine alone, 150 queries of three seeds, recall@10 against exact
    search, p50): ef 2000 0.987 (12 ms), 3000 0.996 (17 ms), 4000 0.998 (22 ms), 5000 0.998
    (25 ms). With the default base ef of 1600, two seeds search at ef 3200 and three or more at 4800.
    """
    return max(1, min(seeds, MAX_SEED_WIDTH))


def query_vector(
    positives: Sequence[npt.NDArray[np.float32]], negatives: Sequence[npt.NDArray[np.float32]] = ()
) -> npt.NDArray[np.float32]:
    """The vector searched for: with one seed, the seed itself; with several, their mean; negative
    seeds push it away (2 · mean(positives) − mean(negatives), Qdrant's "average vector" strategy),
    computed here so that the similarity reported is the cosine with this one vector. Unit length."""
    if not positives:
        raise ValueError("at least one positive seed vector is needed")
    query = np.mean(np.stack(positives).astype(np.float64), axis=0)
    if negatives:
        query = 2.0 * query - np.mean(np.stack(negatives).astype(np.float64), axis=0)
    norm = float(np.linalg.norm(query))
    if norm < 1e-9:
        raise FailedPreconditionError(
            "the seeds cancel out (their vectors sum to nothing); choose other or fewer seeds"
        )
    unit: npt.NDArray[np.float32] = (query / norm).astype(np.float32)
    return unit


def trait_value(payload: Mapping[str, PayloadValue], trait: str) -> float | None:
    value = payload.get(trait)
    if isinstance(value, int) and not isinstance(value, bool):
        return value / PPM
    return None


def trait_penalty(payload: Mapping[str, PayloadValue], traits: Sequence[TraitBound], weight: float) -> float:
    """weight × the summed distance of the track's traits from their targets."""
    total = 0.0
    for bound in traits:
        if bound.target is None:
            continue
        value = trait_value(payload, bound.trait)
        total += MISSING_TRAIT_DISTANCE if value is None else abs(value - bound.target)
    return weight * total


@dataclass(slots=True)
class Candidate:
    """A hit on its way to becoming a result."""

    id: str
    similarity: float
    payload: Mapping[str, PayloadValue]
    score: float = 0.0
    vector: npt.NDArray[np.float32] | None = field(default=None, repr=False)

    @property
    def artist(self) -> PayloadValue:
        return self.payload.get("artist")

    @property
    def work(self) -> PayloadValue:
        return self.payload.get("work")


def select(
    candidates: Sequence[Candidate],
    limit: int,
    *,
    max_per_artist: int = DEFAULT_MAX_PER_ARTIST,
    include_duplicates: bool = False,
    diversity: float = 0.0,
) -> list[Candidate]:
    """Pick up to `limit` candidates, greedily by score.

    - one track per work (same title by the same artist) unless `include_duplicates`: the best one;
    - at most `max_per_artist` per artist (0: no cap); tracks without an artist are not capped;
    - with `diversity` d > 0, maximal marginal relevance: each pick maximises
      (1 − d) · score − d · (its highest cosine with a track already picked); needs `vector`s.
    Ties go to the earlier candidate (candidates come ordered by similarity, then id).
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be in [0, 1], not {diversity}")
    if diversity > 0 and any(c.vector is None for c in candidates):
        raise ValueError("diversity needs every candidate's vector")
    pool = sorted(candidates, key=lambda c: -c.score)  # stable: keeps the incoming order on ties
    picked: list[Candidate] = []
    per_artist: dict[PayloadValue, int] = {}
    works: set[PayloadValue] = set()
    closest = np.full(len(pool), -np.inf)  # each candidate's highest cosine with a pick so far
    available = np.ones(len(pool), dtype=bool)
    scores = np.array([c.score for c in pool], dtype=np.float64)
    matrix = (
        np.stack([c.vector for c in pool if c.vector is not None]).astype(np.float64)
        if diversity > 0 and pool
        else None
    )

    def allowed(candidate: Candidate) -> bool:
        if not include_duplicates and candidate.work is not None and candidate.work in works:
            return False
        artist = candidate.artist
        return not (max_per_artist and artist is not None and per_artist.get(artist, 0) >= max_per_artist)

    while len(picked) < limit and available.any():
        if matrix is None:
            index = int(np.flatnonzero(available)[0])
        else:
            penalty = np.where(np.isfinite(closest), closest, 0.0)
            value = np.where(available, (1.0 - diversity) * scores - diversity * penalty, -np.inf)
            index = int(np.argmax(value))
        available[index] = False
        candidate = pool[index]
        if not allowed(candidate):
            continue
        picked.append(candidate)
        if candidate.work is not None:
            works.add(candidate.work)
        if candidate.artist is not None:
            per_artist[candidate.artist] = per_artist.get(candidate.artist, 0) + 1
        if matrix is not None:
            closest = np.maximum(closest, matrix @ matrix[index])
    return picked
