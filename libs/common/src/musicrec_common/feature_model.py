"""The corpus-fitted feature model: turns clr-v1 vectors into the vectors the index stores.

Why another step after `features.build_feature_vector`? The CLR transform removes the component that
every *probability distribution* shares, but not the one that every *track of the corpus* shares.
Each classifier has labels it favours whatever the input (a bias of its training data and of the
music people submitted), so the clr-v1 vectors of unrelated tracks still point in roughly the same
direction (the real fixtures of three different recordings have pairwise cosines 0.4–0.8), and a
cosine ranking measures "how typical is this track" as much as "how alike are these two tracks".

`fit` estimates that common component from the corpus itself: the per-column mean and standard
deviation. `FeatureModel.transform` then

1. centres every column on the corpus mean, so that a column says how a track *differs from the
   typical track*, and the cosine of two random tracks is centred near 0;
2. divides every column by its corpus standard deviation, so that a classifier whose output barely
   varies does not count less than one that swings widely (this also undoes clr-v1's own block
   weights, which is why the weights are applied again in step 3);
3. multiplies every column of group g by w_g/√d_g (d_g = the group's column count). After step 2 each
   column adds about 1 to the squared norm, so without this a group would weigh as many columns as it
   has: the four genre models have 32 of the 59 columns and would drown the five single-column
   groups. With it, group g adds about w_g² whatever its size: `group_weights` are shares of the
   squared norm, w_g² / Σ w²;
4. L2-normalises each row, so that the index's cosine is a plain dot product.

Missing data stays neutral. In clr-v1 a block that is entirely zero means "this classifier said
nothing" (a missing model, or a uniform distribution). Centring would turn that zero into −mean/scale,
i.e. invent an opinion, so an all-zero block stays zero through the transform and does not count in
the fit's statistics of its columns. An all-zero row (no usable classifier at all) is the case where
every block is missing: it is ignored by `fit` and stays all zeros through `transform`.

Versioning. Vectors transformed by one model are not comparable with vectors transformed by another:
an index built with one model must never be queried with another. `FeatureModel.model_id` names a
model exactly: `fm-v1:<fingerprint>`, where `fm-v1` names the formula above (and its clr-v1 input) and
the fingerprint is a hash of every parameter. Store the id with the index and compare it before
querying. `to_json`/`from_json` save and load a model bit for bit, so a reloaded model has the same id.

A small corpus gives unreliable statistics, so `fit` adds `prior_count` pseudo-rows of mean 0 and
standard deviation `prior_scale` (see `fit` for the formula). With no data at all the model is then
the identity up to a global factor (which the final L2 normalisation cancels): centring does nothing
and every column has the same scale, so only the group weights act.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from musicrec_common.features import FEATURE_DIM, FEATURE_LAYOUT, FEATURE_MODEL_VERSION
from musicrec_common.model import FeatureVector

__all__ = [
    "DEFAULT_GROUP_WEIGHTS",
    "DEFAULT_PRIOR_COUNT",
    "FEATURE_MODEL_SCHEME",
    "GROUPS",
    "GROUP_MODELS",
    "PRIOR_SCALE",
    "SCALE_FLOOR",
    "FeatureModel",
    "FeatureModelError",
    "block_columns",
    "fit",
    "fit_chunks",
    "group_agreement",
    "group_columns",
    "group_of_model",
]

FEATURE_MODEL_SCHEME: Final = "fm-v1"
"""The formula of this module. A new formula (not new parameters) needs a new scheme."""

GROUP_MODELS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "genre": ("genre_dortmund", "genre_rosamerica", "genre_tzanetakis", "genre_electronic"),
        "mood": (
            "mood_acoustic",
            "mood_aggressive",
            "mood_electronic",
            "mood_happy",
            "mood_party",
            "mood_relaxed",
            "mood_sad",
            "moods_mirex",
        ),
        "danceability": ("danceability",),
        "voice": ("voice_instrumental",),
        "gender": ("gender",),
        "timbre": ("timbre",),
        "tonality": ("tonal_atonal",),
        "rhythm": ("ismir04_rhythm",),
    }
)
"""The classifier models (`FeatureBlock.model`) of each group."""

GROUPS: tuple[str, ...] = tuple(GROUP_MODELS)
"""The group names, in a fixed order (the order of `group_agreement`'s result and of the JSON)."""

_TUNED_WEIGHTS = {"genre": 2.0, "mood": 1.5, "rhythm": 1.0}
DEFAULT_GROUP_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {group: _TUNED_WEIGHTS.get(group, 0.5) for group in GROUPS}
)
"""genre 2, mood 1.5, rhythm 1, each single-classifier group (danceability, voice, gender, timbre,
tonality) 0.5 — chosen with benchmarks/vector_design.py (docs/benchmarks.md, "Vector design").

A group's share of a transformed vector's squared norm is about w² / Σ w²: here genre about 0.5, mood
about 0.3, rhythm 0.1 and each single-classifier group 0.03. With equal weights the five
single-column groups would hold over half of it, and each is one noisy binary classifier; style
precision fell from 0.84 (clr-v1) to 0.46 that way.
"""

