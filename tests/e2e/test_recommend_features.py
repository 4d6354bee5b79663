"""Recommendation features over the three services: exact filters under random combinations, several
seeds and negative seeds, the per-artist cap, diversity, explanations, feature-model checks."""

from __future__ import annotations

import math
import random
from pathlib import Path

import grpc
import numpy as np
import numpy.typing as npt
import pytest

from musicrec.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from musicrec.ingestor.v1 import ingestor_pb2
from musicrec.recommender.v1 import recommender_pb2
from musicrec_cli.clients import recommend
from musicrec_cli.stack import ServiceStack
from musicrec_common.corpus import CorpusSummary, read_ground_truth
from musicrec_common.features import TRAITS
from musicrec_common.model import GenreClassifier
from musicrec_common.text import fold_for_search
from musicrec_recommender.ranking import FilterSpec, genre_labels
from musicrec_vectorstore import PayloadValue
from musicrec_vectorstore.payload import PPM, genre_decade_key

pytestmark = [pytest.mark.e2e]

GENRES = {name: genre_labels(GenreClassifier(name)) for name in ("rosamerica", "dortmund")}
CLASSIFIER_ENUM = {
    "rosamerica": recommender_pb2.GENRE_CLASSIFIER_ROSAMERICA,
    "dortmund": recommender_pb2.GENRE_CLASSIFIER_DORTMUND,
}


async def _catalog(stack: ServiceStack, mbids: list[str]) -> dict[str, catalog_pb2.Track]:
    found: dict[str, catalog_pb2.Track] = {}
    async with grpc.aio.insecure_channel(stack.addresses["catalog"]) as channel:
        stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        for start in range(0, len(mbids), 1000):
            chunk = mbids[start : start + 1000]
            response = await stub.GetTracks(catalog_pb2.GetTracksRequest(mbids=chunk), timeout=10)
            found.update((t.mbid, t) for t in response.tracks)
    return found


def _payloads(stack: ServiceStack) -> dict[str, dict[str, PayloadValue]]:
    out: dict[str, dict[str, PayloadValue]] = {}
    for batch in stack.vector_store.iter_points(batch_size=2048):
        out.update(zip(batch.ids, batch.payloads, strict=True))
    return out


async def test_genres_in_a_decade_find_exactly_the_tracks_of_that_genre_and_those_years(
    stack: ServiceStack, ingested: ingestor_pb2.IngestReport
) -> None:
    """The genre + decade filter is one match on the "<label>@<decade>" keyword (a speed-up): it must
    find the same tracks as the genre and the year range would, no fewer, for every genre model."""
    payloads = _payloads(stack)
    store = stack.vector_store
    query = next(iter(store.get_vectors(sorted(payloads)[:1]).values()))
    rng = random.Random(5)
    non_empty = 0
    for classifier in GenreClassifier:
        for _ in range(8):
            labels = tuple(rng.sample(genre_labels(classifier), rng.randint(1, 2)))
            decade = rng.choice([1960, 1970, 1980, 1990, 2000, 2010])
            spec = FilterSpec(
                classifier,
                genres=labels,
                decade=decade,
                min_year=decade,
                max_year=decade + 9,
                include_placeholders=True,
            )
            search_filter = spec.search_filter()
            assert genre_decade_key(classifier.value) in search_filter.any_of
            assert "year" not in search_filter.ranges
            expected = {
                mbid
                for mbid, payload in payloads.items()
                if payload.get(classifier.value) in labels
                and isinstance(year := payload.get("year"), int)
                and decade <= year <= decade + 9
            }
            # Far below the exact-scan threshold: the engine scores every match.
            found = {hit.id for hit in store.search(query, len(payloads), search_filter, payload_keys=[])}
            assert found == expected, (classifier, labels, decade)
            non_empty += bool(expected)
    assert non_empty >= 12


