"""Reading dump sources and choosing one submission per recording (no servers)."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from musicrec_common.model import Track
from musicrec_ingestor.pipeline import MAX_SKIPPED_LISTED, IngestCounts, Skipped, count_problem, parse_batch
from musicrec_ingestor.sources import Document, SourceProblem, describe_unsupported, iter_source

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "acousticbrainz"
PINK_FLOYD = "564ccd5c-c4d3-4752-9abf-c33bb085d6a5"
ROOT = "acousticbrainz-highlevel-json-20220623"


def _doc(
    title: str | None = "Song",
    artist: str | None = "Band",
    date: str | None = "1994",
    album: str | None = "LP",
) -> bytes:
    base = json.loads((FIXTURES / f"{PINK_FLOYD}.json").read_text())
    tags = base["metadata"]["tags"]
    for key, value in (("title", title), ("artist", artist), ("date", date), ("album", album)):
        tags.pop(key, None)
        if value is not None:
            tags[key] = [value]
    tags.pop("originaldate", None)
    return json.dumps(base, sort_keys=True, separators=(",", ":")).encode()


def _member(mbid: str, n: int) -> str:
    return f"{ROOT}/highlevel/{mbid[:2]}/{mbid[2]}/{mbid}-{n}.json"


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w|") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


MBID_A = "000abf35-b0f2-4985-82c9-bd3ef80e0699"
MBID_B = "f1e2d3c4-0000-4000-8000-000000000001"


def _members() -> list[tuple[str, bytes]]:
    return [
        (f"{ROOT}/COPYING", b"license"),
        (_member(MBID_A, 0), _doc(album=None)),
        (_member(MBID_A, 1), _doc()),
        (_member(MBID_A, 2), _doc()),
        (_member(MBID_B, 0), b"{not json"),
        (_member(MBID_B, 1), _doc(title=None)),
        (_member(MBID_B, 2), _doc(date="2001-13-01")),
    ]


@dataclass
class Selection:
    """Everything a source yields, parsed as one batch (what a run does batch by batch)."""

    counts: IngestCounts
    chosen: dict[str, Track]
    skipped: list[Skipped]


def _select(items: list[Document | SourceProblem]) -> Selection:
    result = parse_batch([i for i in items if isinstance(i, Document)])
    skipped = list(result.skipped)
    for problem in (i for i in items if isinstance(i, SourceProblem)):
        count_problem(result.counts, problem.reason)
        skipped.append(Skipped(problem.source, problem.reason, problem.detail))
    valid = result.counts.documents_parsed - result.counts.missing_title - result.counts.missing_artist
    result.counts.duplicate_submissions = valid - len(result.ids)
    return Selection(result.counts, {t.mbid: t for t in result.tracks()}, skipped)


def _selection(path: Path) -> Selection:
    return _select(list(iter_source(path)))


@pytest.mark.parametrize("compressed", [False, True])
def test_archives_are_read_as_streams_with_every_count(tmp_path: Path, compressed: bool) -> None:
    data = _tar(_members())
    path = tmp_path / ("dump.tar.zst" if compressed else "dump.tar")
    path.write_bytes(zstandard.ZstdCompressor(level=3).compress(data) if compressed else data)
    selection = _selection(path)
    c = selection.counts
    assert (c.documents_read, c.documents_parsed, c.invalid_json) == (6, 5, 1)
    assert (c.missing_title, c.invalid_release_date, c.ignored_members) == (1, 1, 1)
    assert c.duplicate_submissions == 2
    # MBID_A: submission 1 has the album, so it beats 0; 1 and 2 tie, and the lower number wins.
    assert selection.chosen[MBID_A].submission == 1
    assert selection.chosen[MBID_B].submission == 2
    assert selection.chosen[MBID_B].year is None


def test_choice_does_not_depend_on_order(tmp_path: Path) -> None:
    items = list(iter_source(_write_tar(tmp_path / "a.tar", _members())))
    forward, backward = _select(items), _select(items[::-1])
    assert forward.chosen == backward.chosen
    assert forward.counts == backward.counts


def _write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.write_bytes(_tar(members))
    return path


def test_a_truncated_archive_keeps_everything_before_the_cut(tmp_path: Path) -> None:
    # Random bytes padding the titles keep zstd from squeezing the archive into one tiny block.
    rng = random.Random(1)
    good = [
        (_member(f"{i:08x}-0000-4000-8000-000000000000", 0), _doc(title=f"T{i} {rng.randbytes(3000).hex()}"))
        for i in range(200)
    ]
    data = zstandard.ZstdCompressor().compress(_tar(good))
    path = tmp_path / "cut.tar.zst"
    path.write_bytes(data[: len(data) * 2 // 3])
    items = list(iter_source(path))
    documents = [i for i in items if isinstance(i, Document)]
    problems = [i for i in items if isinstance(i, SourceProblem)]
    assert 0 < len(documents) < 200
    assert [p.reason for p in problems] == ["corrupt_archive"]
    selection = _select(items)
    assert len(selection.chosen) == len(documents)
    assert selection.counts.corrupt_sources == 1


def test_multi_frame_zstd_archives_read_whole(tmp_path: Path) -> None:
    data = _tar(_members())
    half = len(data) // 2
    compressor = zstandard.ZstdCompressor()
    path = tmp_path / "frames.tar.zst"
    path.write_bytes(compressor.compress(data[:half]) + compressor.compress(data[half:]))
    assert _selection(path).counts.documents_read == 6


def test_corrupt_zstd_is_a_counted_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.tar.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 100)
    items = list(iter_source(path))
    assert len(items) == 1
    assert isinstance(items[0], SourceProblem)
    assert items[0].reason == "corrupt_archive"


def test_folders_ndjson_and_single_files(tmp_path: Path) -> None:
    folder = tmp_path / "dump"
    for name, data in _members():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    assert _selection(folder).counts.documents_read == 6
    ndjson = tmp_path / "docs.ndjson"
    ndjson.write_bytes(_doc() + b"\n\n" + b"[1,2]\n" + _doc(title="Other") + b"\n")
    counts = _selection(ndjson).counts
    # NDJSON lines have no file name: the MBID comes from the tags, so both lines are one recording.
    assert (counts.documents_read, counts.wrong_shape, counts.duplicate_submissions) == (3, 1, 1)
    single = tmp_path / f"{MBID_A}-3.json"
    single.write_bytes(_doc())
    assert _selection(single).chosen[MBID_A].submission == 3


def test_unsupported_paths_are_described(tmp_path: Path) -> None:
    assert "no such file" in (describe_unsupported(tmp_path / "missing") or "")
    (tmp_path / "notes.txt").write_text("x")
    assert "not a folder" in (describe_unsupported(tmp_path / "notes.txt") or "")
    assert describe_unsupported(tmp_path) is None


def test_skipped_list_is_bounded_but_counts_are_not(tmp_path: Path) -> None:
    members = [(_member(f"{i:08x}-0000-4000-8000-000000000000", 0), b"nope") for i in range(150)]
    selection = _selection(_write_tar(tmp_path / "bad.tar", members))
    assert selection.counts.invalid_json == 150
    assert len(
        parse_batch([i for i in iter_source(tmp_path / "bad.tar") if isinstance(i, Document)]).skipped
    ) == (MAX_SKIPPED_LISTED)
    assert all(s.reason == "invalid_json" for s in selection.skipped)


def test_vector_payload_holds_the_filter_fields_and_the_preference() -> None:
    from musicrec_common.features import TRAITS
    from musicrec_common.model import GenrePrediction
    from musicrec_vectorstore.payload import PPM, name_hash, payload_for

    track = Track(
        mbid=MBID_A,
        submission=3,
        title="Song",
        artist="Band",
        album=None,
        release_date=None,
        year=1994,
        rosamerica=GenrePrediction("roc", 0.7),
        dortmund=None,
        tzanetakis=GenrePrediction("pop", 0.4),
        is_placeholder_title=False,
    )
    traits = [0.25] * len(TRAITS)
    traits[1] = math.nan  # unknown
    payload = payload_for(track, traits)
    expected: dict[str, object] = {
        "rosamerica": "roc",
        "rosamerica_p": 700_000,
        "rosamerica_decade": "roc@1990",
        "tzanetakis": "pop",
        "tzanetakis_p": 400_000,
        "tzanetakis_decade": "pop@1990",
        "year": 1994,
        "placeholder": False,
        "artist": name_hash("Band"),
        "work": name_hash("Band", "Song"),
        "completeness": 3,
        "submission": 3,
    }
    expected.update({t.name: PPM // 4 for i, t in enumerate(TRAITS) if i != 1})
    assert payload == expected
    # No year, no decade: neither the year nor any "<label>@<decade>" keyword.
    undated = payload_for(dataclasses.replace(track, year=None), traits)
    assert set(undated) == {k for k in expected if k != "year" and not k.endswith("_decade")}
    # Names that fold alike hash alike; different ones do not.
    assert name_hash("BAND") == name_hash(" band ") == payload["artist"]
    assert name_hash("Band", "Song") != name_hash("Band", "Song 2")
    assert name_hash("Bandsong") != name_hash("Band", "song")


@pytest.mark.parametrize("decimal", ["0.57", "0.7", "0.1", "0.29", "0.999999", "0", "1", "0.333333"])
def test_probability_thresholds_compare_as_the_decimals_do(decimal: str) -> None:
    from musicrec_vectorstore.payload import ppm_at_least, ppm_at_most, to_ppm

    value = float(decimal)
    assert ppm_at_least(value) <= to_ppm(value) <= ppm_at_most(value)
    above = float(decimal) + 1e-6
    below = float(decimal) - 1e-6
    assert to_ppm(above) > ppm_at_most(value)
    assert to_ppm(below) < ppm_at_least(value)
