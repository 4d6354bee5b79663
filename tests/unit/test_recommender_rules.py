"""Pure rules of the recommender: filters from a request, similarity statistics, the table."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from musicrec.recommender.v1 import recommender_pb2
from musicrec_cli.render import recommendation_table
from musicrec_common.errors import FailedPreconditionError, InvalidArgumentError
from musicrec_common.model import GenreClassifier, GenrePrediction, Track
from musicrec_recommender.ranking import resolve_filter, similarity_stats, validate_limit

pytestmark = pytest.mark.unit


def _track(year: int | None = 1994, rosamerica: str | None = "roc") -> Track:
    return Track(
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


def test_same_genre_and_decade_come_from_the_seed() -> None:
    equals = resolve_filter(
        _track(), GenreClassifier.ROSAMERICA, genre=None, same_genre=True, decade=None, same_decade=True
    )
    assert equals == {"rosamerica": "roc", "decade": 1990}
    equals = resolve_filter(
        _track(), GenreClassifier.DORTMUND, genre=None, same_genre=True, decade=None, same_decade=False
    )
    assert equals == {"dortmund": "rock"}


def test_explicit_values_win_and_are_validated() -> None:
    seed = _track()
    equals = resolve_filter(
        seed, GenreClassifier.ROSAMERICA, genre="jaz", same_genre=True, decade=1960, same_decade=True
    )
    assert equals == {"rosamerica": "jaz", "decade": 1960}
    with pytest.raises(InvalidArgumentError, match="genre: 'jazz' is not a rosamerica label"):
        resolve_filter(
            seed, GenreClassifier.ROSAMERICA, genre="jazz", same_genre=False, decade=None, same_decade=False
        )
    with pytest.raises(InvalidArgumentError, match="decade"):
        resolve_filter(
            seed, GenreClassifier.ROSAMERICA, genre=None, same_genre=False, decade=1995, same_decade=False
        )


def test_a_seed_without_the_needed_facts_is_a_failed_precondition() -> None:
    with pytest.raises(FailedPreconditionError, match="no known release year"):
        resolve_filter(
            _track(year=None),
            GenreClassifier.ROSAMERICA,
            genre=None,
            same_genre=False,
            decade=None,
            same_decade=True,
        )
    with pytest.raises(FailedPreconditionError, match="tzanetakis"):
        resolve_filter(
            _track(), GenreClassifier.TZANETAKIS, genre=None, same_genre=True, decade=None, same_decade=False
        )


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