DEFAULT_PRIOR_COUNT: Final = 100.0
"""Pseudo-rows of the prior (see `fit`): a corpus of 100 rows is trusted half."""

PRIOR_SCALE: Final = 1.0 / math.sqrt(FEATURE_DIM)
"""The prior's standard deviation per column: that of a random unit vector of FEATURE_DIM components,
i.e. the typical size of a clr-v1 component. Any value gives the same transform when there is no data
(a common factor cancels in the L2 normalisation); this one mixes sensibly with real statistics."""

SCALE_FLOOR: Final = 1e-3
"""Smallest scale `fit` returns: a (nearly) constant column must not be blown up into noise."""

# Rows handled at once by `fit` and `transform`: bounds the float64 temporaries (~15 MB).
_CHUNK_ROWS = 1 << 15
# Below this a transformed row is rounding noise, and becomes zero rather than an arbitrary direction.
_ZERO_NORM = 1e-9
_PAYLOAD_KEYS = frozenset({"scheme", "input", "dim", "fitted_on", "group_weights", "mean", "scale"})


class FeatureModelError(ValueError):
    """Bad input to this module: wrong shape, non-finite values, bad parameters, a malformed model file."""


# ---------------------------------------------------------------------------------------------------
# Layout: where each block and group sits in the clr-v1 vector, derived from FEATURE_LAYOUT.


def _block_spans() -> dict[str, range]:
    spans: dict[str, range] = {}
    start = 0
    for block in FEATURE_LAYOUT:
        spans[block.model] = range(start, start + block.dim)
        start += block.dim
    assert start == FEATURE_DIM
    return spans


def _group_of_model() -> dict[str, str]:
    owner: dict[str, str] = {}
    for group, models in GROUP_MODELS.items():
        for model in models:
            if model in owner:
                raise RuntimeError(f"model {model!r} is in both groups {owner[model]!r} and {group!r}")
            owner[model] = group
    layout = {block.model for block in FEATURE_LAYOUT}
    if set(owner) != layout:
        raise RuntimeError(
            "GROUP_MODELS does not match FEATURE_LAYOUT: "
            f"without a group {sorted(layout - set(owner))}, not in the layout {sorted(set(owner) - layout)}"
        )
    return owner


_BLOCK_SPANS: Final = _block_spans()
_GROUP_OF_MODEL: Final = _group_of_model()
_GROUP_COLUMNS: Final = {
    group: tuple(sorted(column for model in models for column in _BLOCK_SPANS[model]))
    for group, models in GROUP_MODELS.items()
}
# For `_present_columns`: where each block starts, and the block of each column.
_BLOCK_STARTS: Final = np.array([_BLOCK_SPANS[block.model].start for block in FEATURE_LAYOUT], dtype=np.intp)
_COLUMN_BLOCK: Final = np.repeat(np.arange(len(FEATURE_LAYOUT)), [block.dim for block in FEATURE_LAYOUT])


def block_columns(model: str) -> range:
    """The columns of one classifier model (`FeatureBlock.model`) in a clr-v1 vector."""
    try:
        return _BLOCK_SPANS[model]
    except KeyError:
        raise FeatureModelError(f"unknown model {model!r}; the models are {sorted(_BLOCK_SPANS)}") from None


def group_of_model(model: str) -> str:
    """The group a classifier model belongs to."""
    try:
        return _GROUP_OF_MODEL[model]
    except KeyError:
        raise FeatureModelError(f"unknown model {model!r}; the models are {sorted(_BLOCK_SPANS)}") from None


def group_columns(group: str) -> tuple[int, ...]:
    """The columns of a group in a clr-v1 (or transformed) vector, ascending. Not always contiguous."""
    try:
        return _GROUP_COLUMNS[group]
    except KeyError:
        raise FeatureModelError(f"unknown group {group!r}; the groups are {list(GROUPS)}") from None


