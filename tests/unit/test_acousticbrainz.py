from __future__ import annotations

import copy
import datetime as dt
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicrec_common.acousticbrainz import (
    MEMBER_NAME_RE,
    DocumentError,
    InvalidJsonError,
    MissingMbidError,
    WrongShapeError,
    parse_document,
    parse_document_detailed,
    parse_member_name,
)
from musicrec_common.dates import DateStatus
from musicrec_common.features import FEATURE_DIM, build_feature_vector
from musicrec_common.model import GenrePrediction, ParsedDocument

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "acousticbrainz"
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))

NASCENCE = "0dad432b-16cc-4bf0-8961-fd31d124b01b.json"
PINK_FLOYD = "564ccd5c-c4d3-4752-9abf-c33bb085d6a5.json"
PINK_FLOYD_2015 = "564ccd5c-c4d3-4752-9abf-c33bb085d6a5.legacy-2015-format.json"
ZZ_TOP = "cd3f5efa-bc5e-4064-a765-960494ad4bb4.beets-merged-lowlevel-highlevel.json"

# Read off the files by hand.
EXPECTED: dict[str, dict[str, Any]] = {
    NASCENCE: {
        "title": "Nascence",
        "artist": "Austin Wintory",
        "album": "Journey",
        "year": 2012,
        "release_date": None,  # originaldate and date are both "2012"
        "rosamerica": GenrePrediction("cla", 0.663908660412),
        "dortmund": GenrePrediction("folkcountry", 0.509120285511),
        "tzanetakis": GenrePrediction("jaz", 0.311486542225),
    },
    PINK_FLOYD: {
        "title": "The Lost Art of Conversation",
        "artist": "Pink Floyd",
        "album": "The Endless River",
        "year": 2014,
        "release_date": dt.date(2014, 11, 10),
        "rosamerica": GenrePrediction("cla", 0.821839511395),
        "dortmund": GenrePrediction("alternative", 0.340028733015),
        "tzanetakis": GenrePrediction("jaz", 0.309046447277),
    },
    PINK_FLOYD_2015: {
        "title": "The Lost Art of Conversation",
        "artist": "Pink Floyd",
        "album": "The Endless River",
        "year": 2014,
        "release_date": dt.date(2014, 11, 10),
        "rosamerica": GenrePrediction("cla", 0.821844518185),
        "dortmund": GenrePrediction("alternative", 0.339916408062),
        "tzanetakis": GenrePrediction("jaz", 0.309046447277),
    },
    ZZ_TOP: {
        "title": "La Grange",
        "artist": "ZZ Top",
        "album": "Armageddon:The Album",
        "year": 1998,
        "release_date": dt.date(1998, 6, 23),  # originaldate 1998-06-23 beats date 1998
        "rosamerica": GenrePrediction("roc", 0.270465612411),
        "dortmund": GenrePrediction("electronic", 0.984485208988),
        "tzanetakis": GenrePrediction("jaz", 0.308918893337),
    },
}

MINIMAL_HIGHLEVEL = {
    "genre_rosamerica": {"all": {"cla": 0.7, "roc": 0.3}, "probability": 0.7, "value": "cla"},
}
MBID = "564ccd5c-c4d3-4752-9abf-c33bb085d6a5"


def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(read(name))
    return document


def dump_serialisation(document: object) -> str:
    """The dump's ujson(sort_keys=True) output: compact, sorted keys, ASCII with \\uXXXX, and \\/."""
    return json.dumps(document, ensure_ascii=True, separators=(",", ":"), sort_keys=True).replace("/", "\\/")


def to_bytes(document: object) -> bytes:
    return json.dumps(document).encode()


def parse(document: object, **kwargs: Any) -> ParsedDocument:
    kwargs.setdefault("source", "test.json")
    return parse_document(to_bytes(document), **kwargs)


