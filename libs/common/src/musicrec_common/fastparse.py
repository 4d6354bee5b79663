"""A fast path for parsing high-level documents, with exactly the results of `parse_document_detailed`.

`parse_document_detailed` decodes the whole document with orjson into dicts (~400 Python objects,
most of them never looked at), then walks them with `isinstance` checks. Here msgspec decodes the
document straight into typed structs that hold only what the parser uses — the 18 models' `all`,
`value` and `probability`, and the tags — plus small structs for the parts it does not use. The
track is then built from the structs with the reference parser's own helpers (`normalize_text`,
`parse_release_date`, `is_placeholder_title`, `_canonical_mbid`) behind small caches, and the
feature vector by `clr_feature_vector`, which repeats `build_feature_vector`'s arithmetic operation
for operation, so the float32 vectors are bit-identical.

The structs describe the dump's shape precisely (spec §3–§5) and forbid unknown fields. That keeps
the fast path exact: msgspec skips unknown fields without checking them as strictly as orjson does
(a number like ``1e999`` is accepted when skipped, while orjson rejects it), so the fast path never
skips anything. Anything that does not fit — a wrong type, an unknown model or label, the legacy 2015
format, a beets-merged document, invalid JSON, an invalid MBID — is handed to
`parse_document_detailed`, which produces the result or raises the error. The fast path itself never
raises a `DocumentError`.

`parse_documents_fast` parses a batch and computes all its feature vectors at once with numpy (the
per-document Python arithmetic is about a third of `parse_document_fast`'s time): the same operations
in the same order, so the vectors agree bit for bit where numpy's log is the C library's (as on
x86-64 builds without AVX-512 kernels) and within 1e-7 anywhere. On generated dump documents,
`parse_document_fast` takes about 0.65x and `parse_documents_fast` about 0.4x the time of the
reference parser (see docs/benchmarks.md).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from array import array
from collections.abc import Sequence
from functools import reduce
from itertools import chain
from operator import add, attrgetter
from typing import Any, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt
from msgspec import UNSET, UnsetType

from musicrec_common.acousticbrainz import (
    DocumentError,
    _canonical_mbid,
    _lowercase_keys,
    parse_document_detailed,
)
from musicrec_common.dates import DateStatus, ReleaseDate, parse_release_date
from musicrec_common.features import (
    _LOG_HIGH,
    _LOG_LOW,
    _PLAN,
    _SQRT2,
    _ZERO_NORM,
    _ZEROS,
    CLIP_EPSILON,
    FEATURE_DIM,
    FEATURE_LAYOUT,
    RAW_DIM,
    TRAIT_COLUMNS,
    TRAITS,
    unit_vector,
)
from musicrec_common.model import FeatureVector, GenrePrediction, ParsedDocument, Track
from musicrec_common.placeholders import is_placeholder_title
from musicrec_common.text import normalize_text

__all__ = [
    "DocumentInput",
    "FastBatch",
    "clr_feature_matrix",
    "clr_feature_vector",
    "parse_document_fast",
    "parse_documents_fast",
    "trait_matrix",
]

_NAN = math.nan
_UTF8_BOM = b"\xef\xbb\xbf"
_MBID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MULTI_SPACE = re.compile(r"\s+")

# --------------------------------------------------------------------------------------------------
# The typed shape of a dump document (spec §3–§5). Every struct forbids unknown fields (see above).


class _ModelVersion(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A classifier entry's `version` (spec §4): parsed so that nothing goes unchecked, not used."""

    essentia: str | UnsetType = UNSET
    essentia_build_sha: str | UnsetType = UNSET
    essentia_git_sha: str | UnsetType = UNSET
    extractor: str | UnsetType = UNSET
    gaia: str | UnsetType = UNSET
    gaia_git_sha: str | UnsetType = UNSET
    models_essentia_git_sha: str | UnsetType = UNSET


