"""The three services over gRPC on loopback: what users rely on when they ask for recommendations."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from musicrec.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from musicrec.ingestor.v1 import ingestor_pb2
from musicrec.recommender.v1 import recommender_pb2
from musicrec_cli.clients import check_health, ingest, recommend
from musicrec_cli.stack import ServiceStack, StackSettings
from musicrec_common.catalog_client import CatalogClient
from musicrec_common.corpus import CorpusSummary, read_ground_truth
from musicrec_common.model import Track
from musicrec_common.text import fold_for_search

pytestmark = [pytest.mark.e2e]


async def _catalog_tracks(stack: ServiceStack, mbids: list[str]) -> dict[str, catalog_pb2.Track]:
    async with grpc.aio.insecure_channel(stack.addresses["catalog"]) as channel:
        stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        response = await stub.GetTracks(catalog_pb2.GetTracksRequest(mbids=mbids), timeout=5)
    return {t.mbid: t for t in response.tracks}


def _seed_mbids(corpus_dir: Path, stored: dict[str, catalog_pb2.Track], count: int) -> list[str]:
    """Seeds with a known year and a real title, one per planted style where possible."""
    seen: set[str] = set()
    seeds = []
    for record in sorted(read_ground_truth(corpus_dir).values(), key=lambda r: r.mbid):
        track = stored.get(record.mbid)
        if track is None or not track.HasField("year") or track.is_placeholder_title or record.style in seen:
            continue
        seen.add(record.style)
        seeds.append(record.mbid)
        if len(seeds) == count:
            break
    return seeds


async def test_ingest_report_accounts_for_every_document(
    ingested: ingestor_pb2.IngestReport, corpus: tuple[Path, CorpusSummary]
) -> None:
    _, summary = corpus
    report = ingested
    assert report.documents_read == summary.documents
    skipped = report.invalid_json + report.wrong_shape + report.missing_mbid
    skipped += report.missing_title + report.missing_artist
    assert report.documents_parsed == report.documents_read - (
        report.invalid_json + report.wrong_shape + report.missing_mbid
    )
    # Every read document is either skipped, a duplicate of a kept recording, or a stored track.
    assert report.tracks_stored + report.duplicate_submissions + skipped == report.documents_read
    assert report.vectors_upserted == report.tracks_stored
    assert report.tracks_inserted == report.tracks_stored
    assert report.duplicate_submissions > 0
    assert report.placeholder_titles > 0
    assert report.invalid_release_date > 0


async def test_ingesting_the_same_corpus_again_changes_nothing(
    stack: ServiceStack, ingested: ingestor_pb2.IngestReport, corpus: tuple[Path, CorpusSummary]
) -> None:
    again = await ingest(stack.addresses["ingestor"], [corpus[0]], show_progress=False)
    assert again.tracks_inserted == 0
    assert again.tracks_updated == 0
    assert again.tracks_unchanged >= ingested.tracks_stored
    assert again.vectors_upserted == 0
    assert again.tracks_stored == ingested.tracks_stored


@pytest.mark.parametrize("classifier", ["rosamerica", "dortmund", "tzanetakis"])
async def test_filtered_results_hold_only_the_seeds_genre_and_decade(
    stack: ServiceStack,
    ingested: ingestor_pb2.IngestReport,
    corpus: tuple[Path, CorpusSummary],
    classifier: str,
) -> None:
    truth = read_ground_truth(corpus[0])
    stored = await _catalog_tracks(stack, sorted(truth)[:1000])
    enum = getattr(recommender_pb2, f"GENRE_CLASSIFIER_{classifier.upper()}")
    for seed in _seed_mbids(corpus[0], stored, 3):
        response = await recommend(
            stack.addresses["recommender"],
            recommender_pb2.RecommendRequest(
                seed_mbid=seed, genre_classifier=enum, same_genre=True, same_decade=True, limit=25
            ),
        )
        assert response.tracks, f"no results for seed {seed}"
        seed_genre = getattr(response.seed, classifier)
        seed_decade = response.seed.year - response.seed.year % 10
        assert response.filter.genre == seed_genre
        assert response.filter.decade == seed_decade
        results = await _catalog_tracks(stack, [t.mbid for t in response.tracks])
        for hit in response.tracks:
            track = results[hit.mbid]
            assert getattr(track, classifier).label == seed_genre
            assert track.year - track.year % 10 == seed_decade
            assert not track.is_placeholder_title


async def test_results_exclude_the_seed_and_are_sorted_by_similarity(
    stack: ServiceStack, ingested: ingestor_pb2.IngestReport, corpus: tuple[Path, CorpusSummary]
) -> None:
    truth = read_ground_truth(corpus[0])
    stored = await _catalog_tracks(stack, sorted(truth)[:1000])
    for seed in _seed_mbids(corpus[0], stored, 3):
        response = await recommend(
            stack.addresses["recommender"], recommender_pb2.RecommendRequest(seed_mbid=seed, limit=50)
        )
        assert len(response.tracks) == 50
        mbids = [t.mbid for t in response.tracks]
        assert seed not in mbids
        assert len(set(mbids)) == len(mbids)
        similarities = [t.similarity for t in response.tracks]
        assert similarities == sorted(similarities, reverse=True)
        assert [t.rank for t in response.tracks] == list(range(1, 51))
        assert response.stats.count == 50
        assert response.stats.max == pytest.approx(similarities[0])
        assert response.stats.mean == pytest.approx(sum(similarities) / 50)


async def test_similarity_means_something_on_the_planted_styles(
    stack: ServiceStack, ingested: ingestor_pb2.IngestReport, corpus: tuple[Path, CorpusSummary]
) -> None:
    """Unfiltered neighbours share the seed's planted style far more often than chance."""
    truth = read_ground_truth(corpus[0])
    stored = await _catalog_tracks(stack, sorted(truth)[:1000])
    seeds = _seed_mbids(corpus[0], stored, 10)
    same = total = 0
    for seed in seeds:
        response = await recommend(
            stack.addresses["recommender"], recommender_pb2.RecommendRequest(seed_mbid=seed, limit=10)
        )
        same += sum(truth[t.mbid].style == truth[seed].style for t in response.tracks)
        total += len(response.tracks)
    styles = {r.style for r in truth.values()}
    assert same / total > 3 / len(styles), f"style precision@10 {same / total:.2f} is near chance"


