"""The fast parser gives exactly what `parse_document_detailed` gives, for every input."""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import musicrec_common.fastparse as fastparse
from musicrec_common import dates
from musicrec_common.acousticbrainz import DocumentError, parse_document_detailed, parse_member_name
from musicrec_common.corpus import iter_corpus
from musicrec_common.dates import DateStatus
from musicrec_common.fastparse import (
    DocumentInput,
    clr_feature_matrix,
    clr_feature_vector,
    parse_document_fast,
    parse_documents_fast,
)
from musicrec_common.features import FEATURE_DIM, FEATURE_LAYOUT, RAW_DIM, TRAITS, build_feature_vector
from musicrec_common.text import normalize_text

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "acousticbrainz"
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))
MBID = "564ccd5c-c4d3-4752-9abf-c33bb085d6a5"

Outcome = tuple[Any, ...]
Parser = Callable[..., tuple[Any, DateStatus]]


def _outcome(parser: Parser, data: bytes | str, **kwargs: Any) -> Outcome:
    """What a parser makes of a document: the track, date status and vector bytes, or the error."""
    try:
        parsed, status = parser(data, source="the-doc", **kwargs)
    except DocumentError as error:
        return ("error", type(error), error.reason, str(error))
    assert parsed.features.dtype == np.float32
    assert parsed.features.shape == (FEATURE_DIM,)
    return ("ok", parsed.track, status, parsed.features.tobytes(), parsed.traits)


def _assert_same(data: bytes, **kwargs: Any) -> Outcome:
    expected = _outcome(parse_document_detailed, data, **kwargs)
    assert _outcome(parse_document_fast, data, **kwargs) == expected
    return expected


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the reference parser unavailable to the fast one: documents must take the fast path."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the fast parser fell back to parse_document_detailed")

    monkeypatch.setattr(fastparse, "parse_document_detailed", refuse)


CORPUS = list(iter_corpus(2000, seed=11))


class TestGeneratedCorpus:
    def test_every_document_is_identical_and_takes_the_fast_path(self, no_fallback: None) -> None:
        assert len(CORPUS) > 2500
        for name, data in CORPUS:
            parsed_name = parse_member_name(name)
            assert parsed_name is not None
            mbid, submission = parsed_name
            expected = _outcome(parse_document_detailed, data, mbid=mbid, submission=submission)
            assert expected[0] == "ok"
            assert _outcome(parse_document_fast, data, mbid=mbid, submission=submission) == expected, name

    def test_the_mbid_from_the_tags(self, no_fallback: None) -> None:
        for _name, data in CORPUS[:300]:
            assert _outcome(parse_document_fast, data) == _outcome(parse_document_detailed, data)

    def test_batches_match_single_documents(self) -> None:
        inputs = [
            DocumentInput(data, name, *(parse_member_name(name) or (None, None))) for name, data in CORPUS
        ]
        inputs[5] = DocumentInput(b"{not json", "broken", None, None)
        inputs[9] = DocumentInput(FIXTURES.joinpath(FIXTURE_FILES[0].name).read_bytes(), "fixture", MBID, 2)
        # Views (into shared memory, say) are read like bytes, on the fast path and off it.
        viewed = [
            item._replace(data=memoryview(bytes(item.data))) if i % 3 == 0 else item
            for i, item in enumerate(inputs)
        ]
        batch = parse_documents_fast(viewed)
        assert len(batch.results) == len(inputs)
        singles: list[Any] = []
        for item in inputs:
            data = item.data
            assert isinstance(data, bytes)
            try:
                singles.append(
                    parse_document_fast(data, source=item.source, mbid=item.mbid, submission=item.submission)
                )
            except DocumentError as error:
                singles.append(error)
        rows = []
        trait_rows = []
        for got, single in zip(batch.results, singles, strict=True):
            if isinstance(single, DocumentError):
                assert isinstance(got, DocumentError)
                assert (type(got), got.reason, str(got)) == (type(single), single.reason, str(single))
                continue
            assert got == (single[0].track, single[1])
            rows.append(single[0].features)
            trait_rows.append([math.nan if v is None else v for v in single[0].traits])
        assert batch.features.shape == (len(rows), FEATURE_DIM)
        assert batch.features.dtype == np.float32
        np.testing.assert_allclose(batch.features, np.stack(rows), rtol=0, atol=1e-7)
        assert batch.traits.shape == (len(rows), len(TRAITS))
        if trait_rows:
            np.testing.assert_array_equal(batch.traits, np.array(trait_rows, dtype=np.float64))

    def test_an_empty_batch(self) -> None:
        batch = parse_documents_fast([])
        assert batch.results == []
        assert batch.features.shape == (0, FEATURE_DIM)