class TestMemberName:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            (
                "acousticbrainz-highlevel-json-20220623/highlevel/00/0/000abf35-b0f2-4985-82c9-bd3ef80e0699-1.json",
                ("000abf35-b0f2-4985-82c9-bd3ef80e0699", 1),
            ),
            ("000abf35-b0f2-4985-82c9-bd3ef80e0699-0.json", ("000abf35-b0f2-4985-82c9-bd3ef80e0699", 0)),
            (
                "acousticbrainz-highlevel-sample-json-20220623/highlevel/56/4/"
                "564ccd5c-c4d3-4752-9abf-c33bb085d6a5-12.json",
                ("564ccd5c-c4d3-4752-9abf-c33bb085d6a5", 12),
            ),
            (
                "./highlevel/00/0/000abf35-b0f2-4985-82c9-bd3ef80e0699-007.json",
                ("000abf35-b0f2-4985-82c9-bd3ef80e0699", 7),
            ),
        ],
    )
    def test_matches(self, name: str, expected: tuple[str, int]) -> None:
        assert parse_member_name(name) == expected

    @pytest.mark.parametrize(
        "name",
        [
            "acousticbrainz-highlevel-json-20220623/COPYING",
            "acousticbrainz-highlevel-json-20220623/highlevel/00/0/",
            "acousticbrainz-highlevel-json-20220623/highlevel/00",
            "000abf35-b0f2-4985-82c9-bd3ef80e0699.json",  # the fixtures' form: no -n
            "000ABF35-B0F2-4985-82C9-BD3EF80E0699-1.json",  # dump MBIDs are lower case
            "000abf35-b0f2-4985-82c9-bd3ef80e0699-1.json.gz",
            "000abf35-b0f2-4985-82c9-bd3ef80e0699-1.json\n",
            "000abf35-b0f2-4985-82c9-bd3ef80e0699-.json",
            "000abf35-b0f2-4985-82c9-bd3ef80e0699--1.json",
            "000abf35-b0f2-4985-82c9-bd3ef80e0699-١.json",  # non-ASCII digit
            "x000abf35-b0f2-4985-82c9-bd3ef80e0699-1.json",
            "",
        ],
    )
    def test_rejects(self, name: str) -> None:
        assert parse_member_name(name) is None

    def test_regex_is_the_spec_one(self) -> None:
        assert MEMBER_NAME_RE.pattern == (
            r"^(?P<mbid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-(?P<n>\d+)\.json$"
        )


class TestFixtures:
    @pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
    def test_every_fixture_parses(self, path: Path) -> None:
        parsed, status = parse_document_detailed(path.read_bytes(), source=path.name, mbid=path.name[:36])
        track = parsed.track
        expected = EXPECTED[path.name]
        assert track.mbid == path.name[:36]
        assert track.submission == 0
        for field, value in expected.items():
            assert getattr(track, field) == value, field
        assert track.is_placeholder_title is False
        assert status is DateStatus.OK
        assert parsed.features.dtype == np.float32
        assert parsed.features.shape == (FEATURE_DIM,)
        assert float(np.linalg.norm(parsed.features)) == pytest.approx(1.0, abs=1e-6)

    @pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
    def test_mbid_from_tags_when_not_given(self, path: Path) -> None:
        track = parse_document(path.read_bytes(), source=path.name).track
        assert track.mbid == path.name[:36]

    @pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
    def test_dump_serialisation_parses_the_same(self, path: Path) -> None:
        pretty = parse_document(path.read_bytes(), source=path.name, mbid=path.name[:36], submission=3)
        compact_text = dump_serialisation(json.loads(path.read_bytes()))
        assert "\\/" in compact_text or "/" not in path.read_text(encoding="utf-8")
        for data in (compact_text, compact_text.encode("ascii")):
            compact = parse_document(data, source=path.name, mbid=path.name[:36], submission=3)
            assert compact.track == pretty.track
            np.testing.assert_array_equal(compact.features, pretty.features)

    def test_escapes_decode(self) -> None:
        document = load(PINK_FLOYD)
        document["metadata"]["tags"]["title"] = ["残酷な天使のテーゼ / Кино 🎸"]
        document["metadata"]["tags"]["artist"] = ["AC/DC"]
        text = dump_serialisation(document)
        assert "\\u" in text
        assert "AC\\/DC" in text
        track = parse_document(text.encode("ascii"), source="x", mbid=MBID).track
        assert track.title == "残酷な天使のテーゼ / Кино 🎸"
        assert track.artist == "AC/DC"

    def test_features_are_the_feature_module_ones(self) -> None:
        document = load(PINK_FLOYD)
        parsed = parse_document(read(PINK_FLOYD), source=PINK_FLOYD, mbid=MBID)
        np.testing.assert_array_equal(parsed.features, build_feature_vector(document["highlevel"]))

    def test_submission_passed_through(self) -> None:
        assert parse_document(read(PINK_FLOYD), source="x", mbid=MBID, submission=7).track.submission == 7

    def test_utf8_bom_tolerated(self) -> None:
        track = parse_document(b"\xef\xbb\xbf" + read(PINK_FLOYD), source="x", mbid=MBID).track
        assert track.title == "The Lost Art of Conversation"
        assert parse_document("\ufeff" + read(PINK_FLOYD).decode(), source="x", mbid=MBID).track == track


