"""The payload stored with each vector: what the filters need, derived from a `Track`."""

from __future__ import annotations

from musicrec_common.model import GenreClassifier, Track
from musicrec_vectorstore.port import PayloadValue

__all__ = ["payload_for"]


def payload_for(track: Track) -> dict[str, PayloadValue]:
    """Genre labels of the three models, decade, year, placeholder flag. Unknown values are None
    (so an equality filter on them never matches). `completeness` and `submission` record which
    submission the vector came from, so a later ingest can apply the catalog's preference rule."""
    # Spelled out rather than looped over GenreClassifier: the ingest builds one per track.
    rosamerica, dortmund, tzanetakis = track.rosamerica, track.dortmund, track.tzanetakis
    return {
        GenreClassifier.ROSAMERICA.value: None if rosamerica is None else rosamerica.label,
        GenreClassifier.DORTMUND.value: None if dortmund is None else dortmund.label,
        GenreClassifier.TZANETAKIS.value: None if tzanetakis is None else tzanetakis.label,
        "decade": track.decade,
        "year": track.year,
        "placeholder": track.is_placeholder_title,
        "completeness": track.completeness,
        "submission": track.submission,
    }