def _random_request(
    rng: random.Random, seeds: list[catalog_pb2.Track]
) -> tuple[recommender_pb2.RecommendRequest, str]:
    seed = rng.choice(seeds)
    classifier = rng.choice(["rosamerica", "dortmund"])
    request = recommender_pb2.RecommendRequest(
        seed_mbid=seed.mbid, limit=rng.choice([5, 10, 25]), genre_classifier=CLASSIFIER_ENUM[classifier]
    )
    if rng.random() < 0.6:
        request.genres.extend(rng.sample(GENRES[classifier], rng.randint(1, 3)))
        if rng.random() < 0.5:
            request.min_genre_probability = round(rng.uniform(0.2, 0.7), 3)
    elif rng.random() < 0.3:
        request.same_genre = True
    draw = rng.random()
    if draw < 0.4:
        first = rng.randint(1960, 2010)
        request.min_year = first
        request.max_year = first + rng.randint(0, 15)
    elif draw < 0.6:
        request.decade = rng.choice([1960, 1970, 1980, 1990, 2000, 2010])
    elif draw < 0.8:
        request.same_decade = True
    for trait in rng.sample([t.name for t in TRAITS], rng.randint(0, 2)):
        bound = request.traits.add(trait=recommender_pb2.Trait.Value(f"TRAIT_{trait.upper()}"))
        low = round(rng.uniform(0.0, 0.6), 2)
        if rng.random() < 0.5:
            bound.min = low
        else:
            bound.max = round(low + 0.4, 2)
    request.exclude_seed_artists = rng.random() < 0.3
    if rng.random() < 0.5:
        request.max_per_artist = rng.choice([0, 1, 2])
    request.include_placeholders = rng.random() < 0.2
    if rng.random() < 0.3:
        request.min_similarity = round(rng.uniform(0.0, 0.5), 2)
    if rng.random() < 0.3:
        request.diversity = round(rng.uniform(0.1, 0.6), 2)
    return request, classifier


async def test_every_result_satisfies_every_filter_of_random_requests(
    stack: ServiceStack, ingested: ingestor_pb2.IngestReport, corpus: tuple[Path, CorpusSummary]
) -> None:
    mbids = sorted(read_ground_truth(corpus[0]))
    catalog = await _catalog(stack, mbids)
    payloads = _payloads(stack)
    seeds = [t for t in catalog.values() if t.HasField("year") and not t.is_placeholder_title]
    rng = random.Random(11)
    answered = 0
    for _ in range(40):
        request, classifier = _random_request(rng, seeds)
        try:
            response = await recommend(stack.addresses["recommender"], request)
        except grpc.aio.AioRpcError as error:
            # A seed without the genre asked for same_genre is a precondition failure, not a bug.
            code = error.code()
            if code != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            continue
        answered += 1
        seed = catalog[request.seed_mbid]
        wanted = set(request.genres) or ({getattr(seed, classifier).label} if request.same_genre else set())
        per_artist: dict[str, int] = {}
        works: set[tuple[str, str]] = set()
        assert len(response.tracks) <= request.limit
        for result in response.tracks:
            track, payload = catalog[result.mbid], payloads[result.mbid]
            assert result.mbid != seed.mbid
            if wanted:
                assert getattr(track, classifier).label in wanted
                if request.HasField("min_genre_probability"):
                    assert getattr(track, classifier).probability >= request.min_genre_probability - 1e-6
            if request.HasField("min_year"):
                assert track.HasField("year")
                assert request.min_year <= track.year <= request.max_year
            decade = request.decade if request.HasField("decade") else None
            if request.same_decade and decade is None:
                decade = seed.year - seed.year % 10
            if decade is not None:
                assert track.HasField("year")
                assert decade <= track.year <= decade + 9
            for bound in request.traits:
                name = recommender_pb2.Trait.Name(bound.trait).removeprefix("TRAIT_").lower()
                value = payload[name]
                assert isinstance(value, int)
                if bound.HasField("min"):
                    assert value / PPM >= bound.min - 1e-6
                if bound.HasField("max"):
                    assert value / PPM <= bound.max + 1e-6
            if request.exclude_seed_artists:
                assert fold_for_search(track.artist) != fold_for_search(seed.artist)
            if not request.include_placeholders:
                assert not track.is_placeholder_title
            if request.HasField("min_similarity"):
                assert result.similarity >= request.min_similarity
            key = fold_for_search(track.artist)
            per_artist[key] = per_artist.get(key, 0) + 1
            work = (key, fold_for_search(track.title))
            assert work not in works, "the same title by the same artist twice"
            works.add(work)
        cap = request.max_per_artist if request.HasField("max_per_artist") else 3
        if cap:
            assert max(per_artist.values(), default=0) <= cap
    assert answered >= 30


async def test_the_same_request_gives_the_same_answer(
    stack: ServiceStack, ingested: ingestor_pb2.IngestReport
) -> None:
    seed = next(iter(_payloads(stack)))
    request = recommender_pb2.RecommendRequest(seed_mbid=seed, limit=20, diversity=0.3, same_decade=False)
    first = await recommend(stack.addresses["recommender"], request)
    second = await recommend(stack.addresses["recommender"], request)
    assert [t.mbid for t in first.tracks] == [t.mbid for t in second.tracks]
    assert [t.score for t in first.tracks] == [t.score for t in second.tracks]


def _mean_similarity(
    response: recommender_pb2.RecommendResponse,
    vectors: dict[str, npt.NDArray[np.float32]],
    away: npt.NDArray[np.float32],
) -> float:
    return float(np.mean([vectors[t.mbid] @ away for t in response.tracks]))