class TestTolerance:
    def test_metadata_null(self) -> None:
        parsed, status = parse_document_detailed(
            to_bytes({"highlevel": MINIMAL_HIGHLEVEL, "metadata": None}), source="x", mbid=MBID
        )
        track = parsed.track
        assert (track.title, track.artist, track.album, track.year, track.release_date) == (None,) * 5
        assert track.rosamerica == GenrePrediction("cla", 0.7)
        assert track.dortmund is None
        assert status is DateStatus.MISSING

    def test_metadata_absent_and_tags_absent_or_null(self) -> None:
        assert parse({"highlevel": {}}, mbid=MBID).track.title is None
        assert parse({"highlevel": {}, "metadata": {}}, mbid=MBID).track.title is None
        assert parse({"highlevel": {}, "metadata": {"tags": None}}, mbid=MBID).track.title is None

    def test_empty_highlevel(self) -> None:
        parsed = parse({"highlevel": {}, "metadata": load(PINK_FLOYD)["metadata"]}, mbid=MBID)
        assert parsed.track.title == "The Lost Art of Conversation"
        assert parsed.track.rosamerica is None
        assert not np.any(parsed.features)
        assert parsed.features.shape == (FEATURE_DIM,)

    def test_entries_without_version(self) -> None:
        document = load(PINK_FLOYD)
        for entry in document["highlevel"].values():
            del entry["version"]
        stripped = parse(document, mbid=MBID)
        original = parse_document(read(PINK_FLOYD), source="x", mbid=MBID)
        assert stripped.track == original.track
        np.testing.assert_array_equal(stripped.features, original.features)

    def test_mixed_case_and_space_keys(self) -> None:
        tags = {
            "TITLE": ["Nascence"],
            "Artist": ["Austin Wintory"],
            "ALBUM": "Journey",  # plain string
            "OriginalDate": ["2012-07-20"],
            "MusicBrainz_RecordingId": ["0DAD432B-16CC-4BF0-8961-FD31D124B01B"],
            "musicbrainz album type": ["album/soundtrack"],
            "musicbrainz release track id": ["09999a96-3d26-33ff-b0dc-56464be6716e"],
            "file_name": "Austin Wintory - Nascence.mp3",
        }
        track = parse({"highlevel": {}, "metadata": {"tags": tags}}).track
        assert track.mbid == "0dad432b-16cc-4bf0-8961-fd31d124b01b"
        assert (track.title, track.artist, track.album) == ("Nascence", "Austin Wintory", "Journey")
        assert track.release_date == dt.date(2012, 7, 20)

    def test_lower_case_key_wins_over_other_case(self) -> None:
        tags = {"TITLE": ["Upper"], "title": ["Lower"], "Title": ["Mixed"]}
        assert parse({"highlevel": {}, "metadata": {"tags": tags}}, mbid=MBID).track.title == "Lower"

    def test_text_fields_are_normalised_and_skip_junk_items(self) -> None:
        tags = {
            "title": [None, 5, "", "  Ca\u0301fe\u0301   del  Mar ", "second"],
            "artist": [["nested"], "  Кино "],
            "album": [],
        }
        track = parse({"highlevel": {}, "metadata": {"tags": tags}}, mbid=MBID).track
        assert track.title == "Cáfé del Mar"
        assert track.artist == "Кино"
        assert track.album is None

    @pytest.mark.parametrize("value", [5, None, {"a": "b"}, True, 1.5])
    def test_tag_values_of_odd_types(self, value: object) -> None:
        tags = {
            "title": value,
            "artist": value,
            "album": value,
            "date": value,
            "musicbrainz_recordingid": value,
        }
        track = parse({"highlevel": {}, "metadata": {"tags": tags}}, mbid=MBID).track
        assert (track.title, track.artist, track.album, track.year) == (None, None, None, None)

    def test_placeholder_title_flag(self) -> None:
        track = parse({"highlevel": {}, "metadata": {"tags": {"title": ["[untitled]"]}}}, mbid=MBID).track
        assert track.title == "[untitled]"
        assert track.is_placeholder_title is True

    @pytest.mark.parametrize(
        ("entry", "expected"),
        [
            ({"value": "roc", "probability": 0.5}, GenrePrediction("roc", 0.5)),
            ({"value": "roc", "probability": 1}, GenrePrediction("roc", 1.0)),
            ({"value": "roc", "probability": "0.5"}, None),
            ({"value": "roc", "probability": True}, None),
            ({"value": "roc"}, None),
            ({"value": 3, "probability": 0.5}, None),
            ({"value": "", "probability": 0.5}, None),
            ({"probability": 0.5, "all": {"roc": 0.5}}, None),
            ("roc", None),
            ([], None),
            (None, None),
        ],
    )
    def test_genre_prediction(self, entry: object, expected: GenrePrediction | None) -> None:
        track = parse({"highlevel": {"genre_dortmund": entry}}, mbid=MBID).track
        assert track.dortmund == expected

    def test_extra_top_level_keys(self) -> None:
        document = load(ZZ_TOP)
        assert {"lowlevel", "rhythm", "tonal"} <= set(document)
        assert parse(document).track.title == "La Grange"

    def test_mbid_forms_in_tags(self) -> None:
        for value in (
            [MBID.upper()],
            [f"  {MBID} "],
            MBID,
            [MBID.replace("-", "")],
            [f"{{{MBID}}}"],
            [f"urn:uuid:{MBID}"],
            [MBID, "other"],
        ):
            document = {"highlevel": {}, "metadata": {"tags": {"musicbrainz_recordingid": value}}}
            assert parse(document).track.mbid == MBID, value

    def test_mbid_argument_wins_over_tags(self) -> None:
        other = "0dad432b-16cc-4bf0-8961-fd31d124b01b"
        assert parse_document(read(PINK_FLOYD), source="x", mbid=other).track.mbid == other
        assert parse_document(read(PINK_FLOYD), source="x", mbid=other.upper()).track.mbid == other

    @pytest.mark.parametrize(
        ("tags", "status", "year"),
        [
            ({"date": ["1998"]}, DateStatus.OK, 1998),
            ({}, DateStatus.MISSING, None),
            ({"date": [""]}, DateStatus.MISSING, None),
            ({"date": ["2001-13-01"]}, DateStatus.INVALID, None),
            ({"date": ["unknown"]}, DateStatus.INVALID, None),
        ],
    )
    def test_detailed_date_status(self, tags: dict[str, Any], status: DateStatus, year: int | None) -> None:
        parsed, got = parse_document_detailed(
            to_bytes({"highlevel": {}, "metadata": {"tags": tags}}), source="x", mbid=MBID
        )
        assert got is status
        assert parsed.track.year == year
        assert parse({"highlevel": {}, "metadata": {"tags": tags}}, mbid=MBID).track == parsed.track


