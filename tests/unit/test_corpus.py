"""The synthetic AcousticBrainz corpus: dump shape and serialisation, determinism, planted structure,
and summary counts that agree with what is actually in the files (re-counted here independently)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from musicrec_common.corpus import (
    CORPUS_FORMAT_VERSION,
    STYLES,
    CorpusSummary,
    TruthRecord,
    _dump_json,
    _dump_tags,
    _format_probabilities,
    generate_corpus,
    iter_corpus,
    read_ground_truth,
)

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "acousticbrainz"
MODEL_FIXTURE = "564ccd5c-c4d3-4752-9abf-c33bb085d6a5.json"
NAME_RE = re.compile(
    r"^(?P<mbid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-(?P<n>\d+)\.json$"
)
UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

TRACKS = 1000
SEED = 7

# Date shapes, written independently of the generator. Order matters: first match wins.
DATE_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("empty", re.compile(r"")),
    ("YYYY", re.compile(r"\d{4}")),
    ("YYYY-MM", re.compile(r"\d{4}-\d{2}")),
    ("YYYY-MM-DD", re.compile(r"\d{4}-\d{2}-\d{2}")),
    ("YYYY-MM-DD HH:MM:SS", re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")),
    ("YYYY-MM-DDTHH:MM:SSZ", re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")),
    ("YYYY-MM-DDTHH:MM:SS+HH:MM", re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}")),
    ("YYYY/MM/DD", re.compile(r"\d{4}/\d{2}/\d{2}")),
    ("YYYY.MM.DD", re.compile(r"\d{4}\.\d{2}\.\d{2}")),
    ("YYYYMMDD", re.compile(r"\d{8}")),
    ("YYYY junk", re.compile(r"\d{4}\D.*")),
)
PLACEHOLDER_RE = re.compile(r"\[untitled\]|\[unknown\]|Untitled|Intro|End Credits|Finale|Track \d{2}")


@dataclass(frozen=True)
class Member:
    path: str
    mbid: str
    n: int
    raw: bytes
    doc: dict[str, Any]

    @property
    def tags(self) -> dict[str, Any]:
        tags: dict[str, Any] = self.doc["metadata"]["tags"]
        return tags


@dataclass(frozen=True)
class Corpus:
    root: Path
    summary: CorpusSummary
    members: list[Member]
    truth: dict[str, TruthRecord]
    progress: list[tuple[int, int]]


def _members(items: Iterable[tuple[str, bytes]]) -> list[Member]:
    out = []
    for path, raw in items:
        match = NAME_RE.match(path.rsplit("/", 1)[-1])
        assert match is not None, path
        out.append(Member(path, match["mbid"], int(match["n"]), raw, json.loads(raw)))
    return out


def _digest(items: Iterable[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for path, raw in items:
        h.update(path.encode())
        h.update(raw)
    return h.hexdigest()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("corpus")
    calls: list[tuple[int, int]] = []
    summary = generate_corpus(
        root, tracks=TRACKS, seed=SEED, progress=lambda done, total: calls.append((done, total))
    )
    files = sorted(p for p in (root / "highlevel").rglob("*") if p.is_file())
    members = _members((p.relative_to(root).as_posix(), p.read_bytes()) for p in files)
    return Corpus(root, summary, members, read_ground_truth(root), calls)


@pytest.fixture(scope="module")
def fixture_doc() -> dict[str, Any]:
    path = FIXTURES / MODEL_FIXTURE
    if not path.exists():
        pytest.skip(f"real fixture not found at {path}")
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


# --- determinism and streaming --------------------------------------------------------------------


def test_same_tracks_and_seed_give_identical_bytes() -> None:
    assert _digest(iter_corpus(300, seed=5)) == _digest(iter_corpus(300, seed=5))


def test_another_seed_gives_another_corpus() -> None:
    first = dict(iter_corpus(300, seed=5))
    second = dict(iter_corpus(300, seed=6))
    assert _digest(first.items()) != _digest(second.items())
    assert not set(first) & set(second)


def test_a_corpus_starts_like_a_larger_one_of_its_seed() -> None:
    """Chunks of 1,000 tracks depend only on (seed, chunk index): the first chunk's members are the
    same whatever the corpus size (the last chunk also takes its own later submissions)."""
    small = list(iter_corpus(2000, seed=4))
    large = list(iter_corpus(3500, seed=4))
    assert all(name.endswith("-0.json") for name, _ in small[:1000])  # the first chunk: 1,000 tracks
    assert large[:1000] == small[:1000]
    assert large[1000:1500] == small[1000:1500]  # the next chunk's first submissions come next


def test_written_files_are_exactly_the_streamed_members(corpus: Corpus) -> None:
    streamed = dict(iter_corpus(TRACKS, seed=SEED))
    on_disk = {m.path: m.raw for m in corpus.members}
    assert streamed == on_disk


def test_iter_corpus_is_lazy() -> None:
    stream = iter_corpus(10_000_000, seed=1)
    first = [next(stream) for _ in range(5)]
    assert all(path.startswith("highlevel/") for path, _ in first)


def test_small_and_empty_corpora() -> None:
    assert list(iter_corpus(0)) == []
    one = _members(iter_corpus(1, seed=3))
    assert {m.mbid for m in one} == {one[0].mbid}
    assert 0 in {m.n for m in one}
    with pytest.raises(ValueError, match="tracks"):
        list(iter_corpus(-1))


# --- names and layout -----------------------------------------------------------------------------


def test_member_paths_follow_the_dump_layout(corpus: Corpus) -> None:
    for m in corpus.members:
        top, d1, d2, name = m.path.split("/")
        assert top == "highlevel"
        assert (d1, d2) == (m.mbid[0:2], m.mbid[2])
        assert NAME_RE.match(name)
        assert UUID4_RE.match(m.mbid)


def test_offsets_start_at_zero_and_are_contiguous(corpus: Corpus) -> None:
    offsets: dict[str, set[int]] = defaultdict(set)
    for m in corpus.members:
        offsets[m.mbid].add(m.n)
    assert len(offsets) == TRACKS
    for ns in offsets.values():
        assert ns == set(range(len(ns)))
        assert len(ns) <= 4
    multi = sum(len(ns) > 1 for ns in offsets.values()) / len(offsets)
    assert 0.22 < multi < 0.38


def test_later_offsets_are_not_adjacent_to_their_first_submission() -> None:
    order = [path for path, _ in iter_corpus(1500, seed=2)]
    position = {path.rsplit("/", 1)[-1]: i for i, path in enumerate(order)}
    gaps = [
        i - position[path.rsplit("/", 1)[-1][:37] + "0.json"]
        for i, path in enumerate(order)
        if not path.endswith("-0.json")
    ]
    assert gaps
    assert min(gaps) > 0  # this generator emits n = 0 first (the dump only does so across chunks)
    assert max(gaps) > 500


# --- serialisation --------------------------------------------------------------------------------


def test_serialisation_is_the_dumps(corpus: Corpus) -> None:
    saw_slash = saw_unicode = False
    for m in corpus.members:
        expected = json.dumps(m.doc, ensure_ascii=True, separators=(",", ":"), sort_keys=True)
        assert m.raw == expected.replace("/", "\\/").encode("ascii")
        assert not m.raw.endswith(b"\n")
        assert re.search(rb"(?<!\\)/", m.raw) is None
        saw_slash = saw_slash or b"\\/" in m.raw
        saw_unicode = saw_unicode or b"\\u" in m.raw
    assert saw_slash
    assert saw_unicode


def _awkward_probabilities() -> np.ndarray[Any, np.dtype[np.float64]]:
    """Values where a shortcut in formatting would show: near powers of ten and near halfway
    between two 12-digit decimals, very small ones, short decimals, and plain random ones."""
    rng = np.random.default_rng(11)
    exponents = rng.integers(-10, 0, 20_000)
    near_powers = 10.0**exponents * (1 + rng.normal(0, 1e-11, exponents.size))
    mantissas = rng.integers(10**11, 10**12, 20_000)
    halfway = (mantissas + 0.5) / 10.0 ** (11 - rng.integers(-10, 0, mantissas.size))
    short = rng.integers(1, 10_000, 20_000) / 10.0 ** rng.integers(4, 16, 20_000)
    values = np.concatenate(
        [
            rng.random(50_000),
            10.0 ** rng.uniform(-12, 0, 50_000),
            near_powers,
            halfway,
            short,
            [1e-10, 1e-5, 1e-4, 0.001, 0.1, 0.5, 0.9999999999995, 1 - 1e-9, 5e-324, 2.2e-308],
        ]
    )
    return values[(values > 0) & (values < 1)]


def test_probabilities_are_formatted_like_python() -> None:
    """The vectorised "%.12g" gives Python's bytes exactly, also where float rounding is tight."""
    values = _awkward_probabilities()
    formatted = _format_probabilities(values)
    assert formatted.tolist() == [b"%.12g" % v for v in values.tolist()]