class _Entry(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One classifier entry. Each model has a subclass whose `all` is a struct of its labels."""

    all: msgspec.Struct | UnsetType = UNSET
    value: str | UnsetType = UNSET
    probability: float | UnsetType = UNSET
    version: _ModelVersion | UnsetType = UNSET


def _label_struct(model: str, labels: tuple[str, ...]) -> type[msgspec.Struct]:
    """`all` of one model: a float per label in label order, NaN when the label is absent."""
    fields = [(f"p{i}", float, _NAN) for i in range(len(labels))]
    rename = {f"p{i}": label for i, label in enumerate(labels)}
    return msgspec.defstruct(f"_All_{model}", fields, rename=rename, forbid_unknown_fields=True, gc=False)


def _entry_struct(model: str, labels: tuple[str, ...]) -> Any:
    """An `_Entry` whose `all` is the model's label struct (Any: a type built at run time)."""
    fields = [("all", _label_struct(model, labels) | UnsetType, UNSET)]
    return msgspec.defstruct(f"_Entry_{model}", fields, bases=(_Entry,), forbid_unknown_fields=True, gc=False)


# The 18 models, in FEATURE_LAYOUT order (so `astuple` lists the entries in that order).
_HighLevel = msgspec.defstruct(
    "_HighLevel",
    [(block.model, _entry_struct(block.model, block.labels) | UnsetType, UNSET) for block in FEATURE_LAYOUT],
    forbid_unknown_fields=True,
    gc=False,
)

# Tag values are lists of strings, except `file_name`, a plain string (spec §5.3).
_Tags = dict[str, list[str] | str]


class _Metadata(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    tags: _Tags | UnsetType | None = UNSET
    # Numbers are decoded as floats, which rejects the overflowing ones exactly as orjson does.
    audio_properties: dict[str, float | str | bool | None] | UnsetType = UNSET
    # 2016+ format: {"highlevel": {…}, "lowlevel": {…}}; 2015 format: flat strings (spec §5.1).
    version: dict[str, dict[str, str] | str] | UnsetType = UNSET


# The document itself: `highlevel` is required, `metadata` may be absent or null (spec §3).
_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
    msgspec.defstruct(
        "_Document",
        [("highlevel", _HighLevel), ("metadata", _Metadata | None | UnsetType, UNSET)],
        forbid_unknown_fields=True,
        gc=False,
    )
)
_astuple = msgspec.structs.astuple

# Block plans in FEATURE_LAYOUT order: (start column in the raw vector, label count).
_BLOCK_SPANS: tuple[tuple[int, int], ...] = tuple(
    (sum(len(b.labels) for b in FEATURE_LAYOUT[:i]), len(block.labels))
    for i, block in enumerate(FEATURE_LAYOUT)
)
_NAN_BLOCKS: tuple[tuple[float, ...], ...] = tuple((_NAN,) * len(block.labels) for block in FEATURE_LAYOUT)
# Each model's position in FEATURE_LAYOUT.
_BLOCK_INDEX = {block.model: i for i, block in enumerate(FEATURE_LAYOUT)}
_ROSAMERICA = _BLOCK_INDEX["genre_rosamerica"]
_DORTMUND = _BLOCK_INDEX["genre_dortmund"]
_TZANETAKIS = _BLOCK_INDEX["genre_tzanetakis"]

# --------------------------------------------------------------------------------------------------
# Cached helpers. Every cache is a plain dict, emptied when it grows past _CACHE_LIMIT entries.

_CACHE_LIMIT = 1 << 16
_placeholder_cache: dict[str, bool] = {}
_date_cache: dict[str, ReleaseDate] = {}
_date_cache_limit = [0]  # the max_year the date cache was filled with


def _clean(value: str) -> str | None:
    """`normalize_text` of a string, with a shortcut for printable ASCII.

    In printable ASCII the only whitespace is " " (tab, newlines and the other controls are not
    printable) and NFC changes nothing, so `normalize_text` reduces to collapsing runs of spaces and
    stripping. Everything else goes to `normalize_text` itself.
    """
    if value.isascii() and value.isprintable():
        if "  " in value:
            value = _MULTI_SPACE.sub(" ", value)
        return value.strip() or None
    return normalize_text(value)


def _first_text(value: list[str] | str | None) -> str | None:
    """`acousticbrainz._first_text` for typed tag values: the first non-empty cleaned string."""
    if value is None:
        return None
    if isinstance(value, str):
        return _clean(value)
    for item in value:
        text = _clean(item)
        if text is not None:
            return text
    return None


def _placeholder(title: str | None) -> bool:
    if title is None:
        return False
    cached = _placeholder_cache.get(title)
    if cached is None:
        if len(_placeholder_cache) >= _CACHE_LIMIT:
            _placeholder_cache.clear()
        cached = _placeholder_cache[title] = is_placeholder_title(title)
    return cached


# [when the cached year was computed (time.time()), when to compute it again, this year + 1]
_year_cache = [math.inf, 0.0, 0]


def _max_year() -> int:
    """`parse_release_date`'s default max_year (next year, local date), read per call — cheaply:
    `date.today()` is only asked again once the local date may have changed."""
    now = time.time()
    computed, until, year = _year_cache
    if not computed <= now < until:  # stale, or the clock went back
        today = dt.date.today()
        tomorrow = dt.datetime.combine(today + dt.timedelta(days=1), dt.time()).timestamp()
        # Ask again at local midnight, and at least hourly in case the clock or the time zone moves.
        _year_cache[:] = [now, min(tomorrow, now + 3600.0), today.year + 1]
        year = today.year + 1
    return int(year)


_MISSING = ReleaseDate(None, None, DateStatus.MISSING)
_INVALID = ReleaseDate(None, None, DateStatus.INVALID)


def _release(tags: dict[str, list[str] | str]) -> ReleaseDate:
    """`release_date_from_tags` for tags whose keys are all lower-case (each key then stands for
    itself), with `parse_release_date` results cached per value."""
    original, date, year = tags.get("originaldate"), tags.get("date"), tags.get("year")
    if original is None and date is None and year is None:
        return _MISSING
    limit = _max_year()
    cache = _date_cache
    if _date_cache_limit[0] != limit or len(cache) >= _CACHE_LIMIT:
        cache.clear()
        _date_cache_limit[0] = limit
    saw_invalid = False
    for value in (original, date, year):
        if value is None:
            continue
        for raw in (value,) if isinstance(value, str) else value:
            parsed = cache.get(raw)
            if parsed is None:
                parsed = cache[raw] = parse_release_date(raw, limit)
            if parsed.status is DateStatus.OK:
                return parsed
            if parsed.status is DateStatus.INVALID:
                saw_invalid = True
    return _INVALID if saw_invalid else _MISSING


def _genre(entry: Any) -> GenrePrediction | None:
    """`acousticbrainz._genre` for a typed entry (a probability decoded as float is finite)."""
    if entry is UNSET:
        return None
    label, probability = entry.value, entry.probability
    if label is UNSET or not label or probability is UNSET:
        return None
    return GenrePrediction(label, probability)


# --------------------------------------------------------------------------------------------------
# The feature vector

# Per block: (its zero block, scale = weight/√k, is_binary).
_CLR_PLAN = tuple((_ZEROS[model], scale, is_binary) for model, _labels, scale, is_binary in _PLAN)


# Per block: (first column, end column in the flat raw vector, scale, is_binary).
_FLAT_PLAN = tuple(
    (start, start + count, scale, is_binary)
    for (start, count), (_model, _labels, scale, is_binary) in zip(_BLOCK_SPANS, _PLAN, strict=True)
)


def clr_feature_vector(blocks: Sequence[Sequence[float] | None]) -> FeatureVector:
    """`build_feature_vector` from the probabilities of each model, bit for bit.

    `blocks` has one item per block of `FEATURE_LAYOUT`, in order: None for a missing model, else the
    probabilities of the block's labels in label order, NaN where a label is missing or unusable.
    Every other value must be finite. The arithmetic is `build_feature_vector`'s, operation for
    operation and in the same order (sums left to right from 0.0, the same clipping constants, the
    same numpy normalisation), so the float32 results are identical; the tests check it.
    """
    # Plain Python: for one document's ~70 values, numpy's per-call overhead costs more than it saves
    # (measured: an index-array version was ~10% slower); batches use `clr_feature_matrix`.
    low, high, log_low, log_high = CLIP_EPSILON, 1.0 - CLIP_EPSILON, _LOG_LOW, _LOG_HIGH
    log = math.log
    if None not in blocks:
        flat = tuple(chain.from_iterable(blocks))  # type: ignore[arg-type]  # no None in it
        total = sum(flat)
        if total == total:  # every label present (a NaN would make the sum NaN)
            if min(flat) > low and max(flat) < high:
                # Clipping changes nothing: all logs from one C-level map.
                logs = list(map(log, flat))
            else:
                logs = [log_low if p <= low else log_high if p >= high else log(p) for p in flat]
            components: list[float] = []
            for start, end, scale, is_binary in _FLAT_PLAN:
                if is_binary:
                    components.append((logs[start] - logs[start + 1]) * scale / _SQRT2)
                else:
                    block = logs[start:end]
                    mean = reduce(add, block, 0.0) / (end - start)
                    components.extend([(item - mean) * scale for item in block])
            return unit_vector(components)
    # Missing models or labels: block by block, in plain Python.
    out: list[float] = []
    append = out.append
    extend = out.extend
    # NaN (a missing label) fails both comparisons below, and log(NaN) is NaN: it stays missing.
    for (zeros, scale, is_binary), values in zip(_CLR_PLAN, blocks, strict=True):
        if values is None:
            extend(zeros)
        elif is_binary:
            first, second = values
            first = log_low if first <= low else log_high if first >= high else log(first)
            second = log_low if second <= low else log_high if second >= high else log(second)
            difference = first - second
            if difference != difference:  # a label is missing: fewer than two usable labels
                extend(zeros)
            else:
                append(difference * scale / _SQRT2)
        else:
            logs = [
                log_low if value <= low else log_high if value >= high else log(value) for value in values
            ]
            total = reduce(add, logs, 0.0)
            if total == total:  # every label present (a NaN would have made the sum NaN)
                mean = total / len(logs)
                extend([(item - mean) * scale for item in logs])
                continue
            present = [item for item in logs if item == item]
            if len(present) < 2:
                extend(zeros)
                continue
            mean = reduce(add, present, 0.0) / len(present)
            extend([0.0 if item != item else (item - mean) * scale for item in logs])

    return unit_vector(out)


# --------------------------------------------------------------------------------------------------
# The fast path


def _decode(data: bytes | memoryview) -> Any:
    """The typed document, or None when it does not fit the typed shape (or is not valid JSON)."""
    if data[:3] == _UTF8_BOM:
        data = data[3:]
    try:
        return _DECODER.decode(data)
    except (msgspec.MsgspecError, ValueError, RecursionError):
        # ValueError: invalid UTF-8 inside a string surfaces as UnicodeDecodeError.
        return None


def _track(
    document: Any, mbid: str | None, submission: int | None
) -> tuple[Track, DateStatus, tuple[Any, ...]] | None:
    """The track, the date status and the 18 entries, or None where only the reference parser can say
    what happens (an invalid MBID: it raises the exact error)."""
    metadata = document.metadata
    raw_tags = None if metadata is UNSET or metadata is None else metadata.tags
    if not raw_tags:
        tags: dict[str, Any] = {}
    else:
        keys = "".join(raw_tags)
        # Lower-case keys stand for themselves; otherwise fold them exactly as the reference does.
        tags = raw_tags if keys == keys.lower() else _lowercase_keys(raw_tags)

    if mbid is not None:
        recording = mbid if _MBID_RE.fullmatch(mbid) else _canonical_mbid(mbid)
    else:
        tag_value = tags.get("musicbrainz_recordingid")
        first = tag_value[0] if isinstance(tag_value, list) and tag_value else tag_value
        recording = _canonical_mbid(first)
    if recording is None:
        return None

    entries = _astuple(document.highlevel)
    title = _first_text(tags.get("title"))
    # Keys are lower-case and unique here (folded if need be), so `_release` applies.
    release = _release(tags)
    track = Track(
        mbid=recording,
        submission=0 if submission is None else submission,
        title=title,
        artist=_first_text(tags.get("artist")),
        album=_first_text(tags.get("album")),
        release_date=release.date,
        year=release.year,
        rosamerica=_genre(entries[_ROSAMERICA]),
        dortmund=_genre(entries[_DORTMUND]),
        tzanetakis=_genre(entries[_TZANETAKIS]),
        is_placeholder_title=_placeholder(title),
    )
    return track, release.status, entries


_get_all = attrgetter("all")


def _blocks(entries: tuple[Any, ...]) -> list[tuple[float, ...] | None]:
    """Per model, its label probabilities in label order (NaN where absent), or None if it is absent."""
    try:
        # The usual case, without a Python-level loop: every model there, each with its `all`.
        return list(map(_astuple, map(_get_all, entries)))
    except (AttributeError, TypeError):  # an UNSET model or `all`
        return [None if entry is UNSET or entry.all is UNSET else _astuple(entry.all) for entry in entries]


def _raw_row(entries: tuple[Any, ...]) -> tuple[float, ...]:
    """The RAW_DIM probabilities of a document in layout order, NaN where a label or model is absent."""
    try:
        return tuple(chain.from_iterable(map(_astuple, map(_get_all, entries))))
    except (AttributeError, TypeError):  # an UNSET model or `all`
        return tuple(
            chain.from_iterable(
                missing if entry is UNSET or entry.all is UNSET else _astuple(entry.all)
                for entry, missing in zip(entries, _NAN_BLOCKS, strict=True)
            )
        )


def parse_document_fast(
    data: bytes,
    *,
    source: str,
    mbid: str | None = None,
    submission: int | None = None,
) -> tuple[ParsedDocument, DateStatus]:
    """Exactly `parse_document_detailed(data, source=…, mbid=…, submission=…)`, faster on dump
    documents: the same track and date status, the same feature vector bit for bit, the same
    `DocumentError` (subclass, reason, message) for bad input. Documents off the fast path's typed
    shape are parsed by `parse_document_detailed` itself (see the module docstring)."""
    if type(data) is bytes:
        document = _decode(data)
        if document is not None:
            built = _track(document, mbid, submission)
            if built is not None:
                track, status, entries = built
                blocks = _blocks(entries)
                return ParsedDocument(track, clr_feature_vector(blocks), _traits(blocks)), status
    return parse_document_detailed(data, source=source, mbid=mbid, submission=submission)


# Per trait: (its block's position in FEATURE_LAYOUT, the label's position in the block).
_TRAIT_PLACES = tuple(
    (_BLOCK_INDEX[t.model], FEATURE_LAYOUT[_BLOCK_INDEX[t.model]].labels.index(t.label)) for t in TRAITS
)


def _traits(blocks: Sequence[Sequence[float] | None]) -> tuple[float | None, ...]:
    """`trait_values` from a document's blocks (NaN marks a missing label)."""
    out: list[float | None] = []
    for block, label in _TRAIT_PLACES:
        values = blocks[block]
        value = None if values is None else values[label]
        out.append(value if value is not None and 0.0 <= value <= 1.0 else None)
    return tuple(out)


def trait_matrix(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """`trait_values` of many raw rows at once (see `clr_feature_matrix` for `values`): shape
    (n, len(TRAITS)), NaN where a trait is unknown."""
    traits = values[:, list(TRAIT_COLUMNS)].copy()
    with np.errstate(invalid="ignore"):
        traits[~((traits >= 0.0) & (traits <= 1.0))] = np.nan
    return traits


# --------------------------------------------------------------------------------------------------
# Batches


class DocumentInput(NamedTuple):
    """One document of a batch: its bytes and what `parse_document_fast` takes besides them.

    `data` may also be a memoryview (say, into shared memory): it is read during the call only, and
    nothing returned refers to it.
    """

    data: bytes | memoryview
    source: str
    mbid: str | None
    submission: int | None


class FastBatch(NamedTuple):
    """The results of a batch, in input order.

    `results` has one item per input document: (track, date status) or the `DocumentError` that
    `parse_document_detailed` raises for it. `features` has one row per track result, in order:
    row r belongs to the r-th item of `results` that is not an error; `traits` likewise, one row of
    `trait_values` per track result with NaN for None.
    """

    results: list[tuple[Track, DateStatus] | DocumentError]
    features: npt.NDArray[np.float32]
    traits: npt.NDArray[np.float64]


def parse_documents_fast(documents: Sequence[DocumentInput]) -> FastBatch:
    """`parse_document_fast` of every document, with the feature vectors computed for the whole batch
    at once (numpy). Errors are returned, not raised. Vectors agree with `parse_document_fast`'s
    bit for bit where numpy's log is the C library's, else within 1e-7."""
    results: list[tuple[Track, DateStatus] | DocumentError] = []
    flat = array("d")  # the raw probabilities of the fast-path documents, RAW_DIM each
    fast_rows: list[int] = []  # their rows in the output
    slow: list[tuple[int, ParsedDocument]] = []  # (row, result) of the reference parser's
    extend = flat.extend
    for data, source, mbid, submission in documents:
        built = None
        if type(data) is bytes or type(data) is memoryview:
            document = _decode(data)
            if document is not None:
                built = _track(document, mbid, submission)
        if built is not None:
            track, status, entries = built
            extend(_raw_row(entries))
            fast_rows.append(len(fast_rows) + len(slow))
            results.append((track, status))
            continue
        if type(data) is memoryview:
            data = data.tobytes()
        try:
            parsed, status = parse_document_detailed(data, source=source, mbid=mbid, submission=submission)
        except DocumentError as error:
            results.append(error)
            continue
        slow.append((len(fast_rows) + len(slow), parsed))
        results.append((parsed.track, status))

    features = np.empty((len(fast_rows) + len(slow), FEATURE_DIM), dtype=np.float32)
    traits = np.empty((len(fast_rows) + len(slow), len(TRAITS)), dtype=np.float64)
    if fast_rows:
        values = np.frombuffer(flat, dtype=np.float64).reshape(len(fast_rows), RAW_DIM)
        features[fast_rows] = clr_feature_matrix(values)
        traits[fast_rows] = trait_matrix(values)
    for row, parsed in slow:
        features[row] = parsed.features
        traits[row] = [np.nan if value is None else value for value in parsed.traits]
    return FastBatch(results, features, traits)


# --------------------------------------------------------------------------------------------------
# The vectorised numeric core

_LOW = CLIP_EPSILON
_HIGH = 1.0 - CLIP_EPSILON
# Per block: (first raw column, label count, first output column, scale = weight/√k).
_MATRIX_PLAN: tuple[tuple[int, int, int, float], ...] = tuple(
    (start, count, sum(b.dim for b in FEATURE_LAYOUT[:i]), scale)
    for i, ((start, count), (_model, _labels, scale, _binary)) in enumerate(
        zip(_BLOCK_SPANS, _PLAN, strict=True)
    )
)


def clr_feature_matrix(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """`clr_feature_vector` of many documents at once.

    `values` has shape (n, RAW_DIM): each row the label probabilities of FEATURE_LAYOUT, block after
    block, NaN where a label or model is missing; all other values finite. Returns (n, FEATURE_DIM)
    float32. Complete rows are computed with numpy, with every sum taken in the same order as the
    scalar code; rows with a missing value (rare) go through `clr_feature_vector` itself.
    """
    count = values.shape[0]
    out = np.empty((count, FEATURE_DIM), dtype=np.float32)
    if count == 0:
        return out
    incomplete = np.isnan(values).any(axis=1)
    complete_rows = np.flatnonzero(~incomplete)
    if len(complete_rows):
        # Transposed: one contiguous row per label, one column per document.
        columns = np.ascontiguousarray(values[complete_rows].T)
        logs = np.log(np.clip(columns, _LOW, _HIGH))
        # The clipped ends get the scalar code's constants (log(1 - ε) and log1p(-ε) differ).
        logs[columns <= _LOW] = _LOG_LOW
        logs[columns >= _HIGH] = _LOG_HIGH
        components = np.empty((FEATURE_DIM, len(complete_rows)), dtype=np.float64)
        for start, labels, first, scale in _MATRIX_PLAN:
            if labels == 2:
                components[first] = (logs[start] - logs[start + 1]) * scale / _SQRT2
                continue
            total = logs[start].copy()
            for column in range(start + 1, start + labels):
                total += logs[column]  # left to right, as the scalar code adds
            mean = total / labels
            components[first : first + labels] = (logs[start : start + labels] - mean) * scale
        vectors = np.ascontiguousarray(components.T)
        # The scalar code's norm: the dot product of each 1-d row with itself (BLAS ddot, whose
        # summation order a vectorised sum of squares would not reproduce), then sqrt.
        norms = np.sqrt(np.array([vector @ vector for vector in vectors], dtype=np.float64))
        unit = norms > _ZERO_NORM
        vectors[unit] /= norms[unit, None]
        vectors[~unit] = 0.0
        out[complete_rows] = vectors
    for row in np.flatnonzero(incomplete).tolist():
        blocks = [values[row, start : start + labels].tolist() for start, labels in _BLOCK_SPANS]
        out[row] = clr_feature_vector(blocks)
    return out