class TestErrors:
    SOURCE = "highlevel/56/4/564ccd5c-c4d3-4752-9abf-c33bb085d6a5-1.json"

    @pytest.mark.parametrize(
        "data",
        [
            b"",
            b"   ",
            b"{",
            b"{'a': 1}",
            b"\xff\xfe{}",
            b'{"highlevel": {}} trailing',
            b"[" * 2000 + b"]" * 2000,
            b'{"a": NaN}',
            b'"\\ud800"',
            '{"a": "\ud800"}',
            b"\x00",
        ],
    )
    def test_invalid_json(self, data: bytes | str) -> None:
        with pytest.raises(InvalidJsonError) as info:
            parse_document(data, source=self.SOURCE, mbid=MBID)
        assert info.value.reason == "invalid_json"
        assert info.value.source == self.SOURCE
        assert str(info.value).startswith(f"{self.SOURCE}: ")

    @pytest.mark.parametrize(
        ("document", "fragment"),
        [
            ([], "top-level value is a list"),
            (5, "top-level value is a number"),
            ("text", "top-level value is a string"),
            (None, "top-level value is null"),
            (True, "top-level value is a boolean"),
            ({}, "no `highlevel`"),
            ({"metadata": {}}, "no `highlevel`"),
            ({"highlevel": None}, "`highlevel` is null"),
            ({"highlevel": []}, "`highlevel` is a list"),
            ({"highlevel": {}, "metadata": []}, "`metadata` is a list"),
            ({"highlevel": {}, "metadata": "x"}, "`metadata` is a string"),
            ({"highlevel": {}, "metadata": {"tags": []}}, "`metadata.tags` is a list, expected an object"),
            ({"highlevel": {}, "metadata": {"tags": "title"}}, "`metadata.tags` is a string"),
        ],
    )
    def test_wrong_shape(self, document: object, fragment: str) -> None:
        with pytest.raises(WrongShapeError) as info:
            parse_document(to_bytes(document), source=self.SOURCE, mbid=MBID)
        assert info.value.reason == "wrong_shape"
        assert info.value.source == self.SOURCE
        assert str(info.value).startswith(f"{self.SOURCE}: ")
        assert fragment in str(info.value)

    @pytest.mark.parametrize(
        "metadata",
        [
            None,
            {},
            {"tags": {}},
            {"tags": {"musicbrainz_recordingid": []}},
            {"tags": {"musicbrainz_recordingid": [""]}},
            {"tags": {"musicbrainz_recordingid": ["not-a-uuid"]}},
            {"tags": {"musicbrainz_recordingid": [5]}},
            {"tags": {"musicbrainz_recordingid": ["564ccd5c-c4d3-4752-9abf-c33bb085d6a"]}},
            {"tags": {"musicbrainz_recordingid": ["+64ccd5cc4d347529abfc33bb085d6a5"]}},
            {"tags": {"musicbrainz_recordingid": ["564ccd5c_c4d3_4752_9abf_c33bb085d6a5"]}},
        ],
    )
    def test_missing_mbid(self, metadata: object) -> None:
        with pytest.raises(MissingMbidError) as info:
            parse_document(to_bytes({"highlevel": {}, "metadata": metadata}), source=self.SOURCE)
        assert info.value.reason == "missing_mbid"
        assert str(info.value).startswith(f"{self.SOURCE}: ")

    def test_invalid_mbid_argument(self) -> None:
        with pytest.raises(MissingMbidError, match="not a valid UUID"):
            parse_document(read(PINK_FLOYD), source=self.SOURCE, mbid="nope")

    def test_hierarchy(self) -> None:
        for cls in (InvalidJsonError, WrongShapeError, MissingMbidError):
            assert issubclass(cls, DocumentError)
        assert issubclass(DocumentError, ValueError)
        assert DocumentError("s", "d").reason == "invalid_document"
        assert DocumentError("s", "d", reason="custom").reason == "custom"

    @pytest.mark.parametrize("cls", [DocumentError, InvalidJsonError, WrongShapeError, MissingMbidError])
    def test_pickle_round_trip(self, cls: type[DocumentError]) -> None:
        error = cls("a/b.json", "went wrong")
        clone = pickle.loads(pickle.dumps(error))
        assert type(clone) is cls
        assert (clone.source, clone.detail, clone.reason, str(clone)) == (
            error.source,
            error.detail,
            error.reason,
            str(error),
        )

    def test_message_example(self) -> None:
        with pytest.raises(WrongShapeError) as info:
            parse_document(b'{"highlevel":{},"metadata":{"tags":[]}}', source=self.SOURCE)
        assert str(info.value) == f"{self.SOURCE}: `metadata.tags` is a list, expected an object"


