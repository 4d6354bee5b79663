"""`musicrec eval` as a user runs it: a separate process that starts the services, ingests a generated
corpus, compares the prototype, exact search and the recommender, and writes its report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from musicrec_common.corpus import CorpusSummary

pytestmark = pytest.mark.e2e

SEEDS = 50
LIMIT = 10
PAIRS = 5_000
METHODS = ("prototype", "exact", "served")
MODES = ("unfiltered", "genre+decade")
_MODE_HEADINGS = {"unfiltered": "## Unfiltered", "genre+decade": "## Filtered to the seed's"}


@dataclass(frozen=True)
class EvalRun:
    returncode: int
    stdout: str
    out: Path
    report: str
    metrics: dict[str, Any]


def _run_eval(corpus: Path, data_dir: Path, out: Path, database_url: str, *extra: str) -> EvalRun:
    env = dict(os.environ)
    env["MUSICREC_CATALOG_DATABASE_URL"] = database_url
    env["MUSICREC_LOG_FORMAT"] = "json"
    # Parsing in the server process: for a few thousand documents that is quicker than starting workers.
    env["MUSICREC_INGESTOR_WORKERS"] = "0"
    command = [sys.executable, "-m", "musicrec_cli.main", "eval", str(corpus), "--data-dir", str(data_dir)]
    command += ["--seeds", str(SEEDS), "--limit", str(LIMIT), "--random-pairs", str(PAIRS), "--out", str(out)]
    done = subprocess.run(
        [*command, *extra], env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return EvalRun(
        done.returncode, done.stdout, out, (out / "report.md").read_text(encoding="utf-8"), metrics
    )


@pytest.fixture(scope="module")
def eval_database_url(
    postgres_server_url: str, postgres_database_factory: Callable[..., AbstractContextManager[str]]
) -> Iterator[str]:
    with postgres_database_factory(postgres_server_url, migrate=False) as url:
        yield url


@pytest.fixture(scope="module")
def eval_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("eval-data")


@pytest.fixture(scope="module")
def generated_run(corpus: tuple[Path, CorpusSummary], eval_data_dir: Path, eval_database_url: str) -> EvalRun:
    """The evaluation of the generated corpus (with its ground truth) on an empty data dir, with --check."""
    return _run_eval(corpus[0], eval_data_dir, eval_data_dir / "eval", eval_database_url, "--check")


@pytest.fixture(scope="module")
def dump_run(
    generated_run: EvalRun,
    corpus: tuple[Path, CorpusSummary],
    eval_data_dir: Path,
    eval_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> EvalRun:
    """The same documents as a plain dump folder (no ground truth), on the data dir already filled."""
    dump = tmp_path_factory.mktemp("dump")
    shutil.copytree(corpus[0] / "highlevel", dump / "highlevel")
    return _run_eval(dump, eval_data_dir, eval_data_dir / "eval-dump", eval_database_url)


def _section(report: str, heading: str) -> dict[str, list[str]]:
    """The rows of the first Markdown table after `heading`: first cell -> the other cells."""
    lines = report[report.index(heading) :].splitlines()[1:]
    rows: dict[str, list[str]] = {}
    for line in lines:
        if line.startswith("## "):
            break
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def test_the_report_files_are_written_with_the_three_methods(generated_run: EvalRun) -> None:
    for name in ("report.md", "metrics.json", "similarity_hist.png", "precision.png"):
        assert (generated_run.out / name).stat().st_size > 0, name
    for name in ("similarity_hist.png", "precision.png"):
        assert (generated_run.out / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    report = generated_run.report
    for mode in MODES:
        assert _section(report, _MODE_HEADINGS[mode])["metric"] == list(METHODS)
    assert "musicrec eval " in report
    assert f"--seeds {SEEDS}" in report
    # The tables go to the terminal too, and the user is told where the files are.
    assert "| metric | prototype | exact | served |" in generated_run.stdout
    assert str(generated_run.out / "report.md") in generated_run.stdout
    info = generated_run.metrics
    assert info["corpus"]["ingested_now"] is True
    assert info["corpus"]["tracks_unmatched"] == 0
    assert info["seeds"]["count"] == SEEDS
    assert len(set(info["seeds"]["mbids"])) == SEEDS


def test_served_answers_are_the_exact_search_at_this_size(generated_run: EvalRun) -> None:
    # Asked without the per-artist cap and the duplicate rule, the recommender is a filtered
    # nearest-neighbour search, and the index searches exactly at this size.
    for mode in MODES:
        served = generated_run.metrics["modes"][mode]["served"]
        assert served["errors"] == 0
        assert served["recall_vs_exact"] >= 0.99, mode


def test_our_vectors_spread_random_pairs_more_than_raw_probabilities(generated_run: EvalRun) -> None:
    pairs = generated_run.metrics["random_pair_similarity"]
    assert pairs["ours"]["count"] == pairs["prototype"]["count"] == PAIRS
    assert pairs["ours"]["p95"] < pairs["prototype"]["p95"]
    assert pairs["ours"]["mean"] < pairs["prototype"]["mean"]


def test_exact_search_on_our_vectors_finds_the_planted_style_better_than_the_prototype(
    generated_run: EvalRun,
) -> None:
    unfiltered = generated_run.metrics["modes"]["unfiltered"]
    assert unfiltered["exact"]["style_precision"] > unfiltered["prototype"]["style_precision"]
    for mode in MODES:
        for method in METHODS:
            curve = generated_run.metrics["modes"][mode][method]["style_precision_curve"]
            assert len(curve) == LIMIT
            assert all(0.0 <= p <= 1.0 for p in curve)


def test_metrics_json_agrees_with_the_report(generated_run: EvalRun) -> None:
    metrics, report = generated_run.metrics, generated_run.report
    for mode in MODES:
        table = _section(report, _MODE_HEADINGS[mode])
        by_method = metrics["modes"][mode]
        assert table[f"style precision@{LIMIT}"] == [_fmt(by_method[m]["style_precision"]) for m in METHODS]
        for classifier in ("rosamerica", "dortmund", "tzanetakis"):
            assert table[f"{classifier} agreement"] == [
                _fmt(by_method[m]["genre_agreement"][classifier]) for m in METHODS
            ]
        assert table["decade agreement"] == [_fmt(by_method[m]["decade_agreement"]) for m in METHODS]
        assert table["catalog coverage"] == [_fmt(by_method[m]["coverage"]) for m in METHODS]
        assert table[f"recall@{LIMIT} vs exact, uncapped request (mean)"] == [
            "—",
            "—",
            _fmt(by_method["served"]["recall_vs_exact"]),
        ]
        assert table[f"overlap with exact top {LIMIT} (mean)"] == [
            _fmt(by_method[m]["overlap_with_exact"]) for m in METHODS
        ]
        assert table[f"max tracks of one artist in top {LIMIT} (worst)"] == [
            str(by_method[m]["max_per_artist_worst"]) for m in METHODS
        ]
        # The filter really filtered: every result has the seed's rosamerica label and decade.
        if mode == "genre+decade":
            assert all(by_method[m]["genre_agreement"]["rosamerica"] == 1.0 for m in METHODS)
            assert all(by_method[m]["decade_agreement"] == 1.0 for m in METHODS)
    pairs = _section(report, "## Random-pair similarity")
    for name, label in (("ours", "our vectors"), ("prototype", "raw probabilities (prototype)")):
        stats = metrics["random_pair_similarity"][name]
        assert pairs[label] == [_fmt(stats[f]) for f in ("mean", "std", "p5", "p50", "p95")]
    targets = _section(report, "## Targets")
    assert len(targets) - 1 == len(metrics["targets"])  # minus the header row
    for target in metrics["targets"]:
        assert targets[target["name"]][1].startswith(target["verdict"])
    # --check: exit 1 exactly when a target is missed.
    missed = any(t["verdict"] == "missed" for t in metrics["targets"])
    assert generated_run.returncode == (1 if missed else 0)


def test_a_corpus_without_ground_truth_still_gets_the_label_metrics(
    dump_run: EvalRun, generated_run: EvalRun
) -> None:
    metrics = dump_run.metrics
    assert dump_run.returncode == 0  # no --check: missed targets do not fail the command
    assert metrics["corpus"]["ground_truth"] is None
    assert metrics["corpus"]["ingested_now"] is False  # the index was already filled
    assert "no ground truth" in metrics["skipped"]["style_precision"]
    assert "no ground truth" in dump_run.report
    assert not (dump_run.out / "precision.png").exists()
    assert (dump_run.out / "similarity_hist.png").exists()
    for mode in MODES:
        for method in METHODS:
            m = metrics["modes"][mode][method]
            assert m["style_precision"] is None
            assert all(0.0 <= v <= 1.0 for v in m["genre_agreement"].values())
            assert 0.0 <= m["decade_agreement"] <= 1.0
            # The artists come from the catalog now; they group the tracks as the ground truth does.
            with_truth = generated_run.metrics["modes"][mode][method]
            assert m["distinct_artists"] == pytest.approx(with_truth["distinct_artists"], abs=0.2)
            assert m["max_per_artist_worst"] > 1
        assert metrics["modes"][mode]["served"]["recall_vs_exact"] >= 0.99
    style_targets = [t for t in metrics["targets"] if "style precision" in t["name"]]
    assert style_targets
    assert all(t["verdict"] == "skipped" for t in style_targets)