async def test_negative_seeds_move_results_away(
    stack: ServiceStack, ingested: ingestor_pb2.IngestReport
) -> None:
    store = stack.vector_store
    ids = sorted(_payloads(stack))
    rng = random.Random(3)
    moved = 0
    for _ in range(8):
        seed, negative = rng.sample(ids, 2)
        plain = await recommend(
            stack.addresses["recommender"], recommender_pb2.RecommendRequest(seed_mbid=seed, limit=10)
        )
        pushed = await recommend(
            stack.addresses["recommender"],
            recommender_pb2.RecommendRequest(
                seed_mbid=seed, limit=10, negative_seeds=[recommender_pb2.Seed(mbid=negative)]
            ),
        )
        assert [t.mbid for t in pushed.negative_seeds] == [negative]
        asked = [negative, *(t.mbid for t in plain.tracks), *(t.mbid for t in pushed.tracks)]
        vectors = store.get_vectors(asked)
        before = _mean_similarity(plain, vectors, vectors[negative])
        after = _mean_similarity(pushed, vectors, vectors[negative])
        assert after <= before + 1e-6
        moved += after < before - 0.01
    assert moved >= 6


async def test_several_seeds_and_explanations(
    stack: ServiceStack, ingested: ingestor_pb2.IngestReport
) -> None:
    ids = sorted(_payloads(stack))
    response = await recommend(
        stack.addresses["recommender"],
        recommender_pb2.RecommendRequest(
            seeds=[recommender_pb2.Seed(mbid=ids[0]), recommender_pb2.Seed(mbid=ids[1])],
            limit=10,
            traits=[recommender_pb2.TraitTarget(trait=recommender_pb2.TRAIT_HAPPY, target=0.9)],
        ),
    )
    assert [t.mbid for t in response.seeds] == ids[:2]
    assert {ids[0], ids[1]}.isdisjoint(t.mbid for t in response.tracks)
    assert response.feature_model.startswith("fm-v1:")
    for track in response.tracks:
        groups = track.explanation.groups
        assert groups, "every result says which feature groups agree"
        assert [g.contribution for g in groups] == sorted((g.contribution for g in groups), reverse=True)
        assert math.isclose(sum(g.contribution for g in groups), track.similarity, abs_tol=1e-4)
        assert any(fact.startswith("happy ") for fact in track.explanation.facts)
        assert track.score <= track.similarity + 1e-9  # targets only ever subtract
    assert [t.score for t in response.tracks] == sorted((t.score for t in response.tracks), reverse=True)


async def test_results_cap_artists_by_default_and_on_request(
    stack: ServiceStack, ingested: ingestor_pb2.IngestReport, corpus: tuple[Path, CorpusSummary]
) -> None:
    truth = read_ground_truth(corpus[0])
    seed = sorted(truth)[5]
    capped = await recommend(
        stack.addresses["recommender"], recommender_pb2.RecommendRequest(seed_mbid=seed, limit=30)
    )
    counts: dict[str, int] = {}
    for track in capped.tracks:
        counts[fold_for_search(track.artist)] = counts.get(fold_for_search(track.artist), 0) + 1
    assert max(counts.values()) <= 3
    assert capped.filter.max_per_artist == 3


async def test_a_request_for_another_feature_model_is_refused(
    stack: ServiceStack, ingested: ingestor_pb2.IngestReport
) -> None:
    seed = next(iter(_payloads(stack)))
    ok = await recommend(
        stack.addresses["recommender"], recommender_pb2.RecommendRequest(seed_mbid=seed, limit=3)
    )
    same = await recommend(
        stack.addresses["recommender"],
        recommender_pb2.RecommendRequest(seed_mbid=seed, limit=3, feature_model=ok.feature_model),
    )
    assert [t.mbid for t in same.tracks] == [t.mbid for t in ok.tracks]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await recommend(
            stack.addresses["recommender"],
            recommender_pb2.RecommendRequest(seed_mbid=seed, limit=3, feature_model="fm-v1:0000000000000000"),
        )
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert ok.feature_model in (raised.value.details() or "")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("diversity", 1.5, "diversity"),
        ("min_similarity", 2.0, "min_similarity"),
        ("target_weight", -1.0, "target_weight"),
        ("min_genre_probability", 0.5, "needs a genre filter"),
    ],
)
async def test_invalid_options_are_refused_with_the_field_named(
    stack: ServiceStack, ingested: ingestor_pb2.IngestReport, field: str, value: float, message: str
) -> None:
    seed = next(iter(_payloads(stack)))
    request = recommender_pb2.RecommendRequest(seed_mbid=seed, limit=3)
    setattr(request, field, value)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await recommend(stack.addresses["recommender"], request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (raised.value.details() or "")