NASCENCE_DOCUMENT = load(NASCENCE)
NASCENCE_BYTES = read(NASCENCE)

# Arbitrary JSON values, and documents that have roughly the right structure with random leaves.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
tag_keys = st.sampled_from(
    [
        "title",
        "TITLE",
        "artist",
        "album",
        "date",
        "originaldate",
        "Year",
        "musicbrainz_recordingid",
        "MUSICBRAINZ_RECORDINGID",
        "file_name",
    ]
)
model_names = st.sampled_from(
    ["genre_rosamerica", "genre_dortmund", "genre_tzanetakis", "mood_sad", "timbre", "moods_mirex", "unknown"]
)
classifier_entries = st.fixed_dictionaries(
    {},
    optional={
        "all": st.dictionaries(
            st.sampled_from(["cla", "roc", "sad", "not_sad", "bright", "Cluster1", "x"]),
            json_scalars,
            max_size=5,
        )
        | json_values,
        "value": json_scalars,
        "probability": json_scalars,
        "version": json_values,
    },
)
structured_documents = st.fixed_dictionaries(
    {},
    optional={
        "highlevel": st.dictionaries(model_names, classifier_entries | json_values, max_size=5) | json_values,
        "metadata": st.none()
        | st.fixed_dictionaries(
            {},
            optional={
                "tags": st.dictionaries(
                    tag_keys, st.lists(json_scalars, max_size=3) | json_values, max_size=6
                )
                | json_values,
                "version": json_values,
            },
        )
        | json_values,
    },
)