def test_tags_are_serialised_like_json() -> None:
    """orjson plus the escaping of the rest equals json.dumps(ensure_ascii=True) with "\\/"."""
    cases: list[dict[str, object]] = [
        {"title": ["Plain"], "album": ["A/B"], "file_name": '01 12" Vinyl.mp3'},
        {"artist": ["José González"], "title": ["バビブ песня"]},
        {"title": ["\U0001f3b5 notes \u2028 \x7f del", "back\\slash", "tab\tnew\nline"], "z": "", "a": []},
    ]
    for tags in cases:
        assert _dump_tags(tags) == _dump_json(tags).encode("ascii")


# --- shape ----------------------------------------------------------------------------------------


def test_classifiers_match_the_real_document(corpus: Corpus, fixture_doc: dict[str, Any]) -> None:
    real = fixture_doc["highlevel"]
    labels = {model: set(entry["all"]) for model, entry in real.items()}
    assert len(labels) == 18
    for m in corpus.members:
        assert set(m.doc) == {"highlevel", "metadata"}
        highlevel = m.doc["highlevel"]
        assert {model: set(entry["all"]) for model, entry in highlevel.items()} == labels
        for model, entry in highlevel.items():
            assert set(entry) == {"all", "probability", "value", "version"}
            assert entry["version"] == real[model]["version"]
            probabilities = entry["all"]
            assert all(isinstance(p, float) and 0.0 < p < 1.0 for p in probabilities.values())
            assert math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-6)
            assert entry["probability"] == probabilities[entry["value"]]
            assert entry["probability"] == max(probabilities.values())


