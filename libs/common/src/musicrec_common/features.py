"""The feature vector of a track, built from the 18 AcousticBrainz high-level classifiers.

Why not just concatenate the probabilities (`raw_probability_vector`)? Every block of that vector is a
probability distribution: all components are positive and each block sums to 1. Two unrelated tracks
therefore share a large common component, and their cosine similarity is high whatever they sound like
— the prototype's recommendations were close to random for that reason.

`build_feature_vector` removes that common component with the centred log-ratio (CLR) transform from
compositional data analysis: for a distribution p over k labels, clr(p)_i = log p_i − mean_j log p_j.
The CLR block is centred (its components sum to 0); the uniform distribution, which says nothing, maps
to the zero block; and ratios between labels, which is what a classifier actually expresses, become
differences. Probabilities are clipped to [1e-4, 1 − 1e-4] first so that a zero cannot produce −inf
and one over-confident label cannot dominate.

A binary model's 2-d CLR block is (d, −d) with d = (log p_1 − log p_2)/2: the second component is
redundant, so the vector stores only the single value d·√2, which has the same norm.

Each block is then scaled by weight/√k (k = the model's label count) so that a 10-label model does not
weigh more than a 2-label one just because it has more components, and genre models get weight 1.5.
The whole vector is L2-normalised; cosine similarity is then a plain dot product.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from musicrec_common.model import FeatureVector

__all__ = [
    "CLIP_EPSILON",
    "FEATURE_DIM",
    "FEATURE_LAYOUT",
    "FEATURE_MODEL_VERSION",
    "RAW_DIM",
    "TRAITS",
    "TRAIT_COLUMNS",
    "FeatureBlock",
    "Trait",
    "build_feature_vector",
    "raw_probability_vector",
    "trait_values",
    "unit_vector",
]

FEATURE_MODEL_VERSION = "clr-v1"

CLIP_EPSILON = 1e-4
GENRE_WEIGHT = 1.5
DEFAULT_WEIGHT = 1.0


@dataclass(frozen=True)
class FeatureBlock:
    """One classifier's slice of the vector: its model name, its labels (sorted) and its weight."""

    model: str
    labels: tuple[str, ...]
    weight: float

    @property
    def dim(self) -> int:
        """Components this block occupies in the feature vector (1 for a binary model)."""
        return 1 if len(self.labels) == 2 else len(self.labels)


def _block(model: str, *labels: str) -> FeatureBlock:
    weight = GENRE_WEIGHT if model.startswith("genre_") else DEFAULT_WEIGHT
    return FeatureBlock(model, tuple(sorted(labels)), weight)


# The 18 models of the dump (spec §4.1) with their verified labels.
FEATURE_LAYOUT: tuple[FeatureBlock, ...] = (
    _block("danceability", "danceable", "not_danceable"),
    _block("gender", "female", "male"),
    _block(
        "genre_dortmund",
        "alternative",
        "blues",
        "electronic",
        "folkcountry",
        "funksoulrnb",
        "jazz",
        "pop",
        "raphiphop",
        "rock",
    ),
    _block("genre_electronic", "ambient", "dnb", "house", "techno", "trance"),
    _block("genre_rosamerica", "cla", "dan", "hip", "jaz", "pop", "rhy", "roc", "spe"),
    _block("genre_tzanetakis", "blu", "cla", "cou", "dis", "hip", "jaz", "met", "pop", "reg", "roc"),
    _block(
        "ismir04_rhythm",
        "ChaChaCha",
        "Jive",
        "Quickstep",
        "Rumba-American",
        "Rumba-International",
        "Rumba-Misc",
        "Samba",
        "Tango",
        "VienneseWaltz",
        "Waltz",
    ),
    _block("mood_acoustic", "acoustic", "not_acoustic"),
    _block("mood_aggressive", "aggressive", "not_aggressive"),
    _block("mood_electronic", "electronic", "not_electronic"),
    _block("mood_happy", "happy", "not_happy"),
    _block("mood_party", "not_party", "party"),
    _block("mood_relaxed", "not_relaxed", "relaxed"),
    _block("mood_sad", "not_sad", "sad"),
    _block("moods_mirex", "Cluster1", "Cluster2", "Cluster3", "Cluster4", "Cluster5"),
    _block("timbre", "bright", "dark"),
    _block("tonal_atonal", "atonal", "tonal"),
    _block("voice_instrumental", "instrumental", "voice"),
)

FEATURE_DIM: int = sum(block.dim for block in FEATURE_LAYOUT)
"""Length of `build_feature_vector`'s output."""

RAW_DIM: int = sum(len(block.labels) for block in FEATURE_LAYOUT)
"""Length of `raw_probability_vector`'s output (both labels of binary models)."""

_LOG_LOW = math.log(CLIP_EPSILON)
_LOG_HIGH = math.log1p(-CLIP_EPSILON)
_SQRT2 = math.sqrt(2.0)
# Below this the un-normalised vector is rounding noise. A single binary model at p = 0.5001 already
# gives ~1e-4, so no real signal is lost.
_ZERO_NORM = 1e-9
# Precomputed per block: (model, labels, scale = weight/√k, is_binary).
_PLAN = tuple(
    (block.model, block.labels, block.weight / math.sqrt(len(block.labels)), len(block.labels) == 2)
    for block in FEATURE_LAYOUT
)
_ZEROS = {block.model: (0.0,) * block.dim for block in FEATURE_LAYOUT}