def assert_only_document_errors(data: bytes | str, mbid: str | None) -> None:
    """Any exception other than a DocumentError propagates and fails the test."""
    error: DocumentError | None = None
    try:
        parsed = parse_document(data, source="fuzz", mbid=mbid)
    except DocumentError as exc:
        error = exc
    if error is not None:
        assert error.source == "fuzz"
        assert error.reason in {"invalid_json", "wrong_shape", "missing_mbid"}
        return
    assert parsed.features.shape == (FEATURE_DIM,)
    assert np.all(np.isfinite(parsed.features))


# Example counts keep the file at a few seconds; raise them locally when changing the parser.
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestFuzz:
    @FUZZ
    @given(json_values, st.sampled_from([None, MBID]))
    def test_random_json_values(self, value: object, mbid: str | None) -> None:
        assert_only_document_errors(json.dumps(value), mbid)

    @FUZZ
    @given(structured_documents, st.sampled_from([None, MBID]))
    def test_random_structured_documents(self, document: object, mbid: str | None) -> None:
        assert_only_document_errors(json.dumps(document).encode(), mbid)

    @FUZZ
    @given(st.binary(max_size=200), st.sampled_from([None, MBID]))
    def test_random_bytes(self, data: bytes, mbid: str | None) -> None:
        assert_only_document_errors(data, mbid)

    @FUZZ
    @given(st.text(max_size=200))
    def test_random_text(self, data: str) -> None:
        assert_only_document_errors(data, None)

    @FUZZ
    @given(st.integers(0, 2_000), st.binary(min_size=1, max_size=8))
    def test_corrupted_real_document(self, position: int, junk: bytes) -> None:
        data = bytearray(NASCENCE_BYTES)
        position %= len(data)
        data[position : position + len(junk)] = junk
        assert_only_document_errors(bytes(data), MBID)

    @FUZZ
    @given(
        st.sampled_from(["highlevel", "metadata", "tags", "title", "genre_rosamerica", "all", "value"]),
        json_values,
    )
    def test_real_document_with_one_value_replaced(self, key: str, replacement: object) -> None:
        document = copy.deepcopy(NASCENCE_DOCUMENT)

        def replace(node: object) -> None:
            if isinstance(node, dict):
                for k in node:
                    if k == key:
                        node[k] = replacement
                    else:
                        replace(node[k])

        replace(document)
        assert_only_document_errors(json.dumps(document), None)