class TestRealDocuments:
    @pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
    @pytest.mark.parametrize("mbid", [None, MBID, MBID.upper(), "not-an-mbid"])
    def test_fixtures(self, path: Path, mbid: str | None) -> None:
        raw = path.read_bytes()
        compact = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
        for data in (raw, compact, b"\xef\xbb\xbf" + compact):
            _assert_same(data, mbid=mbid, submission=4)

    def test_the_dump_serialisation_of_a_fixture_takes_the_fast_path(self, no_fallback: None) -> None:
        document = json.loads((FIXTURES / f"{MBID}.json").read_bytes())
        data = json.dumps(document, sort_keys=True, separators=(",", ":")).replace("/", "\\/").encode()
        assert _outcome(parse_document_fast, data, mbid=MBID)[0] == "ok"


# --------------------------------------------------------------------------------------------------
# Mutations

BASES: list[dict[str, Any]] = [orjson.loads(data) for _name, data in itertools.islice(CORPUS, 40)] + [
    orjson.loads(path.read_bytes()) for path in FIXTURE_FILES
]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0.0, 1.0, 1e-4, 1.0 - 1e-4, 0.5, 1e-300, -0.0, 2.5, -1.0])
    | st.text(max_size=6)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
tag_keys = st.sampled_from(
    [
        "title",
        "Title",
        "TITLE",
        "artist",
        "Artist",
        "album",
        "date",
        "Date",
        "originaldate",
        "ORIGINALDATE",
        "year",
        "musicbrainz_recordingid",
        "MusicBrainz_RecordingId",
        "file_name",
        "genre",
        "musicbrainz album type",
    ]
)
tag_texts = st.sampled_from(
    [
        "",
        " ",
        "  Song  ",
        "Track 03",
        "[untitled]",
        "Motörhead",
        "Cafe\u0301",
        "1998",
        "1998-06-23",
        "2001-13-01",
        "20040230",
        "2004 (remaster)",
        "3000",
        "\u3000全角\u3000",
        "a\x00b",
        "\ufeffBOM",
        MBID,
        MBID.upper(),
        "x" * 40,
    ]
) | st.text(max_size=12)
tag_values = st.lists(tag_texts, max_size=3) | tag_texts | json_values
models = st.sampled_from([block.model for block in FEATURE_LAYOUT] + ["unknown_model"])
labels = st.sampled_from([*sorted({label for block in FEATURE_LAYOUT for label in block.labels}), "bl", "co"])
raw_tokens = st.sampled_from(
    [
        b"1e999",
        b"-1e400",
        b"9" * 400,
        b"NaN",
        b"Infinity",
        b"[" * 1100 + b"]" * 1100,
        b"[" * 50 + b"]" * 50,
        b'"\\ud800"',
        b'"\\udc00\\ud800"',
        b'"\xff"',
        b'"\xed\xa0\x80"',
        b"1.5e308",
        b"0." + b"1" * 400,
        b"01",
        b"1e-400",
        b"18446744073709551616",
        b"-0",
        b'"\\u0041"',
    ]
)