def test_metadata_matches_the_real_document(corpus: Corpus, fixture_doc: dict[str, Any]) -> None:
    real = fixture_doc["metadata"]
    audio_types = {key: type(value) for key, value in real["audio_properties"].items()}
    for m in corpus.members:
        metadata = m.doc["metadata"]
        assert set(metadata) == set(real)
        audio = metadata["audio_properties"]
        assert {key: type(value) for key, value in audio.items()} == audio_types
        assert audio["lossless"] in (0, 1)
        assert (audio["codec"] == "flac") == (audio["lossless"] == 1) == (audio["bit_rate"] == 0)
        assert re.fullmatch(r"[0-9a-f]{32}", audio["md5_encoded"])
        assert audio["length"] > 0
        version = metadata["version"]
        assert version["highlevel"] == real["version"]["highlevel"]
        assert set(version["lowlevel"]) == set(real["version"]["lowlevel"])
        for key, value in m.tags.items():
            if key == "file_name":
                assert isinstance(value, str)
                assert value
            else:
                assert isinstance(value, list), key
                assert value, key
                assert all(isinstance(v, str) for v in value), key
        assert m.tags["musicbrainz_recordingid"] == [m.mbid]
        assert re.fullmatch(r"0?\d+(/\d+)?", m.tags["tracknumber"][0])


