"""The payload stored with each vector: what the filters need, derived from a parsed document.

Keys (absent when the value is unknown, so an equality or range condition on them never matches):
- `rosamerica`, `dortmund`, `tzanetakis`: each genre model's winning label (indexed keywords), and
  `rosamerica_p`, `dortmund_p`, `tzanetakis_p`: its probability in millionths (see PPM);
- `rosamerica_decade`, `dortmund_decade`, `tzanetakis_decade`: `"<label>@<decade>"` (e.g.
  `"rock@1990"`, indexed keywords) when the year is known, so that "this genre in this decade", the
  filter asked most, is one keyword match: with a genre and a year range as two conditions the engine
  walks every point of one of them and checks the other (~45 ms at 1M tracks against ~11 ms);
- `year` (indexed integer; decades are year ranges), `placeholder` (indexed bool, always present);
- `artist`, `work`: 64-bit hashes of the folded artist, and of the folded artist and title, for
  "exclude the seed's artist", "at most n per artist" and "no duplicate of the same title by the same
  artist" (a hash, not the name: integers are much cheaper to store and compare than strings);
- one key per trait of `features.TRAITS` (danceability, happy, instrumental, …): its probability in
  millionths;
- `completeness`, `submission`: which submission the vector came from, so that a later ingest
  applies the catalog's preference rule (always present).

Probabilities are stored as integers: Qdrant Edge takes integer payload values about five times faster
than floats, and a millionth is finer than the classifiers' precision. A filter "probability >= t" is
exact for any t with at most six decimals: it becomes `key >= ppm_at_least(t)` over `to_ppm(p)`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from musicrec_common.features import TRAITS
from musicrec_common.model import Track
from musicrec_common.text import fold_for_search
from musicrec_vectorstore.port import PayloadValue

__all__ = [
    "PAYLOAD_VERSION",
    "PAYLOAD_VERSION_KEY",
    "PPM",
    "TRAIT_KEYS",
    "genre_decade",
    "genre_decade_key",
    "name_hash",
    "payload_for",
    "ppm_at_least",
    "ppm_at_most",
    "probability_key",
    "to_ppm",
]

# Raised whenever keys are added or change meaning: an index whose points carry another version
# would answer filters on the new keys wrongly, so it is refused (feature_models.py).
PAYLOAD_VERSION = 3
PAYLOAD_VERSION_KEY = "payload_version"  # the index metadata key recording it
PPM = 1_000_000
TRAIT_KEYS: tuple[str, ...] = tuple(t.name for t in TRAITS)


def probability_key(classifier: str) -> str:
    """The payload key of a genre model's winning probability."""
    return f"{classifier}_p"


def genre_decade_key(classifier: str) -> str:
    """The payload key of a genre model's "<label>@<decade>" keyword."""
    return f"{classifier}_decade"


def genre_decade(label: str, decade: int) -> str:
    """The "<label>@<decade>" keyword of a genre label in a decade (a year rounded down to 10)."""
    return f"{label}@{decade}"


# p * PPM carries float error (0.57 * PPM == 569999.9999999999): both directions allow for it, so a
# stored value and a threshold made from the same decimal always compare as the decimals do.
_SLACK = 1e-6


def to_ppm(probability: float) -> int:
    """A probability in [0, 1] as whole millionths, rounded down."""
    return math.floor(probability * PPM + _SLACK)


def ppm_at_least(threshold: float) -> int:
    """The smallest stored value that means "probability >= threshold"."""
    return math.ceil(threshold * PPM - _SLACK)


def ppm_at_most(threshold: float) -> int:
    """The largest stored value that means "probability <= threshold"."""
    return math.floor(threshold * PPM + _SLACK)


def name_hash(*parts: str) -> int:
    """A signed 64-bit hash of folded names (a Qdrant integer): equal for names that fold alike."""
    key = "\x1f".join(fold_for_search(part) for part in parts)
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def payload_for(track: Track, traits: Sequence[float] = ()) -> dict[str, PayloadValue]:
    """The payload of a track; `traits` in TRAITS order, NaN (or a missing tail) where unknown."""
    payload: dict[str, PayloadValue] = {}
    # Spelled out rather than looped over GenreClassifier: the ingest builds one per track.
    decade = track.decade
    if track.rosamerica is not None:
        payload["rosamerica"] = track.rosamerica.label
        payload["rosamerica_p"] = to_ppm(track.rosamerica.probability)
        if decade is not None:
            payload["rosamerica_decade"] = genre_decade(track.rosamerica.label, decade)
    if track.dortmund is not None:
        payload["dortmund"] = track.dortmund.label
        payload["dortmund_p"] = to_ppm(track.dortmund.probability)
        if decade is not None:
            payload["dortmund_decade"] = genre_decade(track.dortmund.label, decade)
    if track.tzanetakis is not None:
        payload["tzanetakis"] = track.tzanetakis.label
        payload["tzanetakis_p"] = to_ppm(track.tzanetakis.probability)
        if decade is not None:
            payload["tzanetakis_decade"] = genre_decade(track.tzanetakis.label, decade)
    if track.year is not None:
        payload["year"] = track.year
    payload["placeholder"] = track.is_placeholder_title
    if track.artist is not None:
        payload["artist"] = name_hash(track.artist)
        if track.title is not None:
            payload["work"] = name_hash(track.artist, track.title)
    for key, value in zip(TRAIT_KEYS, traits, strict=False):
        if value == value:  # not NaN
            payload[key] = to_ppm(value)
    payload["completeness"] = track.completeness
    payload["submission"] = track.submission
    return payload
