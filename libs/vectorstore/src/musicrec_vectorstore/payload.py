"""The payload stored with each vector: what the filters need, derived from a `Track`."""

from __future__ import annotations

from musicrec_common.model import GenreClassifier, Track
from musicrec_vectorstore.port import PayloadValue

__all__ = ["payload_for"]


def payload_for(track: Track) -> dict[str, PayloadValue]:
    """Genre labels of the three models, decade, year, placeholder flag. Unknown values are None
    (so an equality filter on them never matches). `completeness` and `submission` record which
    submission the vector came from, so a later ingest can apply the catalog's preference rule."""
    payload: dict[str, PayloadValue] = {
        classifier.value: (g.label if (g := track.genre(classifier)) is not None else None)
        for classifier in GenreClassifier
    }
    payload["decade"] = track.decade
    payload["year"] = track.year
    payload["placeholder"] = track.is_placeholder_title
    payload["completeness"] = track.completeness
    payload["submission"] = track.submission
    return payload