async def test_seed_by_text_is_case_and_accent_insensitive(
    stack: ServiceStack, ingested: ingestor_pb2.IngestReport, corpus: tuple[Path, CorpusSummary]
) -> None:
    truth = read_ground_truth(corpus[0])
    stored = await _catalog_tracks(stack, sorted(truth)[:1000])
    named = [t for t in stored.values() if t.artist and t.title and not t.is_placeholder_title]
    # Prefer an accented artist ("Beyoncé"), typed without accents and in upper case.
    accented = [t for t in named if not t.artist.isascii() and fold_for_search(t.artist).isascii()]
    track = (accented or named)[0]
    query = f"{fold_for_search(track.artist).upper()} - {fold_for_search(track.title)}"
    response = await recommend(
        stack.addresses["recommender"], recommender_pb2.RecommendRequest(seed_query=query, limit=5)
    )
    assert fold_for_search(response.seed.artist) == fold_for_search(track.artist)
    assert fold_for_search(response.seed.title) == fold_for_search(track.title)


async def test_unknown_mbid_is_not_found(stack: ServiceStack, ingested: ingestor_pb2.IngestReport) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await recommend(
            stack.addresses["recommender"],
            recommender_pb2.RecommendRequest(seed_mbid="00000000-0000-4000-8000-000000000000", limit=5),
        )
    assert error.value.code() is grpc.StatusCode.NOT_FOUND
    assert "00000000-0000-4000-8000-000000000000" in (error.value.details() or "")


