"""The serving benchmark's checks on tiny hand-made indexes, where the right verdict is known."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import numpy as np
import pytest
from google.protobuf import json_format
from serve_bench import (
    QUERY_TYPES,
    Columns,
    Phase,
    PrototypeTable,
    Query,
    RecallStats,
    allowed_mask,
    build_queries,
    check_phases,
    columns_from_batches,
    exact_select,
    expected_answers,
    failures,
    filter_spec,
    percentiles,
    pick_seeds,
    prototype_select,
    query_of,
    request_dict,
    served_violations,
    similarity_mismatches,
)

from musicrec.recommender.v1 import recommender_pb2
from musicrec_vectorstore import PayloadValue, PointBatch


def _mbid(i: int) -> str:
    return f"00000000-0000-0000-0000-{i:012d}"


def _payload(i: int) -> dict[str, PayloadValue]:
    """Track i: genre "roc" for even i, "pop" for odd; year 1990 + i % 20 (none for i % 7 == 6);
    artist i % 5; a placeholder title for i % 11 == 10; title i (so every work differs)."""
    payload: dict[str, PayloadValue] = {
        "rosamerica": "roc" if i % 2 == 0 else "pop",
        "placeholder": i % 11 == 10,
        "artist": i % 5,
        "work": 1000 + i,
        "submission": 0,
    }
    if i % 7 != 6:
        payload["year"] = 1990 + i % 20
    return payload


def _columns(n: int = 60, dimension: int = 4, seed: int = 3) -> Columns:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [_mbid(i) for i in range(n)]
    # Two batches in reverse id order: the columns come out sorted by MBID whatever the engine's order.
    order = list(reversed(range(n)))
    batches = [
        PointBatch([ids[i] for i in part], vectors[part], [_payload(i) for i in part])
        for part in (order[: n // 2], order[n // 2 :])
    ]
    return columns_from_batches(batches, dimension)


@pytest.fixture(scope="module")
def cols() -> Columns:
    return _columns()


def test_columns_are_sorted_by_mbid_and_keep_the_payload_values(cols: Columns) -> None:
    assert cols.ids == sorted(cols.ids) == [_mbid(i) for i in range(60)]
    assert cols.labels[cols.genre[0]] == "roc"
    assert cols.labels[cols.genre[1]] == "pop"
    assert cols.year[3] == 1993
    assert cols.has_year[3]
    assert not cols.has_year[6]
    assert cols.placeholder[10]
    assert not cols.placeholder[9]
    assert cols.artist[7] == 2
    assert cols.has_artist.all()
    assert cols.payload(7) == {"artist": 2, "work": 1007}
    assert cols.position[_mbid(42)] == 42
    np.testing.assert_allclose(np.linalg.norm(cols.vectors, axis=1), 1.0, rtol=1e-6)


def test_filter_spec_follows_the_recommender_rules(cols: Columns) -> None:
    spec = filter_spec(Query("genre+decade", (4,), (9,), same_genre=True, same_decade=True), cols)
    assert spec.genres == ("roc",)
    assert (spec.min_year, spec.max_year) == (1990, 1999)
    assert spec.exclude_ids == (_mbid(4), _mbid(9))
    assert not spec.include_placeholders
    explicit = filter_spec(Query("year range", (4,), min_year=1989, max_year=1999), cols)
    assert (explicit.min_year, explicit.max_year, explicit.genres) == (1989, 1999, ())


def test_a_served_track_of_another_genre_is_reported(cols: Columns) -> None:
    spec = filter_spec(Query("genre", (4,), same_genre=True), cols)
    assert served_violations([_mbid(2), _mbid(8)], spec, cols, cap=3) == []
    problems = served_violations([_mbid(2), _mbid(3)], spec, cols, cap=3)
    assert len(problems) == 1
    assert _mbid(3) in problems[0]
    assert "genre filter" in problems[0]
    assert "genre pop" in problems[0]


@pytest.mark.parametrize(
    ("served", "expected"),
    [
        ([_mbid(4)], "seed filter"),  # the seed itself
        ([_mbid(10)], "placeholder filter"),
        ([_mbid(13)], "max_year filter"),  # 2003 is after the range 1990-1999
        ([_mbid(6)], "min_year filter"),  # no year at all
        (["ffffffff-0000-0000-0000-000000000000"], "not in the index"),
        ([_mbid(2), _mbid(2)], "twice"),
    ],
)
def test_each_broken_rule_is_reported(cols: Columns, served: list[str], expected: str) -> None:
    spec = filter_spec(Query("year range", (4,), min_year=1990, max_year=1999), cols)
    problems = served_violations(served, spec, cols, cap=3)
    assert any(expected in p for p in problems), problems


def test_the_artist_cap_and_duplicate_works_are_checked() -> None:
    cols = _columns()
    spec = filter_spec(Query("none", (1,)), cols)
    same_artist = [_mbid(0), _mbid(5), _mbid(15)]  # artist 0 three times (i % 5 == 0)
    assert served_violations(same_artist, spec, cols, cap=3) == []
    assert any("cap is 2" in p for p in served_violations(same_artist, spec, cols, cap=2))
    assert served_violations(same_artist, spec, cols, cap=0) == []  # 0: no cap
    twin = cols.work.copy()
    twin[5] = twin[0]  # track 5 is the same title by the same artist as track 0
    duplicated = dataclasses.replace(cols, work=twin)
    problems = served_violations([_mbid(0), _mbid(5)], spec, duplicated, cap=3)
    assert problems == ["two tracks of the same title by the same artist"]
    assert served_violations([_mbid(0), _mbid(5)], spec, duplicated, cap=3, include_duplicates=True) == []


def test_exact_select_is_the_filtered_brute_force_top_k_with_the_cap(cols: Columns) -> None:
    query = Query("genre", (4,), same_genre=True)
    spec = filter_spec(query, cols)
    vector = query_of(query, cols.vectors)
    mask = allowed_mask(spec, cols)
    chosen = exact_select(vector, mask, cols, 5, cap=0)
    scores = cols.vectors @ vector
    allowed = np.flatnonzero(mask)
    brute = allowed[np.argsort(-scores[allowed], kind="stable")][:5]
    assert [c.id for c in chosen] == [cols.ids[i] for i in brute]
    assert served_violations([c.id for c in chosen], spec, cols, cap=0) == []
    capped = exact_select(vector, mask, cols, 10, cap=1)
    artists = [int(cols.artist[cols.position[c.id]]) for c in capped]
    assert len(artists) == len(set(artists)) == 5  # five artists in all, one track each
    assert [c.similarity for c in capped] == sorted((c.similarity for c in capped), reverse=True)


def test_the_prototype_walk_gives_the_exact_answer_on_the_same_vectors(cols: Columns) -> None:
    table = PrototypeTable.of(cols)
    queries = build_queries(cols, pick_seeds(cols, 8, rng_seed=2), rng_seed=2)
    for kind in QUERY_TYPES:
        expected = expected_answers(queries[kind], cols)
        for query, spec, ids in zip(queries[kind], expected.specs, expected.ids, strict=True):
            vector = query_of(query, cols.vectors)
            walked = prototype_select(cols.vectors, vector, spec, cols, table, 10, query.cap)
            assert [cols.ids[p] for p in walked] == ids, kind


def test_queries_use_distinct_seeds_and_become_requests(cols: Columns) -> None:
    seeds = pick_seeds(cols, 6, rng_seed=1)
    assert len(set(seeds)) == 6
    assert all(not cols.placeholder[s] and cols.has_year[s] for s in seeds)
    queries = build_queries(cols, seeds, rng_seed=1)
    assert set(queries) == set(QUERY_TYPES)
    for query in queries["several seeds"]:
        assert len(set(query.positives)) == 3
    for query in queries["negative seeds"]:
        assert query.negatives[0] != query.positives[0]
    request = json_format.ParseDict(
        request_dict(queries["artist cap"][0], cols), recommender_pb2.RecommendRequest()
    )
    assert request.HasField("max_per_artist")
    assert request.max_per_artist == 1
    assert request.limit == 10
    assert request.seed_mbid == cols.ids[seeds[0]]
    plain = json_format.ParseDict(request_dict(queries["none"][0], cols), recommender_pb2.RecommendRequest())
    assert not plain.HasField("max_per_artist")
    assert not plain.same_genre
    several = json_format.ParseDict(
        request_dict(queries["several seeds"][0], cols), recommender_pb2.RecommendRequest()
    )
    assert len(several.seeds) == 2
    assert several.seeds[0].mbid == cols.ids[queries["several seeds"][0].positives[1]]
    ranged = json_format.ParseDict(
        request_dict(queries["year range"][0], cols), recommender_pb2.RecommendRequest()
    )
    year = int(cols.year[seeds[0]])
    assert (ranged.min_year, ranged.max_year) == (year - 5, year + 5)


def test_recall_errors_and_violations_of_served_phases(cols: Columns) -> None:
    queries = {"none": [Query("none", (4,)), Query("none", (8,))]}
    expected = {"none": expected_answers(queries["none"], cols)}
    first, second = expected["none"].ids
    vectors = expected["none"].vectors
    exact_first = [(m, float(cols.vectors[cols.position[m]] @ vectors[0])) for m in first]
    # Nine of the ten expected, and one allowed track that is not among them: recall 0.9.
    allowed = allowed_mask(expected["none"].specs[0], cols)
    artists = [int(cols.artist[cols.position[m]]) for m in first[:9]]
    outsider = next(
        m
        for m in cols.ids
        if m not in first
        and allowed[cols.position[m]]
        and artists.count(int(cols.artist[cols.position[m]])) < 3
    )
    nine = [*exact_first[:9], (outsider, float(cols.vectors[cols.position[outsider]] @ vectors[0]))]
    phase = Phase("none", 1, 1.0, [0.01, 0.02], [None, "UNAVAILABLE: gone"], [nine, None])
    errors, violations, recall = check_phases([phase], queries, expected, cols)
    assert recall["none"] == RecallStats(0.9, 0.9, 1)
    assert errors == {"none": [f"seed {_mbid(8)}, concurrency 1: UNAVAILABLE: gone"]}
    assert violations == {}
    verdict = failures(errors, violations, recall)
    assert len(verdict) == 2
    assert any("1 request(s) failed" in v for v in verdict)
    assert any("mean recall@10 0.9000 < 0.99" in v for v in verdict)
    good = Phase("none", 8, 1.0, [0.01, 0.01], [None, None], [exact_first, [(m, 5.0) for m in second]])
    errors, violations, recall = check_phases([good], queries, expected, cols)
    assert errors == {}
    assert recall["none"] == RecallStats(1.0, 1.0, 2)
    # The second answer reports similarity 5 for every track: a loud mismatch, not a pass.
    assert len(violations["none"]) == len(second)
    assert "served similarity" in violations["none"][0]


def test_similarity_mismatch_and_failures_verdicts(cols: Columns) -> None:
    vector = cols.vectors[0]
    exact = float(cols.vectors[3] @ vector)
    assert similarity_mismatches([(_mbid(3), exact + 1e-5)], vector, cols, 1e-3) == []
    assert len(similarity_mismatches([(_mbid(3), exact + 0.01)], vector, cols, 1e-3)) == 1
    ok = {"none": RecallStats(0.995, 0.9, 10)}
    assert failures({}, {}, ok) == []
    assert failures({}, {"genre": ["x violates the genre filter"]}, ok) == [
        "genre: 1 violation(s), e.g. x violates the genre filter"
    ]
    assert failures({}, {}, {"none": RecallStats(None, None, 0)}) == [
        "none: mean recall@10 not measured < 0.99"
    ]


def test_percentiles() -> None:
    p50, p95, p99 = percentiles([float(v) for v in range(1, 101)])
    assert p50 == pytest.approx(50.5)
    assert p95 == pytest.approx(95.05)
    assert p99 == pytest.approx(99.01)
    assert all(v != v for v in percentiles([]))
