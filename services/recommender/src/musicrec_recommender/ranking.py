"""Pure helpers of the recommender: filters from a request and similarity statistics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from musicrec_common.errors import FailedPreconditionError, InvalidArgumentError
from musicrec_common.features import FEATURE_LAYOUT
from musicrec_common.model import GenreClassifier, Track

__all__ = ["MAX_LIMIT", "SimilarityStats", "genre_labels", "resolve_filter", "similarity_stats"]

MAX_LIMIT = 100


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


def resolve_filter(
    seed: Track,
    classifier: GenreClassifier,
    *,
    genre: str | None,
    same_genre: bool,
    decade: int | None,
    same_decade: bool,
) -> dict[str, str | int]:
    """The exact payload conditions of a request. Explicit values win over the seed's."""
    equals: dict[str, str | int] = {}
    if genre:
        labels = genre_labels(classifier)
        if genre not in labels:
            raise InvalidArgumentError(
                "genre", f"{genre!r} is not a {classifier.value} label; one of {', '.join(labels)}"
            )
        equals[classifier.value] = genre
    elif same_genre:
        prediction = seed.genre(classifier)
        if prediction is None:
            raise FailedPreconditionError(f"the seed track has no {classifier.value} genre to filter by")
        equals[classifier.value] = prediction.label
    if decade is not None:
        if decade % 10 or not 1000 <= decade <= 9990:
            raise InvalidArgumentError("decade", f"must be a decade such as 1990, got {decade}")
        equals["decade"] = decade
    elif same_decade:
        if seed.decade is None:
            raise FailedPreconditionError(
                "the seed track has no known release year, so it has no decade to filter by"
            )
        equals["decade"] = seed.decade
    return equals