@pytest.mark.parametrize("limit", [0, 101, 1000])
async def test_limit_out_of_range_is_invalid_argument(
    stack: ServiceStack, ingested: ingestor_pb2.IngestReport, corpus: tuple[Path, CorpusSummary], limit: int
) -> None:
    seed = next(iter(read_ground_truth(corpus[0])))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await recommend(
            stack.addresses["recommender"], recommender_pb2.RecommendRequest(seed_mbid=seed, limit=limit)
        )
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "limit" in (error.value.details() or "")


async def test_malformed_mbid_and_missing_seed_are_invalid_argument(stack: ServiceStack) -> None:
    for request, field in (
        (recommender_pb2.RecommendRequest(seed_mbid="not-a-uuid", limit=5), "seed_mbid"),
        (recommender_pb2.RecommendRequest(limit=5), "seed"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await recommend(stack.addresses["recommender"], request)
        assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field in (error.value.details() or "")


async def test_ingest_of_a_missing_path_is_invalid_argument(stack: ServiceStack, tmp_path: Path) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await ingest(stack.addresses["ingestor"], [tmp_path / "nope"], show_progress=False)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "no such file" in (error.value.details() or "")


def _reflected_services(address: str) -> list[str]:
    # The reflection client is synchronous: it runs in a thread so the servers' loop keeps serving.
    with grpc.insecure_channel(address) as channel:
        return list(ProtoReflectionDescriptorDatabase(channel).get_services())


async def test_every_service_reports_serving_and_offers_reflection(stack: ServiceStack) -> None:
    for name, address in stack.addresses.items():
        assert await check_health(address) == "SERVING"
        services = await asyncio.to_thread(_reflected_services, address)
        assert f"musicrec.{name}.v1.{name.capitalize()}Service" in services
        assert "grpc.health.v1.Health" in services


async def test_recommender_answers_unavailable_when_the_catalog_is_down(
    tmp_path: Path,
    database_url: str,
    corpus: tuple[Path, CorpusSummary],
    make_stack_settings: Callable[[Path, str], StackSettings],
) -> None:
    async with ServiceStack(
        make_stack_settings(tmp_path, database_url), ["catalog", "ingestor", "recommender"]
    ) as own:
        await ingest(own.addresses["ingestor"], [corpus[0]], show_progress=False)
        seed = next(iter(read_ground_truth(corpus[0])))
        await own.servers["catalog"].stop(0)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await recommend(
                own.addresses["recommender"],
                recommender_pb2.RecommendRequest(seed_mbid=seed, limit=5),
                timeout=15,
            )
    assert error.value.code() is grpc.StatusCode.UNAVAILABLE
    details = error.value.details() or ""
    assert "catalog" in details
    assert own.addresses["catalog"] in details


async def test_a_seed_in_the_catalog_but_not_in_the_index_is_a_failed_precondition(
    stack: ServiceStack, ingested: ingestor_pb2.IngestReport
) -> None:
    """Say what is wrong: the track exists, the vector index lacks it (an interrupted ingest)."""
    mbid = "7e57ab1e-0000-4000-8000-00000000c0de"
    only_in_catalog = Track(
        mbid=mbid,
        submission=0,
        title="Indexless",
        artist="Catalog-only Test Artist",
        album=None,
        release_date=None,
        year=2001,
        rosamerica=None,
        dortmund=None,
        tzanetakis=None,
    )
    client = CatalogClient(stack.addresses["catalog"])
    try:
        await client.upsert([[only_in_catalog]])
    finally:
        await client.close()
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await recommend(
            stack.addresses["recommender"], recommender_pb2.RecommendRequest(seed_mbid=mbid, limit=5)
        )
    assert error.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "not in the vector index" in (error.value.details() or "")