def test_tags_look_like_real_taggers(corpus: Corpus) -> None:
    keys = Counter(key for m in corpus.members for key in m.tags)
    for key in (
        "artist",
        "title",
        "album",
        "date",
        "originaldate",
        "albumartist",
        "musicbrainz_albumid",
        "musicbrainz_artistid",
        "tracknumber",
        "genre",
        "musicbrainz album type",
        "releasetype",
        "totaltracks",
        "tracktotal",
    ):
        assert keys[key] > 0, key
    assert any("/" in m.tags["tracknumber"][0] for m in corpus.members)
    differing = [
        m
        for m in corpus.members
        if "date" in m.tags and "originaldate" in m.tags and m.tags["date"] != m.tags["originaldate"]
    ]
    assert differing


# --- summary and ground truth ---------------------------------------------------------------------


def _date_shape(value: str) -> str:
    for shape, pattern in DATE_SHAPES:
        if pattern.fullmatch(value):
            return shape
    raise AssertionError(f"unexpected date form {value!r}")


def _is_impossible(value: str) -> bool:
    """A date of a valid shape that names no real day (or an absurd year)."""
    parts = re.match(r"(\d{4})(?:[-/.]?(\d{2}))?(?:[-/.]?(\d{2}))?", value)
    assert parts is not None, value
    year, month, day = int(parts[1]), parts[2], parts[3]
    if not 1000 <= year <= 2100:
        return True
    if month is not None and not 1 <= int(month) <= 12:
        return True
    if month is not None and day is not None:
        try:
            dt.date(year, int(month), int(day))
        except ValueError:
            return True
    return False


def test_summary_counts_agree_with_the_files(corpus: Corpus) -> None:
    members = corpus.members
    titles = [m.tags["title"][0] for m in members if "title" in m.tags]
    dates = [m.tags["date"][0] for m in members if "date" in m.tags]
    recounted = CorpusSummary(
        tracks=len({m.mbid for m in members}),
        documents=len(members),
        duplicate_submissions=sum(m.n > 0 for m in members),
        styles=len({t.style for t in corpus.truth.values()}),
        artists=len({t.artist for t in corpus.truth.values()}),
        missing_title=sum("title" not in m.tags for m in members),
        missing_artist=sum("artist" not in m.tags for m in members),
        placeholder_titles=sum(PLACEHOLDER_RE.fullmatch(t) is not None for t in titles),
        dates_by_form=dict(sorted(Counter(_date_shape(d) for d in dates).items())),
        impossible_dates=sum(_is_impossible(d) for d in dates if d),
        missing_dates=sum("date" not in m.tags for m in members),
    )
    assert corpus.summary == recounted
    info = json.loads((corpus.root / "corpus.json").read_text(encoding="utf-8"))
    assert info["summary"] == asdict(corpus.summary)
    assert (info["tracks"], info["seed"], info["format_version"]) == (TRACKS, SEED, CORPUS_FORMAT_VERSION)


def test_planted_mess_has_roughly_the_asked_rates(corpus: Corpus) -> None:
    s = corpus.summary
    docs = s.documents
    assert s.tracks == TRACKS
    assert s.styles == len(STYLES)
    assert 0.005 < s.missing_title / docs < 0.04
    assert 0.005 < s.missing_artist / docs < 0.04
    assert 0.003 < s.placeholder_titles / docs < 0.03
    assert 0.002 < s.impossible_dates / docs < 0.025
    assert 0.01 < s.missing_dates / docs < 0.06
    assert len(s.dates_by_form) >= 10
    padded = [
        value
        for m in corpus.members
        for key in ("title", "artist")
        if key in m.tags
        for value in m.tags[key]
        if value != value.strip() or "  " in value
    ]
    assert padded


def test_later_submissions_are_perturbed(corpus: Corpus) -> None:
    first = {m.mbid: m for m in corpus.members if m.n == 0}
    later = [m for m in corpus.members if m.n > 0]
    assert later
    changed_tags = 0
    for m in later:
        a = first[m.mbid].doc["highlevel"]["genre_rosamerica"]["all"]
        b = m.doc["highlevel"]["genre_rosamerica"]["all"]
        assert a != b
        assert max(abs(a[k] - b[k]) for k in a) < 0.3
        changed_tags += m.tags.get("date") != first[m.mbid].tags.get("date")
    assert changed_tags > 0


