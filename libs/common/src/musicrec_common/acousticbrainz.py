"""Parsing of AcousticBrainz high-level JSON documents (see shared/spec/acousticbrainz-highlevel.md).

`parse_document` turns the bytes of one dump member into a `ParsedDocument`: the cleaned `Track`
and its feature vector. Its contract is total: for *any* input it either returns or raises a
`DocumentError` subclass, whose `reason` is a short stable code suitable as a metrics label.

Tolerated on purpose (spec §6): `metadata: null`, `highlevel: {}`, classifier entries with or without
`version`, unknown models and labels, the legacy 2015 format, documents with extra top-level keys
(beets merges low-level data in), tag keys in any case, tag values as a list or a plain string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import ClassVar

import orjson

from musicrec_common.dates import DateStatus, release_date_from_tags
from musicrec_common.features import build_feature_vector, trait_values
from musicrec_common.model import GenreClassifier, GenrePrediction, ParsedDocument, Track
from musicrec_common.placeholders import is_placeholder_title
from musicrec_common.text import normalize_text

__all__ = [
    "MEMBER_NAME_RE",
    "DocumentError",
    "InvalidJsonError",
    "MissingMbidError",
    "WrongShapeError",
    "parse_document",
    "parse_document_detailed",
    "parse_member_name",
]

MEMBER_NAME_RE = re.compile(
    r"^(?P<mbid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-(?P<n>\d+)\.json$",
    re.ASCII,
)
"""Base name of a dump member: `<mbid>-<n>.json` (spec §6). Use `fullmatch` (or `parse_member_name`)."""

_MBID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX32_RE = re.compile(r"[0-9a-f]{32}")
_UTF8_BOM = b"\xef\xbb\xbf"


def parse_member_name(name: str) -> tuple[str, int] | None:
    """(mbid, n) from a member path or base name, or None if it is not a `<mbid>-<n>.json` name.

    >>> parse_member_name("acousticbrainz-highlevel-json-20220623/highlevel/00/0/"
    ...                   "000abf35-b0f2-4985-82c9-bd3ef80e0699-1.json")
    ('000abf35-b0f2-4985-82c9-bd3ef80e0699', 1)
    >>> parse_member_name("acousticbrainz-highlevel-json-20220623/COPYING") is None
    True
    """
    base = name.rpartition("/")[2]
    match = MEMBER_NAME_RE.fullmatch(base)
    if match is None:
        return None
    return match["mbid"], int(match["n"])


class DocumentError(ValueError):
    """A document that cannot be parsed. `reason` is a stable short code, `source` names the document.

    The message reads "<source>: <detail>".
    """

    default_reason: ClassVar[str] = "invalid_document"

    def __init__(self, source: str, detail: str, *, reason: str | None = None) -> None:
        self.source = source
        self.detail = detail
        self.reason = reason if reason is not None else self.default_reason
        super().__init__(f"{source}: {detail}")

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the exception picklable (it crosses process-pool boundaries) despite the keyword.
        return (_rebuild_error, (type(self), self.source, self.detail, self.reason))


def _rebuild_error(cls: type[DocumentError], source: str, detail: str, reason: str) -> DocumentError:
    return cls(source, detail, reason=reason)


class InvalidJsonError(DocumentError):
    """The bytes are not a JSON document (bad UTF-8, syntax error, nesting too deep, …)."""

    default_reason: ClassVar[str] = "invalid_json"


class WrongShapeError(DocumentError):
    """Valid JSON of the wrong shape: not an object, or `highlevel`/`metadata`/`tags` of the wrong type."""

    default_reason: ClassVar[str] = "wrong_shape"


class MissingMbidError(DocumentError):
    """Neither the caller nor `metadata.tags.musicbrainz_recordingid` gives a valid recording MBID."""

    default_reason: ClassVar[str] = "missing_mbid"


_JSON_TYPE_NAMES: dict[type, str] = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _describe(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _canonical_mbid(value: object) -> str | None:
    """The lower-case hyphenated form of a UUID string, or None.

    Accepts the canonical form in any case, 32 bare hex digits, and the `{…}` / `urn:uuid:` wrappings,
    with surrounding whitespace. Nothing looser: an MBID is an identifier, not free text.
    """
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if _MBID_RE.fullmatch(text):
        return text
    text = text.removeprefix("urn:uuid:")
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if _MBID_RE.fullmatch(text):
        return text
    if _HEX32_RE.fullmatch(text):
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    return None


def _lowercase_keys(tags: Mapping[str, object]) -> dict[str, object]:
    """Tags keyed by lower-cased name. If two keys differ only in case, the lower-case one wins,
    otherwise the first one seen."""
    lowered: dict[str, object] = {}
    for key, value in tags.items():
        folded = key.lower()
        if folded not in lowered or key == folded:
            lowered[folded] = value
    return lowered


def _first_text(value: object) -> str | None:
    """The first non-empty normalised string of a tag value (a list of strings, or a plain string)."""
    if isinstance(value, str):
        return normalize_text(value)
    if isinstance(value, list):
        for item in value:
            text = normalize_text(item)
            if text is not None:
                return text
    return None


def _genre(highlevel: Mapping[str, object], classifier: GenreClassifier) -> GenrePrediction | None:
    entry = highlevel.get(classifier.model_name)
    if not isinstance(entry, dict):
        return None
    label = entry.get("value")
    probability = entry.get("probability")
    if not isinstance(label, str) or not label:
        return None
    if isinstance(probability, bool) or not isinstance(probability, int | float):
        return None
    try:
        number = float(probability)
    except OverflowError:
        return None
    if not math.isfinite(number):
        return None
    return GenrePrediction(label, number)


def _load(data: bytes | str, source: str) -> object:
    if isinstance(data, bytes | bytearray) and data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    elif isinstance(data, str) and data.startswith("\ufeff"):
        data = data[1:]
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidJsonError(source, f"not valid JSON: {exc}") from None


def parse_document_detailed(
    data: bytes | str,
    *,
    source: str,
    mbid: str | None = None,
    submission: int | None = None,
) -> tuple[ParsedDocument, DateStatus]:
    """Like `parse_document`, and also says whether the release date was OK, missing or invalid."""
    document = _load(data, source)
    if not isinstance(document, dict):
        raise WrongShapeError(source, f"the top-level value is {_describe(document)}, expected an object")

    if "highlevel" not in document:
        raise WrongShapeError(source, "there is no `highlevel` object")
    highlevel = document["highlevel"]
    if not isinstance(highlevel, dict):
        raise WrongShapeError(source, f"`highlevel` is {_describe(highlevel)}, expected an object")

    metadata = document.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise WrongShapeError(source, f"`metadata` is {_describe(metadata)}, expected an object or null")
    raw_tags = None if metadata is None else metadata.get("tags")
    if raw_tags is not None and not isinstance(raw_tags, dict):
        raise WrongShapeError(source, f"`metadata.tags` is {_describe(raw_tags)}, expected an object")
    tags = _lowercase_keys(raw_tags) if raw_tags else {}

    if mbid is not None:
        recording = _canonical_mbid(mbid)
        if recording is None:
            raise MissingMbidError(source, f"the given MBID {mbid!r} is not a valid UUID")
    else:
        tag_value = tags.get("musicbrainz_recordingid")
        first = tag_value[0] if isinstance(tag_value, list) and tag_value else tag_value
        recording = _canonical_mbid(first)
        if recording is None:
            if tag_value is None:
                detail = "no MBID was given and `metadata.tags` has no `musicbrainz_recordingid`"
            else:
                detail = f"`metadata.tags.musicbrainz_recordingid` is not a valid MBID: {tag_value!r:.80}"
            raise MissingMbidError(source, detail)

    title = _first_text(tags.get("title"))
    release = release_date_from_tags(tags)
    track = Track(
        mbid=recording,
        submission=0 if submission is None else submission,
        title=title,
        artist=_first_text(tags.get("artist")),
        album=_first_text(tags.get("album")),
        release_date=release.date,
        year=release.year,
        rosamerica=_genre(highlevel, GenreClassifier.ROSAMERICA),
        dortmund=_genre(highlevel, GenreClassifier.DORTMUND),
        tzanetakis=_genre(highlevel, GenreClassifier.TZANETAKIS),
        is_placeholder_title=is_placeholder_title(title),
    )
    parsed = ParsedDocument(
        track=track, features=build_feature_vector(highlevel), traits=trait_values(highlevel)
    )
    return parsed, release.status


def parse_document(
    data: bytes | str,
    *,
    source: str,
    mbid: str | None = None,
    submission: int | None = None,
) -> ParsedDocument:
    """Parse one high-level document.

    `source` names the document in error messages (e.g. the member path). `mbid` and `submission`
    normally come from the member name (`parse_member_name`); without `mbid` the recording id is read
    from `metadata.tags.musicbrainz_recordingid[0]` (key case-insensitive), without `submission` it
    is 0. Raises `InvalidJsonError`, `WrongShapeError` or `MissingMbidError` — and nothing else.
    A document without a `highlevel` key is a wrong shape (it is not a high-level document), while
    `highlevel: {}` is accepted and gives the all-zero feature vector.
    """
    parsed, _status = parse_document_detailed(data, source=source, mbid=mbid, submission=submission)
    return parsed