def _present_columns(matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Per entry: does its block hold any non-zero value in that row? (An all-zero block is missing.)"""
    present_blocks = np.logical_or.reduceat(matrix != 0.0, _BLOCK_STARTS, axis=1)
    return present_blocks[:, _COLUMN_BLOCK]


# ---------------------------------------------------------------------------------------------------
# Input validation.


def _as_array(vectors: npt.ArrayLike, what: str) -> npt.NDArray[Any]:
    try:
        array = np.asarray(vectors)
    except (TypeError, ValueError) as error:
        raise FeatureModelError(f"{what}: not an array of numbers ({error})") from None
    if array.dtype.kind not in "fiu":
        raise FeatureModelError(f"{what}: expected real numbers, got an array of dtype {array.dtype}")
    return array


def _check_matrix_shape(array: npt.NDArray[Any], what: str) -> None:
    if array.ndim != 2 or array.shape[1] != FEATURE_DIM:
        raise FeatureModelError(f"{what}: expected shape (n, {FEATURE_DIM}), got {array.shape}")


def _finite_float64(chunk: npt.NDArray[Any], what: str, first_row: int) -> npt.NDArray[np.float64]:
    """The chunk as float64 (a copy only if it is not float64 already), after checking it is finite."""
    matrix = np.asarray(chunk, dtype=np.float64)
    finite = np.isfinite(matrix)
    if not finite.all():
        row = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise FeatureModelError(f"{what}: row {first_row + row} contains NaN or infinity")
    return matrix


def _vector(values: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    array = _as_array(values, what)
    if array.shape != (FEATURE_DIM,):
        raise FeatureModelError(f"{what}: expected shape ({FEATURE_DIM},), got {array.shape}")
    vector = np.asarray(array, dtype=np.float64)
    if not np.isfinite(vector).all():
        raise FeatureModelError(f"{what}: contains NaN or infinity")
    return vector


def _number(value: object, what: str) -> float:
    """A JSON/Python number as float; bools, strings and overflowing ints are not numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise FeatureModelError(f"{what}: expected a number, got {value!r}")
    try:
        return float(value)
    except OverflowError:
        raise FeatureModelError(f"{what}: {value!r} is too large") from None


def _validated_weights(weights: Mapping[str, float]) -> Mapping[str, float]:
    if not isinstance(weights, Mapping):
        raise FeatureModelError(f"group_weights: expected a mapping, got {type(weights).__name__}")
    unknown = sorted(set(weights) - set(GROUPS), key=str)
    missing = [group for group in GROUPS if group not in weights]
    if unknown or missing:
        raise FeatureModelError(
            f"group_weights: needs exactly the groups {list(GROUPS)}; missing {missing}, unknown {unknown}"
        )
    checked: dict[str, float] = {}
    for group in GROUPS:
        weight = _number(weights[group], f"group_weights[{group!r}]")
        if not math.isfinite(weight) or weight < 0.0:
            raise FeatureModelError(
                f"group_weights[{group!r}]: expected a finite number >= 0, got {weight!r}"
            )
        checked[group] = weight
    if not any(checked.values()):
        raise FeatureModelError("group_weights: at least one weight must be positive")
    return MappingProxyType(checked)


def _parameter_vector(values: object, what: str) -> npt.NDArray[np.float64]:
    try:
        vector = np.array(values, dtype=np.float64)  # always a copy: the model owns its parameters
    except (TypeError, ValueError, OverflowError) as error:
        raise FeatureModelError(f"{what}: not a vector of numbers ({error})") from None
    if vector.shape != (FEATURE_DIM,):
        raise FeatureModelError(f"{what}: expected {FEATURE_DIM} values, got shape {vector.shape}")
    if not np.isfinite(vector).all():
        raise FeatureModelError(f"{what}: contains NaN or infinity")
    vector.flags.writeable = False
    return vector


# ---------------------------------------------------------------------------------------------------
# The model.


@dataclass(frozen=True, eq=False, repr=False)
class FeatureModel:
    """A fitted feature model: the parameters of the transform described in the module docstring.

    Immutable (the arrays are read-only copies). Two models are equal, and have the same `model_id`,
    exactly when every parameter is bit-for-bit equal. Construct with `fit` or `from_json`; the
    constructor validates but does not fit.
    """

    mean: npt.NDArray[np.float64]
    """Per column, subtracted first. Shape (FEATURE_DIM,)."""
    scale: npt.NDArray[np.float64]
    """Per column, divides after centring; finite and > 0. Shape (FEATURE_DIM,)."""
    group_weights: Mapping[str, float]
    """w_g for every group of GROUPS (finite, >= 0, not all 0)."""
    fitted_on: int
    """How many rows the statistics came from (all-zero rows excluded; the prior not counted)."""
    scheme: str = FEATURE_MODEL_SCHEME
    """The formula; only FEATURE_MODEL_SCHEME is known."""

    _column_weights: npt.NDArray[np.float64] = field(init=False, repr=False)
    _factor: npt.NDArray[np.float64] = field(init=False, repr=False)
    _canonical: str = field(init=False, repr=False)
    _model_id: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.scheme != FEATURE_MODEL_SCHEME:
            raise FeatureModelError(
                f"unknown feature model scheme {self.scheme!r}; this code knows {FEATURE_MODEL_SCHEME!r}"
            )
        mean = _parameter_vector(self.mean, "mean")
        scale = _parameter_vector(self.scale, "scale")
        if not (scale > 0.0).all():
            raise FeatureModelError(f"scale: every value must be > 0, got {float(scale.min())!r}")
        weights = _validated_weights(self.group_weights)
        fitted_on = self.fitted_on
        if isinstance(fitted_on, bool) or not isinstance(fitted_on, int | np.integer) or fitted_on < 0:
            raise FeatureModelError(f"fitted_on: expected an integer >= 0, got {fitted_on!r}")

        column_weights = np.empty(FEATURE_DIM, dtype=np.float64)
        for group, columns in _GROUP_COLUMNS.items():
            column_weights[list(columns)] = weights[group] / math.sqrt(len(columns))
        column_weights.flags.writeable = False
        factor = column_weights / scale
        factor.flags.writeable = False

        set_field = object.__setattr__  # the dataclass is frozen
        set_field(self, "mean", mean)
        set_field(self, "scale", scale)
        set_field(self, "group_weights", weights)
        set_field(self, "fitted_on", int(fitted_on))
        set_field(self, "_column_weights", column_weights)
        set_field(self, "_factor", factor)
        canonical = json.dumps(self._payload(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        set_field(self, "_canonical", canonical)
        fingerprint = hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]
        set_field(self, "_model_id", f"{self.scheme}:{fingerprint}")

    # -- identity ------------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        """`fm-v1:<16 hex digits>`: the first 16 hex digits of the SHA-256 of the canonical JSON of all
        parameters (sorted keys, no spaces, floats in Python's shortest round-trip form)."""
        return self._model_id

    @property
    def column_weights(self) -> npt.NDArray[np.float64]:
        """w_g/√d_g for every column (read-only): the weighting step of `transform`."""
        return self._column_weights

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeatureModel):
            return NotImplemented
        return self._canonical == other._canonical

    def __hash__(self) -> int:
        return hash(self._canonical)

    def __repr__(self) -> str:
        weights = ", ".join(f"{group}={weight:g}" for group, weight in self.group_weights.items())
        return f"FeatureModel(model_id={self.model_id!r}, fitted_on={self.fitted_on}, weights=({weights}))"

    def __reduce__(self) -> tuple[type[FeatureModel], tuple[Any, ...]]:
        # MappingProxyType cannot be pickled; rebuild through the validating constructor instead.
        return (FeatureModel, (self.mean, self.scale, dict(self.group_weights), self.fitted_on, self.scheme))

    # -- transform -----------------------------------------------------------------------------------

    def transform(self, vectors: npt.ArrayLike) -> FeatureVector:
        """The indexed vectors of clr-v1 vectors: float32, shape (n, FEATURE_DIM), or (FEATURE_DIM,) for a
        single 1-d vector.

        Per row: z = (x − mean)/scale · w_g/√d_g, with every all-zero block of x kept at 0 (a missing
        classifier says nothing); then z/‖z‖, or all zeros when ‖z‖ ≤ 1e-9 (in particular for an
        all-zero row). Rows are processed in chunks: memory beyond the output stays bounded.
        """
        array = _as_array(vectors, "transform input")
        single = array.ndim == 1
        if single:
            if array.shape != (FEATURE_DIM,):
                expected = f"({FEATURE_DIM},) or (n, {FEATURE_DIM})"
                raise FeatureModelError(f"transform input: expected shape {expected}, got {array.shape}")
            array = array[np.newaxis, :]
        else:
            _check_matrix_shape(array, "transform input")
        out = np.empty(array.shape, dtype=np.float32)
        for start in range(0, array.shape[0], _CHUNK_ROWS):
            chunk = _finite_float64(array[start : start + _CHUNK_ROWS], "transform input", start)
            out[start : start + chunk.shape[0]] = self._transform_chunk(chunk)
        return out[0] if single else out

    def _transform_chunk(self, matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        z = (matrix - self.mean) * self._factor
        z[~_present_columns(matrix)] = 0.0
        norms = np.sqrt(np.einsum("ij,ij->i", z, z))
        usable = norms > _ZERO_NORM
        z[usable] /= norms[usable, np.newaxis]
        z[~usable] = 0.0
        return z

    # -- persistence ---------------------------------------------------------------------------------

    def _payload(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "input": FEATURE_MODEL_VERSION,
            "dim": FEATURE_DIM,
            "fitted_on": self.fitted_on,
            "group_weights": dict(self.group_weights),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
        }

    def to_json(self) -> str:
        """The model as JSON, with its `model_id`. Floats are written in Python's shortest round-trip
        form (`repr`), so `from_json` restores every parameter bit for bit."""
        payload = self._payload()
        payload["model_id"] = self.model_id
        return json.dumps(payload, indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> FeatureModel:
        """The model `to_json` wrote. Raises FeatureModelError on anything else: invalid JSON, an unknown
        scheme, another input vector version or dimension, missing or unknown keys, a wrong-length or
        non-finite parameter, or a stored `model_id` that does not match the parameters."""
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, TypeError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise FeatureModelError(f"feature model: not valid JSON ({error})") from None
        if not isinstance(data, dict):
            raise FeatureModelError(f"feature model: expected a JSON object, got {type(data).__name__}")
        scheme = data.get("scheme")
        if scheme != FEATURE_MODEL_SCHEME:
            raise FeatureModelError(
                f"feature model: unknown scheme {scheme!r}; this code reads {FEATURE_MODEL_SCHEME!r}"
            )
        missing = sorted(_PAYLOAD_KEYS - set(data))
        unknown = sorted(set(data) - _PAYLOAD_KEYS - {"model_id"})
        if missing or unknown:
            raise FeatureModelError(f"feature model: missing keys {missing}, unknown keys {unknown}")
        if data["input"] != FEATURE_MODEL_VERSION:
            raise FeatureModelError(
                f"feature model: fitted on {data['input']!r} vectors; "
                f"this code builds {FEATURE_MODEL_VERSION!r} vectors"
            )
        if data["dim"] != FEATURE_DIM or isinstance(data["dim"], bool):
            raise FeatureModelError(f"feature model: dim is {data['dim']!r}; this code builds {FEATURE_DIM}")
        weights = data["group_weights"]
        if not isinstance(weights, dict):
            raise FeatureModelError(f"group_weights: expected an object, got {type(weights).__name__}")
        model = cls(
            mean=_json_vector(data["mean"], "mean"),
            scale=_json_vector(data["scale"], "scale"),
            group_weights=weights,
            fitted_on=data["fitted_on"],
            scheme=scheme,
        )
        stored_id = data.get("model_id")
        if stored_id is not None and stored_id != model.model_id:
            raise FeatureModelError(
                f"feature model: stored model_id {stored_id!r} does not match its parameters "
                f"({model.model_id!r}); the file was edited or corrupted"
            )
        return model


def _reject_constant(name: str) -> float:
    raise FeatureModelError(f"feature model: {name} is not allowed")


def _json_vector(values: object, what: str) -> npt.NDArray[np.float64]:
    if not isinstance(values, list):
        raise FeatureModelError(
            f"{what}: expected a list of {FEATURE_DIM} numbers, got {type(values).__name__}"
        )
    if len(values) != FEATURE_DIM:
        raise FeatureModelError(f"{what}: expected {FEATURE_DIM} numbers, got {len(values)}")
    return np.array([_number(value, f"{what}[{index}]") for index, value in enumerate(values)])


# ---------------------------------------------------------------------------------------------------
# Fitting.


def fit(
    vectors: npt.ArrayLike,
    *,
    group_weights: Mapping[str, float] = DEFAULT_GROUP_WEIGHTS,
    prior_count: float = DEFAULT_PRIOR_COUNT,
    prior_scale: float = PRIOR_SCALE,
) -> FeatureModel:
    """Fit a model on clr-v1 vectors, shape (n, FEATURE_DIM); n may be 0.

    Per column j, over the rows in which j's block is present (not all zero), n_j of them:

        total_j = n_j + prior_count
        mean_j  = Σ x_ij / total_j
        var_j   = (Σ x_ij² + prior_count · prior_scale²) / total_j − mean_j²
        scale_j = max(√var_j, SCALE_FLOOR)

    i.e. the mean and (population) variance of the data pooled with `prior_count` pseudo-rows of mean 0
    and standard deviation `prior_scale`. With n_j ≫ prior_count they are the data's own; with no data
    (or total_j = 0) they are 0 and `prior_scale`. Sums are accumulated in float64 over chunks of rows
    (a float32 or memory-mapped input is never copied whole), in a fixed order: the same input gives
    the same model. `fit_chunks` does the same over an iterable of chunks.
    """
    array = _as_array(vectors, "fit input")
    _check_matrix_shape(array, "fit input")
    chunks = (array[start : start + _CHUNK_ROWS] for start in range(0, array.shape[0], _CHUNK_ROWS))
    return fit_chunks(chunks, group_weights=group_weights, prior_count=prior_count, prior_scale=prior_scale)


def fit_chunks(
    chunks: Iterable[npt.ArrayLike],
    *,
    group_weights: Mapping[str, float] = DEFAULT_GROUP_WEIGHTS,
    prior_count: float = DEFAULT_PRIOR_COUNT,
    prior_scale: float = PRIOR_SCALE,
) -> FeatureModel:
    """`fit` over a stream of (m, FEATURE_DIM) chunks, e.g. pages scrolled from the vector store.

    The result equals `fit` of the concatenated rows up to rounding; it is bit-for-bit the same only
    for the same chunk boundaries (and so the same `model_id`).
    """
    weights = _validated_weights(group_weights)  # before reading any data
    prior = _number(prior_count, "prior_count")
    if not math.isfinite(prior) or prior < 0.0:
        raise FeatureModelError(f"prior_count: expected a finite number >= 0, got {prior_count!r}")
    prior_sd = _number(prior_scale, "prior_scale")
    if not math.isfinite(prior_sd) or prior_sd <= 0.0:
        raise FeatureModelError(f"prior_scale: expected a finite number > 0, got {prior_scale!r}")

    counts = np.zeros(FEATURE_DIM, dtype=np.float64)
    sums = np.zeros(FEATURE_DIM, dtype=np.float64)
    squares = np.zeros(FEATURE_DIM, dtype=np.float64)
    used_rows = 0
    for chunk in _checked_chunks(chunks):
        present = _present_columns(chunk)
        counts += present.sum(axis=0)
        sums += chunk.sum(axis=0)  # a missing block is all zeros: it adds nothing
        squares += np.einsum("ij,ij->j", chunk, chunk)
        used_rows += int(present.any(axis=1).sum())

    total = counts + prior
    prior_var = prior_sd * prior_sd
    has_weight = total > 0.0
    mean = np.divide(sums, total, out=np.zeros(FEATURE_DIM), where=has_weight)
    second = np.divide(
        squares + prior * prior_var, total, out=np.full(FEATURE_DIM, prior_var), where=has_weight
    )
    variance = np.maximum(second - mean * mean, 0.0)
    scale = np.maximum(np.sqrt(variance), SCALE_FLOOR)
    return FeatureModel(mean=mean, scale=scale, group_weights=weights, fitted_on=used_rows)


def _checked_chunks(chunks: Iterable[npt.ArrayLike]) -> Iterator[npt.NDArray[np.float64]]:
    first_row = 0
    for index, chunk in enumerate(chunks):
        what = f"fit input chunk {index}"
        array = _as_array(chunk, what)
        _check_matrix_shape(array, what)
        yield _finite_float64(array, "fit input", first_row)
        first_row += array.shape[0]


# ---------------------------------------------------------------------------------------------------
# Explaining a similarity.


def group_agreement(a: npt.ArrayLike, b: npt.ArrayLike) -> dict[str, float]:
    """Each group's share of the dot product of two transformed vectors, in GROUPS order.

    Value of g = Σ a_i·b_i over g's columns; the values sum to a·b, which is the cosine for the unit
    vectors `transform` returns. Positive: the group pulls the tracks together; negative: apart.
    """
    products = _vector(a, "group_agreement a") * _vector(b, "group_agreement b")
    return {group: math.fsum(products[list(columns)].tolist()) for group, columns in _GROUP_COLUMNS.items()}
