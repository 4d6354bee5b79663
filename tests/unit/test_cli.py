"""The command line: every subcommand parses, says what it does, and reads settings as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicrec_cli.main import _unreachable, build_parser, main
from musicrec_cli.serve import ready_line, stack_settings
from musicrec_common.settings import CommonSettings

pytestmark = pytest.mark.unit

COMMANDS = ["gen-corpus", "serve", "ingest", "recommend", "demo", "health"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: musicrec {command}")
    assert len(out.splitlines()) > 4


def test_recommend_takes_the_documented_options() -> None:
    args = build_parser().parse_args(
        [
            "recommend",
            "Metallica - Enter Sandman",
            "--genre-classifier",
            "dortmund",
            "--same-genre",
            "--same-decade",
            "--limit",
            "5",
            "--json",
            "--data-dir",
            "/tmp/x",
        ]
    )
    assert (args.query, args.genre_classifier, args.same_genre, args.same_decade, args.limit, args.json) == (
        "Metallica - Enter Sandman",
        "dortmund",
        True,
        True,
        5,
        True,
    )
    assert args.data_dir == Path("/tmp/x")
    assert build_parser().parse_args(["recommend", "--mbid", "x"]).mbid == "x"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["recommend", "--genre-classifier", "spotify", "x"])


def test_recommend_needs_a_seed_and_at_most_one_main_seed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="give a seed"):
        main(["recommend"])
    with pytest.raises(SystemExit, match="either"):
        main(["recommend", "A - B", "--mbid", "x"])


def test_recommend_options_become_the_request() -> None:
    from musicrec.recommender.v1 import recommender_pb2
    from musicrec_cli.main import _recommend_request

    mbid = "564ccd5c-c4d3-4752-9abf-c33bb085d6a5"
    command = (
        f"recommend | A - B | --seed | {mbid.upper()} | --seed | C - D | --not | E - F | --genres | roc, pop"
        " | --min-genre-probability | 0.6 | --min-year | 1990 | --max-year | 1999 | --exclude-seed-artists"
        " | --max-per-artist | 0 | --include-duplicates | --min-similarity | 0.2 | --min-happy | 0.5"
        " | --target-happy | 0.8 | --max-sad | 0.3 | --target-weight | 1 | --diversity | 0.25"
        " | --feature-model | fm-v1:abc"
    )
    args = build_parser().parse_args(command.split(" | "))
    request = _recommend_request(args)
    assert request.seed_query == "A - B"
    assert [s.WhichOneof("track") for s in request.seeds] == ["mbid", "query"]
    assert request.seeds[0].mbid == mbid
    assert request.negative_seeds[0].query == "E - F"
    assert list(request.genres) == ["roc", "pop"]
    assert (request.min_genre_probability, request.min_year, request.max_year) == (0.6, 1990, 1999)
    assert request.HasField("max_per_artist")
    assert request.max_per_artist == 0
    assert (request.exclude_seed_artists, request.include_duplicates) == (True, True)
    assert (request.min_similarity, request.target_weight, request.diversity) == (0.2, 1.0, 0.25)
    assert request.feature_model == "fm-v1:abc"
    traits = {recommender_pb2.Trait.Name(t.trait): t for t in request.traits}
    assert set(traits) == {"TRAIT_HAPPY", "TRAIT_SAD"}
    happy, sad = traits["TRAIT_HAPPY"], traits["TRAIT_SAD"]
    assert (happy.min, happy.target, happy.HasField("max")) == (0.5, 0.8, False)
    assert (sad.max, sad.HasField("min")) == (0.3, False)
    plain = _recommend_request(build_parser().parse_args(["recommend", "--mbid", mbid]))
    assert not plain.HasField("max_per_artist")
    assert not plain.traits


def test_serve_settings_come_from_the_environment_and_flags(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MUSICREC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MUSICREC_CATALOG_DATABASE_URL", "postgresql://u@db/musicrec")
    monkeypatch.setenv("MUSICREC_RECOMMENDER_QDRANT_URL", "http://qdrant:6333")
    monkeypatch.setenv("MUSICREC_INGESTOR_PORT", "6000")
    common = CommonSettings()
    assert common.data_dir == tmp_path
    settings = stack_settings(common, "catalog", host="0.0.0.0", port=0)
    assert (settings.catalog.host, settings.catalog.port) == ("0.0.0.0", 0)
    assert settings.catalog.database_url == "postgresql://u@db/musicrec"
    assert settings.recommender.qdrant_url == "http://qdrant:6333"
    assert settings.ingestor.port == 6000
    assert ready_line({"catalog": "127.0.0.1:1"}) == "musicrec ready: catalog=127.0.0.1:1"


def test_a_bad_catalog_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from musicrec_recommender.settings import RecommenderSettings

    monkeypatch.setenv("MUSICREC_RECOMMENDER_CATALOG_ADDRESS", "no-port")
    with pytest.raises(ValidationError, match="HOST:PORT"):
        RecommenderSettings()


def test_health_of_nothing_listening_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "127.0.0.1:1", "--timeout", "0.5"]) == 1
    assert "127.0.0.1:1" in capsys.readouterr().err


def test_the_ingest_report_table_shows_counts_stages_and_skips() -> None:
    from musicrec.ingestor.v1 import ingestor_pb2
    from musicrec_cli.render import report_table

    report = ingestor_pb2.IngestReport(
        documents_read=1234,
        invalid_json=2,
        duplicate_submissions=300,
        tracks_stored=900,
        elapsed_seconds=2.0,
        documents_per_second=617,
        stages=[ingestor_pb2.StageTiming(stage="parse", seconds=1.5, documents_per_second=822)],
        skipped=[ingestor_pb2.SkippedDocument(source="a.tar:x.json", reason="invalid_json", detail="bad")],
        resumed_from_documents=600,
    )
    text = report_table(report)
    assert "documents read" in text
    assert "1,234" in text
    assert "recordings (distinct MBIDs)" in text
    assert "parse" in text
    assert "1.5 s (822/s)" in text
    assert "resumed after" in text
    assert "invalid_json: a.tar:x.json (bad)" in text


@pytest.mark.parametrize(
    ("details", "hint"),
    [
        ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: refused", True),
        ("Socket closed", True),
        ("DNS resolution failed for nowhere.invalid:50052", True),
        ("the vector index at /data/qdrant/tracks is being built (the last stage of an ingest)", False),
        ("the index build of /data/qdrant/tracks was stopped (the service is shutting down)", False),
    ],
)
def test_the_is_it_running_hint_is_only_for_an_unreachable_service(details: str, hint: bool) -> None:
    assert _unreachable(details) is hint
