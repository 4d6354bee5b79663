"""The domain model shared by every service: a cleaned track and its genre predictions.

These are plain value objects. The catalog stores `Track`; the vector index stores the
feature vector with a payload derived from the same `Track` (see `musicrec_common.payload`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

__all__ = [
    "FeatureVector",
    "GenreClassifier",
    "GenrePrediction",
    "ParsedDocument",
    "Track",
    "decade_of",
]

FeatureVector = npt.NDArray[np.float32]


class GenreClassifier(StrEnum):
    """The three AcousticBrainz genre models. Values are the names users type (`--genre-classifier`)."""

    ROSAMERICA = "rosamerica"
    DORTMUND = "dortmund"
    TZANETAKIS = "tzanetakis"

    @property
    def model_name(self) -> str:
        """The key of this classifier in a document's `highlevel` object."""
        return f"genre_{self.value}"


@dataclass(frozen=True, slots=True)
class GenrePrediction:
    """The winning label of one genre model and its probability (`value` / `probability`)."""

    label: str
    probability: float


def decade_of(year: int | None) -> int | None:
    """1994 -> 1990. None stays None."""
    return None if year is None else year - year % 10


@dataclass(frozen=True, slots=True)
class Track:
    """One recording as the catalog keeps it, after cleaning.

    `mbid` is the lower-case hyphenated MusicBrainz recording id; `submission` the dump offset `n`
    of the submission this metadata was taken from. Text fields are NFC-normalised, trimmed and
    space-collapsed, or None when the document had none.
    """

    mbid: str
    submission: int
    title: str | None
    artist: str | None
    album: str | None
    release_date: dt.date | None
    year: int | None
    rosamerica: GenrePrediction | None
    dortmund: GenrePrediction | None
    tzanetakis: GenrePrediction | None
    is_placeholder_title: bool = False

    @property
    def decade(self) -> int | None:
        return decade_of(self.year)

    def genre(self, classifier: GenreClassifier) -> GenrePrediction | None:
        match classifier:
            case GenreClassifier.ROSAMERICA:
                return self.rosamerica
            case GenreClassifier.DORTMUND:
                return self.dortmund
            case GenreClassifier.TZANETAKIS:
                return self.tzanetakis

    @property
    def completeness(self) -> int:
        """How many of the user-visible metadata fields are known (0..5); drives de-duplication."""
        return sum(
            (
                self.title is not None and not self.is_placeholder_title,
                self.artist is not None,
                self.album is not None,
                self.year is not None,
                self.release_date is not None,
            )
        )

    def preference_key(self) -> tuple[int, int]:
        """Deterministic choice among submissions of one recording: larger key wins.

        Most complete metadata first, then the lowest submission offset. The key depends only on
        the submission itself, so the winner does not depend on file order or how work is split.
        """
        return (self.completeness, -self.submission)


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """The parser's output for one dump file: the cleaned track, its feature vector, and its traits
    (`features.TRAITS` order: a probability in [0, 1], or None where the document lacks it)."""

    track: Track
    features: FeatureVector
    traits: tuple[float | None, ...]
