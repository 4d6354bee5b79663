"""The evaluation's metrics on tiny hand-made inputs, where the right answer can be worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from musicrec_cli.eval import (
    METHODS,
    TrackTable,
    agreement,
    coverage,
    distinct_count,
    distribution_stats,
    ground_truth_path,
    largest_group,
    mean_of,
    metric_rows,
    precision_at_k,
    random_pairs,
    recall_at_k,
    recall_stats,
    summarise,
    top_k,
    unit_rows,
)
from musicrec_cli.main import build_parser

pytestmark = pytest.mark.unit


def test_precision_counts_relevant_results_among_those_returned() -> None:
    assert precision_at_k([True, False, True, True], 4) == 0.75
    assert precision_at_k([True, False, True, True], 2) == 0.5
    # Fewer results than k: judged on what was returned.
    assert precision_at_k([True, False], 10) == 0.5
    assert precision_at_k([], 10) is None


def test_recall_is_the_share_of_the_reference_top_k_found() -> None:
    assert recall_at_k(["a", "b", "c"], ["a", "b", "c"], 3) == 1.0
    assert recall_at_k(["a", "x", "c"], ["c", "b", "a"], 3) == pytest.approx(2 / 3)
    # Order within the top k does not matter; what lies beyond k does not count.
    assert recall_at_k(["b", "a", "c"], ["a", "b", "d"], 2) == 1.0
    assert recall_at_k(["a"], ["a", "b"], 2) == 0.5
    assert recall_at_k(["a"], [], 10) is None


def test_recall_stats_skip_seeds_without_an_answer() -> None:
    found = [["a", "b"], None, ["c"], ["x"]]
    expected = [["a", "c"], ["a"], ["c"], []]
    # Seed 1 has no answer, seed 3 expected nothing: recall over seeds 0 (1/2) and 2 (1).
    assert recall_stats(found, expected, 2) == (0.75, 0.5)
    assert recall_stats([None], [["a"]], 2) == (None, None)


def test_agreement_is_the_share_of_results_with_the_seeds_value() -> None:
    assert agreement("roc", ["roc", "pop", "roc", None]) == 0.5
    assert agreement(1990, [1990, 1990]) == 1.0
    assert agreement(None, ["roc"]) is None
    assert agreement("roc", []) is None


def test_artist_diversity_helpers() -> None:
    artists = ["A", "B", "A", "C", "A"]
    assert distinct_count(artists) == 3
    assert largest_group(artists) == 3
    assert largest_group([]) == 0


def test_coverage_counts_distinct_recommended_items_over_the_catalog() -> None:
    assert coverage([["a", "b"], ["b", "c"], []], 10) == 0.3
    assert coverage([], 10) == 0.0
    assert coverage([["a"]], 0) == 0.0


def test_mean_of_ignores_unknown_values() -> None:
    assert mean_of([1.0, None, 0.0]) == 0.5
    assert mean_of([None]) is None


def test_distribution_stats() -> None:
    stats = distribution_stats(list(range(101)))
    assert (stats.count, stats.mean, stats.p5, stats.p50, stats.p95) == (101, 50.0, 5.0, 50.0, 95.0)
    assert stats.std == pytest.approx(np.std(np.arange(101)))
    assert distribution_stats([]).count == 0


def test_unit_rows_keeps_zero_rows_zero() -> None:
    rows = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert rows.dtype == np.float32
    assert rows.tolist() == [[pytest.approx(0.6), pytest.approx(0.8)], [0.0, 0.0]]


def test_top_k_takes_the_best_allowed_positions_best_first() -> None:
    scores = np.array([0.9, 0.1, 0.8, 0.95, 0.5], dtype=np.float32)
    allowed = np.array([True, True, True, False, True])
    assert top_k(scores, allowed, 2).tolist() == [0, 2]
    assert top_k(scores, allowed, 10).tolist() == [0, 2, 4, 1]
    assert top_k(scores, np.zeros(5, dtype=np.bool_), 3).tolist() == []
    # Ties go to the lower position.
    assert top_k(np.array([0.5, 0.7, 0.7]), np.ones(3, dtype=np.bool_), 2).tolist() == [1, 2]


def test_random_pairs_are_distinct_positions_and_reproducible() -> None:
    first, second = random_pairs(3, 2_000, np.random.default_rng(5))
    assert first.shape == second.shape == (2_000,)
    assert (first != second).all()
    assert set(first.tolist()) == set(second.tolist()) == {0, 1, 2}
    again = random_pairs(3, 2_000, np.random.default_rng(5))
    assert (again[0] == first).all()
    assert (again[1] == second).all()
    assert random_pairs(1, 10, np.random.default_rng(5))[0].size == 0


def _table(styles: list[int] | None) -> TrackTable:
    """Six tracks: positions 0..5; artists A A B C C C; rosamerica roc roc pop roc pop roc;
    decades 1990 1990 1990 2000 1990 (unknown)."""
    return TrackTable(
        mbids=[f"m{i}" for i in range(6)],
        labels={
            "rosamerica": np.array([0, 0, 1, 0, 1, 0]),
            "dortmund": np.array([0, 1, 1, 1, 1, -1]),
            "tzanetakis": np.array([0, 0, 0, 0, 0, 0]),
        },
        decades=np.array([1990, 1990, 1990, 2000, 1990, -1]),
        placeholder=np.zeros(6, dtype=np.bool_),
        styles=None if styles is None else np.array(styles),
        artists=np.array([0, 0, 1, 2, 2, 2]),
    )


def test_summarise_one_method_over_two_seeds() -> None:
    table = _table(styles=[7, 7, 8, 7, 8, -1])
    metrics = summarise(table, seeds=[0, 2], results=[[1, 3, 4], [4, 5]], k=3, stored=6)
    # Seed 0 (style 7): 1 and 3 share it, 4 does not -> 2/3; seed 2 (style 8): 4 does, 5 is unknown -> 1/2.
    assert metrics.style_precision == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert metrics.style_precision_curve == pytest.approx([1.0, 0.75, (2 / 3 + 1 / 2) / 2])
    # rosamerica: seed 0 roc vs roc roc pop -> 2/3; seed 2 pop vs pop roc -> 1/2.
    assert metrics.genre_agreement["rosamerica"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    # dortmund: seed 0 label 0 vs 1 1 1 -> 0; seed 2 label 1 vs 1, unknown -> 1/2.
    assert metrics.genre_agreement["dortmund"] == pytest.approx(0.25)
    assert metrics.genre_agreement["tzanetakis"] == 1.0
    # decades: seed 0 1990 vs 1990 2000 1990 -> 2/3; seed 2 1990 vs 1990, unknown -> 1/2.
    assert metrics.decade_agreement == pytest.approx((2 / 3 + 1 / 2) / 2)
    # Artists: [A, C, C] -> 2 distinct, 2 of one; [C, C] -> 1 distinct, 2 of one.
    assert metrics.distinct_artists == 1.5
    assert (metrics.max_per_artist_mean, metrics.max_per_artist_worst, metrics.over_artist_cap) == (2.0, 2, 0)
    assert metrics.coverage == pytest.approx(4 / 6)
    assert (metrics.seeds, metrics.errors, metrics.mean_results, metrics.short_lists) == (2, 0, 2.5, 1)
    assert metrics.overlap_with_exact is None
    assert metrics.recall_vs_exact is None


def test_summarise_overlap_with_the_exact_answer_and_failed_seeds() -> None:
    table = _table(styles=None)
    metrics = summarise(
        table,
        seeds=[0, 2, 3],
        results=[[1, 3], None, [0, 1]],
        k=2,
        stored=6,
        reference=[[1, 4], [0, 1], [0, 1]],
    )
    assert (metrics.seeds, metrics.errors) == (2, 1)
    assert metrics.overlap_with_exact == 0.75
    # Without ground truth there is no style precision.
    assert metrics.style_precision is None
    assert metrics.style_precision_curve is None


def test_the_artist_cap_counts_seeds_over_it() -> None:
    table = TrackTable(
        mbids=[f"m{i}" for i in range(6)],
        labels={"rosamerica": np.zeros(6, dtype=np.int64)},
        decades=np.zeros(6, dtype=np.int64),
        placeholder=np.zeros(6, dtype=np.bool_),
        styles=None,
        artists=np.array([9, 1, 1, 1, 1, 2]),
    )
    metrics = summarise(table, seeds=[0, 5], results=[[1, 2, 3, 4], [1, 5]], k=10, stored=6)
    assert (metrics.max_per_artist_worst, metrics.over_artist_cap) == (4, 1)


def test_metric_rows_have_one_cell_per_method() -> None:
    table = _table(styles=[7, 7, 8, 7, 8, -1])
    one = summarise(table, seeds=[0], results=[[1, 3]], k=2, stored=6)
    rows = metric_rows(dict.fromkeys(METHODS, one), 2)
    assert all(len(row) == 1 + len(METHODS) for row in rows)
    assert ["style precision@2", "1.000", "1.000", "1.000"] in rows


def test_ground_truth_is_found_where_the_generator_writes_it(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    assert ground_truth_path(folder) is None
    (folder / "ground_truth.ndjson").write_text("")
    assert ground_truth_path(folder) == folder / "ground_truth.ndjson"
    archive = tmp_path / "dump.tar.zst"
    archive.write_bytes(b"")
    assert ground_truth_path(archive) is None
    (tmp_path / "dump.tar.zst.ground_truth.ndjson").write_text("")
    assert ground_truth_path(archive) == tmp_path / "dump.tar.zst.ground_truth.ndjson"


def test_eval_takes_the_documented_options() -> None:
    options = ["--data-dir", "/tmp/d", "--seeds", "50", "--limit", "5", "--seed", "3", "--out", "/tmp/o"]
    args = build_parser().parse_args(["eval", "corpus", *options, "--random-pairs", "100", "--check"])
    assert (args.corpus, args.seeds, args.limit, args.seed, args.out, args.random_pairs, args.check) == (
        Path("corpus"),
        50,
        5,
        3,
        Path("/tmp/o"),
        100,
        True,
    )
    assert args.data_dir == Path("/tmp/d")
    defaults = build_parser().parse_args(["eval", "corpus"])
    assert (defaults.seeds, defaults.limit, defaults.seed, defaults.out, defaults.random_pairs) == (
        200,
        10,
        1,
        None,
        20_000,
    )
    assert defaults.check is False