def test_ground_truth_covers_every_recording(corpus: Corpus) -> None:
    assert set(corpus.truth) == {m.mbid for m in corpus.members}
    names = {s.name: s.style_id for s in STYLES}
    for record in corpus.truth.values():
        assert names[record.style] == record.style_id
        assert record.artist == record.artist.strip()
        assert record.title
        assert record.album
        assert record.year is not None
        assert 1950 <= record.year <= 2021
        assert unicodedata.is_normalized("NFC", record.artist + record.title)
    lines = (corpus.root / "ground_truth.ndjson").read_text(encoding="utf-8").splitlines()
    assert len(lines) == TRACKS
    # Each line is json.dumps of the record's fields in a fixed order (default separators, UTF-8).
    assert all(json.dumps(json.loads(line), ensure_ascii=False) == line for line in lines)
    assert list(json.loads(lines[0])) == ["album", "artist", "mbid", "style", "style_id", "title", "year"]


def test_progress_is_reported(corpus: Corpus) -> None:
    assert corpus.progress
    assert corpus.progress[-1] == (TRACKS, TRACKS)
    done = [d for d, _ in corpus.progress]
    assert done == sorted(done)


def test_refuses_to_mix_with_an_existing_corpus(corpus: Corpus) -> None:
    with pytest.raises(FileExistsError):
        generate_corpus(corpus.root, tracks=10)


# --- planted structure ----------------------------------------------------------------------------


def test_genre_winners_mostly_agree_with_the_style(corpus: Corpus) -> None:
    by_style: dict[int, list[Member]] = defaultdict(list)
    for m in corpus.members:
        if m.n == 0:
            by_style[corpus.truth[m.mbid].style_id].append(m)
    overall = []
    for style in STYLES:
        members = by_style[style.style_id]
        if len(members) < 30:
            continue
        main = style.main_label("genre_rosamerica")
        agree = [m.doc["highlevel"]["genre_rosamerica"]["value"] == main for m in members]
        assert sum(agree) / len(agree) >= 0.6, style.name
        overall.extend(agree)
    assert 0.7 < sum(overall) / len(overall) < 0.97  # strong but imperfect


def test_artists_have_one_style_and_albums_one_year(corpus: Corpus) -> None:
    styles: dict[str, set[str]] = defaultdict(set)
    for record in corpus.truth.values():
        styles[record.artist].add(record.style)
    assert max(len(s) for s in styles.values()) <= 2
    assert sum(len(s) == 1 for s in styles.values()) / len(styles) > 0.9
    # By album MBID: an artist can have two albums of one title (self-titled ones) from other years.
    years: dict[str, set[int | None]] = defaultdict(set)
    for m in corpus.members:
        if "musicbrainz_albumid" in m.tags:
            years[m.tags["musicbrainz_albumid"][0]].add(corpus.truth[m.mbid].year)
    assert len(years) > 100
    assert all(len(y) == 1 for y in years.values())
    sizes = Counter(record.artist for record in corpus.truth.values())
    assert max(sizes.values()) <= 30
    assert sizes.most_common(1)[0][1] >= 10  # heavy tail


def test_names_use_several_scripts(corpus: Corpus) -> None:
    texts = [t.artist for t in corpus.truth.values()] + [t.title for t in corpus.truth.values()]
    assert any(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", t) for t in texts)
    assert any(re.search(r"[\u0400-\u04ff]", t) for t in texts)
    assert any(re.search(r"[éöñüáíçäè]", t) for t in texts)


def test_the_nearest_neighbours_share_the_style(corpus: Corpus) -> None:
    """The style is recoverable from the probabilities, but not trivially (cosine on the genre models)."""
    first = [m for m in corpus.members if m.n == 0]
    models = ("genre_rosamerica", "genre_tzanetakis", "genre_dortmund", "genre_electronic")
    vectors = np.array(
        [[p for model in models for p in m.doc["highlevel"][model]["all"].values()] for m in first]
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    style = np.array([corpus.truth[m.mbid].style_id for m in first])
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.argsort(-similarity, axis=1)[:, :10]
    precision = float((style[nearest] == style[:, None]).mean())
    assert 0.45 < precision < 0.95