def _mutate(document: dict[str, Any], draw: st.DrawFn) -> None:
    """One random change to a (deep-copied) document."""
    kind = draw(st.integers(min_value=0, max_value=15))
    metadata = document.get("metadata") if isinstance(document.get("metadata"), dict) else None
    tags = metadata.get("tags") if metadata is not None and isinstance(metadata.get("tags"), dict) else None
    highlevel = document.get("highlevel") if isinstance(document.get("highlevel"), dict) else None
    entry = None
    if highlevel:
        entry = highlevel.get(draw(st.sampled_from(sorted(highlevel))))
    if kind == 0 and tags is not None:
        tags[draw(tag_keys)] = draw(tag_values)
    elif kind == 1 and tags:
        del tags[draw(st.sampled_from(sorted(tags)))]
    elif kind == 2 and highlevel is not None:
        highlevel[draw(models)] = draw(json_values)
    elif kind == 3 and highlevel:
        del highlevel[draw(st.sampled_from(sorted(highlevel)))]
    elif kind == 4 and isinstance(entry, dict) and isinstance(entry.get("all"), dict):
        entry["all"][draw(labels)] = draw(json_scalars)
    elif kind == 5 and isinstance(entry, dict) and isinstance(entry.get("all"), dict) and entry["all"]:
        del entry["all"][draw(st.sampled_from(sorted(entry["all"])))]
    elif kind == 6 and isinstance(entry, dict):
        entry[draw(st.sampled_from(["all", "value", "probability", "version", "extra"]))] = draw(json_values)
    elif kind == 7 and isinstance(entry, dict):
        entry.pop(draw(st.sampled_from(["all", "value", "probability", "version"])), None)
    elif kind == 8:
        document[draw(st.sampled_from(["metadata", "highlevel", "extra", "lowlevel"]))] = draw(json_values)
    elif kind == 9:
        document.pop(draw(st.sampled_from(["metadata", "highlevel"])), None)
    elif kind == 10 and metadata is not None:
        metadata[draw(st.sampled_from(["tags", "audio_properties", "version", "extra"]))] = draw(json_values)
    elif kind == 11 and metadata is not None and isinstance(metadata.get("audio_properties"), dict):
        metadata["audio_properties"][draw(st.text(max_size=4))] = draw(json_values)
    elif kind == 12 and isinstance(entry, dict) and isinstance(entry.get("version"), dict):
        entry["version"][draw(st.sampled_from(["essentia", "gaia", "new_key"]))] = draw(json_scalars)
    elif kind == 13 and tags is not None:
        # Case variants of one key, in either order.
        key = draw(st.sampled_from(["title", "date", "artist", "originaldate"]))
        value = tags.pop(key, ["Something"])
        variant = draw(st.sampled_from([key.upper(), key.title(), key.capitalize()]))
        pairs = [(key, value), (variant, draw(tag_values))]
        for name, item in pairs if draw(st.booleans()) else reversed(pairs):
            tags[name] = item
    elif kind == 14 and metadata is not None:
        metadata["version"] = draw(
            st.sampled_from([{"essentia": "2.1-beta1"}, {"highlevel": {}, "lowlevel": 3}])
        )
    elif kind == 15 and highlevel is not None:
        highlevel.clear()


@st.composite
def mutated_documents(draw: st.DrawFn) -> bytes:
    document = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        _mutate(document, draw)
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        document = draw(json_values)  # not an object at all, most of the time
    data = json.dumps(
        document,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 1])),
        sort_keys=draw(st.booleans()),
    ).encode("utf-8", "surrogatepass")
    raw_edit = draw(st.integers(min_value=0, max_value=8))
    if raw_edit == 0 and data.startswith(b"{"):
        data = b'{"zz": ' + draw(raw_tokens) + b", " + data[1:]
    elif raw_edit == 1 and data.startswith(b'{"highlevel": {"'):
        data = b'{"highlevel": {"zz": ' + draw(raw_tokens) + b", " + data[len(b'{"highlevel": {') :]
    elif raw_edit == 2:
        data = data[: draw(st.integers(min_value=0, max_value=len(data)))]
    elif raw_edit == 3:
        position = draw(st.integers(min_value=0, max_value=len(data)))
        data = data[:position] + draw(st.binary(min_size=1, max_size=3)) + data[position:]
    elif raw_edit == 4:
        data = b"\xef\xbb\xbf" + data
    elif raw_edit == 5 and b'"title": ["' in data:
        data = data.replace(b'"title": ["', b'"title": ["' + draw(raw_tokens).strip(b'"') + b" ", 1)
    elif raw_edit == 6:
        # Inside objects the fast path decodes: numbers there must be checked as strictly as orjson does.
        place = draw(st.sampled_from([rb'"audio_properties":\s*\{', rb'"all":\s*\{', rb'"tags":\s*\{']))
        key = draw(st.sampled_from([b'"zz"', b'"danceable"', b'"title"']))
        data = re.sub(
            place, lambda match: match.group(0) + key + b": " + draw(raw_tokens) + b", ", data, count=1
        )
    return data


mbids = st.sampled_from(
    [None, MBID, MBID.upper(), f"{{{MBID}}}", f" urn:uuid:{MBID} ", MBID.replace("-", ""), "x"]
)


class TestMutations:
    @settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=mutated_documents(), mbid=mbids, submission=st.sampled_from([None, 0, 7]))
    def test_same_outcome_as_the_reference(
        self, data: bytes, mbid: str | None, submission: int | None
    ) -> None:
        _assert_same(data, mbid=mbid, submission=submission)

    @pytest.mark.parametrize(
        "data",
        [
            b"",
            b"   ",
            b"[]",
            b"null",
            b"42",
            b'"highlevel"',
            b"{}",
            b'{"highlevel": []}',
            b'{"highlevel": {}}',
            b'{"highlevel": {}, "metadata": null}',
            b'{"highlevel": {}, "metadata": {"tags": null}}',
            b'{"highlevel": {}, "metadata": {"tags": []}}',
            b'{"highlevel": {}, "metadata": {"tags": {"musicbrainz_recordingid": []}}}',
            b'{"highlevel": {}, "highlevel": 5}',
            b'{"highlevel": 5, "highlevel": {}}',
            b'{"highlevel": {}, "zz": 1e999}',
            b'{"highlevel": {}, "zz": "\xff"}',
            b'{"highlevel": {"danceability": {"all": {"danceable": 1e999}}}}',
            b'{"high\\u006cevel": {}, "metadata": {"tags": {"musicbrainz_recordingid": ["'
            + MBID.encode()
            + b'"]}}}',
        ],
    )
    @pytest.mark.parametrize("mbid", [None, MBID])
    def test_edge_cases(self, data: bytes, mbid: str | None) -> None:
        _assert_same(data, mbid=mbid)

    def test_non_bytes_input_goes_to_the_reference(self) -> None:
        text = CORPUS[0][1].decode()
        assert _outcome(parse_document_fast, text, mbid=MBID) == _outcome(
            parse_document_detailed, text, mbid=MBID
        )


