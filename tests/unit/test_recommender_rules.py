"""Pure rules of the recommender: filters from a request, similarity statistics, the table."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from musicrec.recommender.v1 import recommender_pb2
from musicrec_cli.render import recommendation_table
from musicrec_common.errors import FailedPreconditionError, InvalidArgumentError
from musicrec_common.model import GenreClassifier, GenrePrediction, Track
from musicrec_recommender.ranking import (
    Candidate,
    FilterSpec,
    SeedFacts,
    TraitBound,
    query_vector,
    resolve_filter,
    search_width,
    select,
    similarity_stats,
    trait_penalty,
    trait_value,
    validate_limit,
    validate_traits,
)
from musicrec_vectorstore import PayloadValue, Range
from musicrec_vectorstore.payload import name_hash, payload_for

pytestmark = pytest.mark.unit


def _track(year: int | None = 1994, rosamerica: str | None = "roc") -> SeedFacts:
    """A seed as the recommender sees it before the search: through its payload in the index."""
    track = Track(
        mbid="564ccd5c-c4d3-4752-9abf-c33bb085d6a5",
        submission=0,
        title="Song",
        artist="Band",
        album=None,
        release_date=dt.date(year, 5, 1) if year else None,
        year=year,
        rosamerica=GenrePrediction(rosamerica, 0.8) if rosamerica else None,
        dortmund=GenrePrediction("rock", 0.6),
        tzanetakis=None,
    )
    return SeedFacts.from_payload(track.mbid, payload_for(track))


def test_same_genre_and_decade_come_from_the_seed() -> None:
    spec = resolve_filter(_track(), GenreClassifier.ROSAMERICA, same_genre=True, same_decade=True)
    assert (spec.genres, spec.decade, spec.min_year, spec.max_year) == (("roc",), 1990, 1990, 1999)
    spec = resolve_filter(_track(), GenreClassifier.DORTMUND, same_genre=True)
    assert (spec.genres, spec.decade, spec.min_year, spec.max_year) == (("rock",), None, None, None)


def test_seed_facts_come_from_the_payload() -> None:
    seed = _track()
    assert seed.genres == {"rosamerica": "roc", "dortmund": "rock"}
    assert (seed.year, seed.decade, seed.artist_hash) == (1994, 1990, name_hash("Band"))
    bare = SeedFacts.from_payload("x", {"placeholder": False, "year": True, "artist": "Band"})
    assert (bare.genres, bare.year, bare.artist_hash) == ({}, None, None)
    with pytest.raises(FailedPreconditionError, match="no rosamerica genre"):
        resolve_filter(bare, GenreClassifier.ROSAMERICA, same_genre=True)
    with pytest.raises(FailedPreconditionError, match="no known release year"):
        resolve_filter(bare, GenreClassifier.ROSAMERICA, same_decade=True)


def test_explicit_values_win_and_are_validated() -> None:
    seed = _track()
    spec = resolve_filter(
        seed, GenreClassifier.ROSAMERICA, genre="jaz", same_genre=True, decade=1960, same_decade=True
    )
    assert (spec.genres, spec.decade) == (("jaz",), 1960)
    spec = resolve_filter(seed, GenreClassifier.ROSAMERICA, genre="jaz", genres=["pop", "jaz"], decade=1960)
    assert spec.genres == ("jaz", "pop")
    # A year range wins over decades.
    spec = resolve_filter(seed, GenreClassifier.ROSAMERICA, decade=1960, same_decade=True, min_year=1985)
    assert (spec.decade, spec.min_year, spec.max_year) == (None, 1985, None)
    with pytest.raises(InvalidArgumentError, match="genre: 'jazz' is not a rosamerica label"):
        resolve_filter(seed, GenreClassifier.ROSAMERICA, genre="jazz")
    with pytest.raises(InvalidArgumentError, match="genres: 'rock' is not a rosamerica label"):
        resolve_filter(seed, GenreClassifier.ROSAMERICA, genres=["roc", "rock"])
    with pytest.raises(InvalidArgumentError, match="decade"):
        resolve_filter(seed, GenreClassifier.ROSAMERICA, decade=1995)
    with pytest.raises(InvalidArgumentError, match="min_year"):
        resolve_filter(seed, GenreClassifier.ROSAMERICA, min_year=2000, max_year=1990)
    with pytest.raises(InvalidArgumentError, match="max_year"):
        resolve_filter(seed, GenreClassifier.ROSAMERICA, max_year=99999)
    with pytest.raises(InvalidArgumentError, match="min_genre_probability: needs a genre filter"):
        resolve_filter(seed, GenreClassifier.ROSAMERICA, min_genre_probability=0.5)
    with pytest.raises(InvalidArgumentError, match="min_genre_probability: must be in"):
        resolve_filter(seed, GenreClassifier.ROSAMERICA, genre="roc", min_genre_probability=1.5)


def test_a_filter_spec_becomes_exact_payload_conditions() -> None:
    spec = FilterSpec(
        classifier=GenreClassifier.DORTMUND,
        genres=("rock", "pop"),
        min_genre_probability=0.57,
        min_year=1990,
        max_year=1999,
        exclude_ids=("a",),
        exclude_artist_hashes=(name_hash("Band"), name_hash("BAND")),
        traits=(
            TraitBound("happy", min=0.6),
            TraitBound("sad", max=0.2, target=0.1),
            TraitBound("party", target=1),
        ),
    )
    search = spec.search_filter()
    assert search.any_of == {"dortmund": ["rock", "pop"]}
    assert search.ranges == {
        "dortmund_p": Range(gte=570_000),
        "year": Range(gte=1990, lte=1999),
        "happy": Range(gte=600_000, lte=None),
        "sad": Range(gte=None, lte=200_000),
    }
    assert search.exclude_values == {"artist": [name_hash("band")]}
    assert list(search.exclude_ids) == ["a"]
    assert search.exclude_placeholders is True


def test_genres_in_a_decade_become_one_keyword_match() -> None:
    spec = resolve_filter(_track(), GenreClassifier.DORTMUND, genres=["rock", "pop"], decade=1980)
    search = spec.search_filter()
    assert search.any_of == {"dortmund_decade": ["rock@1980", "pop@1980"]}
    assert "year" not in search.ranges
    # A year range, or a decade without a genre, stays a range on the year.
    spec = resolve_filter(_track(), GenreClassifier.DORTMUND, genres=["rock"], min_year=1980, max_year=1989)
    assert spec.search_filter().any_of == {"dortmund": ["rock"]}
    assert spec.search_filter().ranges == {"year": Range(gte=1980, lte=1989)}
    spec = resolve_filter(_track(), GenreClassifier.DORTMUND, same_decade=True)
    assert (spec.search_filter().any_of, spec.search_filter().ranges) == ({}, {"year": Range(1990, 1999)})


def test_queries_of_several_seeds_search_wider_up_to_a_bound() -> None:
    assert [search_width(n) for n in (1, 2, 3, 4, 20)] == [1, 2, 3, 3, 3]


def test_trait_bounds_are_validated() -> None:
    assert validate_traits([TraitBound("happy", min=0.2, max=0.4)])
    for bad, message in (
        (TraitBound("joy", min=0.1), "unknown trait"),
        (TraitBound("happy", min=0.5, max=0.4), "above max"),
        (TraitBound("happy", target=1.2), "must be in"),
        (TraitBound("happy"), "give min, max or target"),
    ):
        with pytest.raises(InvalidArgumentError, match=message):
            validate_traits([bad])
    with pytest.raises(InvalidArgumentError, match="given twice"):
        validate_traits([TraitBound("happy", min=0.1), TraitBound("happy", max=0.9)])


def test_the_query_of_several_seeds_and_negative_seeds() -> None:
    a = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    b = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    np.testing.assert_allclose(query_vector([a]), a)
    np.testing.assert_allclose(query_vector([a, b]), np.array([1, 1, 0]) / np.sqrt(2), atol=1e-7)
    pushed = query_vector([a], [b])
    assert float(pushed @ b) < 0 < float(pushed @ a)
    assert float(np.linalg.norm(pushed)) == pytest.approx(1.0)
    with pytest.raises(FailedPreconditionError, match="cancel out"):
        query_vector([a, -a])


def _candidate(i: int, score: float, artist: int | None = None, work: int | None = None) -> Candidate:
    payload: dict[str, PayloadValue] = {}
    if artist is not None:
        payload["artist"] = artist
    if work is not None:
        payload["work"] = work
    return Candidate(id=f"t{i}", similarity=score, payload=payload, score=score)


def test_selection_caps_artists_and_drops_duplicate_titles() -> None:
    pool = [
        _candidate(0, 0.9, artist=1, work=10),
        _candidate(1, 0.89, artist=1, work=10),  # the same title again
        _candidate(2, 0.88, artist=1, work=11),
        _candidate(3, 0.87, artist=1, work=12),
        _candidate(4, 0.86, artist=1, work=13),  # a fourth by artist 1
        _candidate(5, 0.85, artist=2, work=20),
        _candidate(6, 0.84),  # no artist known: never capped
    ]
    assert [c.id for c in select(pool, 10)] == ["t0", "t2", "t3", "t5", "t6"]
    assert [c.id for c in select(pool, 10, max_per_artist=0)] == ["t0", "t2", "t3", "t4", "t5", "t6"]
    assert [c.id for c in select(pool, 3, max_per_artist=0, include_duplicates=True)] == ["t0", "t1", "t2"]
    assert [c.id for c in select(pool, 2, max_per_artist=1)] == ["t0", "t5"]


def test_selection_follows_scores_and_is_deterministic() -> None:
    pool = [_candidate(i, s) for i, s in enumerate([0.5, 0.9, 0.7, 0.7])]
    assert [c.id for c in select(pool, 4)] == ["t1", "t2", "t3", "t0"]
    assert [c.id for c in select(pool, 4)] == [c.id for c in select(list(pool), 4)]


def test_diversity_trades_similarity_for_variety() -> None:
    near = np.array([1.0, 0.0], dtype=np.float32)
    other = np.array([0.0, 1.0], dtype=np.float32)
    pool = [_candidate(0, 0.95), _candidate(1, 0.94), _candidate(2, 0.80)]
    for candidate, vector in zip(pool, (near, near, other), strict=True):
        candidate.vector = vector
    assert [c.id for c in select(pool, 2, diversity=0.0)] == ["t0", "t1"]
    assert [c.id for c in select(pool, 2, diversity=0.5)] == ["t0", "t2"]
    with pytest.raises(ValueError, match="diversity"):
        select(pool, 2, diversity=1.5)


def test_trait_targets_penalise_distance() -> None:
    bounds = [TraitBound("happy", target=0.8), TraitBound("sad", target=0.1), TraitBound("party", min=0.5)]
    payload: dict[str, PayloadValue] = {"happy": 600_000, "sad": 100_000}
    assert trait_value(payload, "happy") == pytest.approx(0.6)
    assert trait_penalty(payload, bounds, 0.5) == pytest.approx(0.5 * 0.2)
    assert trait_penalty({}, bounds, 1.0) == pytest.approx(1.0)  # both targets unknown: 0.5 each


@pytest.mark.parametrize("limit", [0, 101, 1000])
def test_limits_outside_1_to_100_are_refused(limit: int) -> None:
    with pytest.raises(InvalidArgumentError, match="limit"):
        validate_limit(limit)
    assert validate_limit(1) == 1
    assert validate_limit(100) == 100


def test_similarity_stats_match_numpy() -> None:
    values = [0.9, 0.8, 0.75, 0.5, 0.42]
    stats = similarity_stats(values)
    assert stats.count == 5
    assert stats.mean == pytest.approx(np.mean(values))
    assert stats.std == pytest.approx(np.std(values))
    assert stats.p95 == pytest.approx(np.percentile(values, 95))
    assert stats.max == 0.9
    assert similarity_stats([]).count == 0


def test_the_table_has_the_prototypes_columns_and_stats() -> None:
    response = recommender_pb2.RecommendResponse(
        seed=recommender_pb2.RecommendedTrack(
            mbid="s", artist="Seed", title="Song", year=1994, rosamerica="roc"
        ),
        tracks=[
            recommender_pb2.RecommendedTrack(
                mbid="m1",
                artist="Björk",
                title="Jóga",
                year=1997,
                dortmund="electronic",
                rosamerica="dan",
                similarity=0.87654,
            )
        ],
        stats=recommender_pb2.SimilarityStats(count=1, mean=0.87654, std=0.0, p95=0.87654, max=0.87654),
        filter=recommender_pb2.AppliedFilter(
            genre_classifier=recommender_pb2.GENRE_CLASSIFIER_ROSAMERICA, genre="roc", decade=1990
        ),
    )
    text = recommendation_table(response)
    header = next(line for line in text.splitlines() if line.startswith("Artist"))
    assert [c.strip() for c in header.split("|")] == [
        "Artist",
        "Title",
        "Year",
        "Dortmund",
        "Rosamerica",
        "Sim",
        "MBID",
    ]
    assert "Björk" in text
    assert "0.8765" in text
    assert "1997" in text
    assert "rosamerica=roc, decade=1990s" in text
    assert "mean=0.8765 std=0.0000 p95=0.8765 max=0.8765" in text


def test_table_columns_line_up_with_wide_characters() -> None:
    from musicrec_cli.render import table

    text = table(("A", "B"), [("永遠の歌", "x"), ("abc", "y"), ("a" * 20, "z")], (6, 1))
    lines = text.splitlines()
    # Every "|" sits in the same terminal column: CJK characters take two cells, long text is clipped.
    columns = {
        sum(2 if "\u3000" <= ch <= "\u9fff" else 1 for ch in line.split("|")[0])
        for line in lines
        if "|" in line
    }
    assert columns == {7}
    assert "永遠… " in text
    assert "aaaaa…" in text