def _probability(value: object) -> float | None:
    """A finite number as float, else None (bools, strings, NaN, ±inf and overflowing ints are not)."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    return None


def _is_mapping(value: object) -> bool:
    # `type(...) is dict` first: the ABC isinstance check is several times slower, and parsed JSON
    # is always a dict.
    return type(value) is dict or isinstance(value, Mapping)


def _distribution(highlevel: Mapping[str, object], model: str) -> Mapping[str, object] | None:
    entry = highlevel.get(model)
    if not _is_mapping(entry):
        return None
    distribution = cast("Mapping[str, object]", entry).get("all")
    return cast("Mapping[str, object]", distribution) if _is_mapping(distribution) else None


def build_feature_vector(highlevel: Mapping[str, object]) -> FeatureVector:
    """The CLR feature vector (float32, shape (FEATURE_DIM,), unit length or all zeros).

    `highlevel` is a document's `highlevel` object. Per model of `FEATURE_LAYOUT`: take `all`, clip,
    CLR-transform, scale by weight/√k; then L2-normalise the whole vector.

    Missing data is neutral, never an error: a missing model (or one whose `all` is not an object)
    gives a zero block; a missing or non-numeric label gets the mean log-probability of the block's
    present labels, i.e. a zero component, with the present labels centred among themselves; a block
    with fewer than two usable labels is zero. Unknown labels and unknown models are ignored.
    """
    # A plain-Python loop: ~70 scalars per document is too few for numpy's per-call overhead to pay.
    out: list[float] = []
    append = out.append
    extend = out.extend
    log = math.log
    low, high, log_low, log_high = CLIP_EPSILON, 1.0 - CLIP_EPSILON, _LOG_LOW, _LOG_HIGH
    for model, labels, scale, is_binary in _PLAN:
        distribution = _distribution(highlevel, model)
        if distribution is None:
            extend(_ZEROS[model])
            continue
        logs: list[float | None] = []
        present = 0
        total = 0.0
        for label in labels:
            value = distribution.get(label)
            if type(value) is not float:
                value = _probability(value)
                if value is None:
                    logs.append(None)
                    continue
            if value - value != 0.0:  # NaN or ±inf (finite x gives x - x == 0.0)
                logs.append(None)
                continue
            log_p = log_low if value <= low else log_high if value >= high else log(value)
            logs.append(log_p)
            present += 1
            total += log_p
        if present < 2:
            extend(_ZEROS[model])
        elif is_binary:
            first, second = logs
            assert first is not None  # present == 2
            assert second is not None
            append((first - second) * scale / _SQRT2)
        else:
            mean = total / present
            for item in logs:
                append(0.0 if item is None else (item - mean) * scale)

    return unit_vector(out)


def unit_vector(components: Sequence[float] | npt.NDArray[np.float64]) -> FeatureVector:
    """The last step of every feature vector: L2-normalise in float64, or zero what is only
    rounding noise, then store as float32."""
    vector = np.array(components, dtype=np.float64)
    norm = float(np.sqrt(vector @ vector))
    if norm > _ZERO_NORM:
        vector /= norm
    else:
        # Uniform distributions leave only rounding noise (~1e-15); normalising that would turn
        # "no information" into an arbitrary unit vector.
        vector[:] = 0.0
    return vector.astype(np.float32)


def raw_probability_vector(highlevel: Mapping[str, object]) -> FeatureVector:
    """The prototype's naive vector, kept as an evaluation baseline (float32, shape (RAW_DIM,)).

    Every `all` probability in layout order, both labels of binary models, as is: not clipped, not
    centred, not normalised. Missing or non-numeric values are 0.
    """
    out: list[float] = []
    for model, labels, _scale, _is_binary in _PLAN:
        distribution = _distribution(highlevel, model)
        for label in labels:
            probability = None if distribution is None else _probability(distribution.get(label))
            out.append(0.0 if probability is None else probability)
    return np.asarray(out, dtype=np.float32)


@dataclass(frozen=True)
class Trait:
    """A perceptual trait users can filter and aim at (Spotify-style min/max/target): the probability
    that the model `model` gives to `label`, e.g. mood_happy's "happy"."""

    name: str
    model: str
    label: str


# The binary classifiers' positive sides, in a fixed order (the payload and the API use the names).
TRAITS: tuple[Trait, ...] = (
    Trait("danceability", "danceability", "danceable"),
    Trait("acoustic", "mood_acoustic", "acoustic"),
    Trait("aggressive", "mood_aggressive", "aggressive"),
    Trait("electronic", "mood_electronic", "electronic"),
    Trait("happy", "mood_happy", "happy"),
    Trait("party", "mood_party", "party"),
    Trait("relaxed", "mood_relaxed", "relaxed"),
    Trait("sad", "mood_sad", "sad"),
    Trait("instrumental", "voice_instrumental", "instrumental"),
    Trait("tonal", "tonal_atonal", "tonal"),
    Trait("bright", "timbre", "bright"),
)


def _raw_column(model: str, label: str) -> int:
    column = 0
    for block in FEATURE_LAYOUT:
        if block.model == model:
            return column + block.labels.index(label)
        column += len(block.labels)
    raise KeyError(model)


TRAIT_COLUMNS: tuple[int, ...] = tuple(_raw_column(t.model, t.label) for t in TRAITS)
"""Where each trait's probability sits in a raw (RAW_DIM) row, in TRAITS order."""


def trait_values(highlevel: Mapping[str, object]) -> tuple[float | None, ...]:
    """Each trait's probability, in TRAITS order: None where the model or label is missing, not a
    number, or outside [0, 1]."""
    out: list[float | None] = []
    for trait in TRAITS:
        distribution = _distribution(highlevel, trait.model)
        value = None if distribution is None else _probability(distribution.get(trait.label))
        out.append(value if value is not None and 0.0 <= value <= 1.0 else None)
    return tuple(out)