# --------------------------------------------------------------------------------------------------
# The pieces


@given(st.text() | st.sampled_from(["  a  b ", "a\tb", "x\u00a0y", "e\u0301", "\x1c", " ", "", "ab  "]))
def test_clean_is_normalize_text(value: str) -> None:
    assert fastparse._clean(value) == normalize_text(value)


probabilities = st.one_of(
    st.floats(min_value=0.0, max_value=1.0),
    st.sampled_from(
        [0.0, 1.0, 1e-4, 1.0 - 1e-4, math.nextafter(1e-4, 1.0), math.nextafter(1.0 - 1e-4, 0.0), 0.5]
    ),
    st.just(math.nan),
)


@st.composite
def probability_blocks(draw: st.DrawFn) -> list[tuple[float, ...] | None]:
    blocks: list[tuple[float, ...] | None] = []
    for block in FEATURE_LAYOUT:
        if draw(st.integers(min_value=0, max_value=12)) == 0:
            blocks.append(None)
        elif draw(st.booleans()):
            # A softmax-like distribution, the usual case.
            weights = draw(
                st.lists(
                    st.floats(min_value=1e-6, max_value=1.0),
                    min_size=len(block.labels),
                    max_size=len(block.labels),
                )
            )
            total = sum(weights)
            blocks.append(tuple(w / total for w in weights))
        else:
            blocks.append(
                tuple(draw(st.lists(probabilities, min_size=len(block.labels), max_size=len(block.labels))))
            )
    return blocks


def _highlevel(blocks: list[tuple[float, ...] | None]) -> dict[str, Any]:
    highlevel: dict[str, Any] = {}
    for block, values in zip(FEATURE_LAYOUT, blocks, strict=True):
        if values is not None:
            highlevel[block.model] = {
                "all": {
                    label: value
                    for label, value in zip(block.labels, values, strict=True)
                    if not math.isnan(value)
                }
            }
    return highlevel


@settings(max_examples=200, deadline=None)
@given(probability_blocks())
def test_clr_vector_is_build_feature_vector_bit_for_bit(blocks: list[tuple[float, ...] | None]) -> None:
    expected = build_feature_vector(_highlevel(blocks))
    np.testing.assert_array_equal(clr_feature_vector(blocks), expected)


@settings(max_examples=30, deadline=None)
@given(st.lists(probability_blocks(), min_size=1, max_size=20))
def test_clr_matrix_rows_are_clr_vectors(batch: list[list[tuple[float, ...] | None]]) -> None:
    values = np.array(
        [
            [
                v
                for values, block in zip(blocks, FEATURE_LAYOUT, strict=True)
                for v in (values or (math.nan,) * len(block.labels))
            ]
            for blocks in batch
        ],
        dtype=np.float64,
    )
    assert values.shape == (len(batch), RAW_DIM)
    matrix = clr_feature_matrix(values)
    expected = np.stack([clr_feature_vector(blocks) for blocks in batch])
    np.testing.assert_allclose(matrix, expected, rtol=0, atol=1e-7)


def test_the_date_cache_follows_the_year_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    document = orjson.loads(CORPUS[0][1])
    document["metadata"]["tags"]["date"] = ["2005-03-04"]
    document["metadata"]["tags"].pop("originaldate", None)
    data = orjson.dumps(document)
    assert _assert_same(data, mbid=MBID)[2] is DateStatus.OK
    monkeypatch.setattr(dates, "_default_max_year", lambda: 2001)
    monkeypatch.setattr(fastparse, "_max_year", lambda: 2001)
    assert _assert_same(data, mbid=MBID)[2] is DateStatus.INVALID
    monkeypatch.undo()
    assert _assert_same(data, mbid=MBID)[2] is DateStatus.OK
