"""The VectorStore contract, run against every adapter.

One set of test bodies, parametrised over backends:
- "edge": `EdgeVectorStore`, Qdrant Edge in-process, in a temporary folder;
- "qdrant-local": `QdrantServerVectorStore` over qdrant-client's local mode (a stand-in for a server);
- "qdrant-container": `QdrantServerVectorStore.from_url` against a real Qdrant server started by
  testcontainers; skipped when no Docker engine answers.

Search results are checked against an exact numpy search over the same 2,000 clustered points.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from qdrant_client import QdrantClient

from musicrec_common.errors import FailedPreconditionError
from musicrec_common.feature_model import fit
from musicrec_common.features import FEATURE_DIM
from musicrec_vectorstore import (
    PAYLOAD_FIELDS,
    EdgeVectorStore,
    Hit,
    IndexConfig,
    PayloadValue,
    QdrantServerVectorStore,
    Range,
    SearchFilter,
    VectorStore,
    VectorStoreError,
    VectorStoreUnavailableError,
    open_vector_store,
)
from musicrec_vectorstore import edge as edge_module
from musicrec_vectorstore.feature_models import FeatureModelRef, load_feature_model, save_feature_model
from musicrec_vectorstore.index_config import FULL_SCAN_THRESHOLD_KB
from musicrec_vectorstore.payload import PAYLOAD_VERSION, PAYLOAD_VERSION_KEY

pytestmark = pytest.mark.integration

DIM = 60
N_POINTS = 2_000
N_CLUSTERS = 25
LIMIT = 10
GENRES = ("cla", "dan", "hip", "jaz", "pop", "rhy", "roc", "spe")
DECADES = (1960, 1970, 1980, 1990, 2000, 2010)
NO_FILTER = SearchFilter(exclude_placeholders=False)

BACKENDS = [
    "edge",
    "qdrant-local",
    pytest.param("qdrant-container", marks=pytest.mark.docker),
]


# -- the data set ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSet:
    ids: list[str]
    vectors: npt.NDArray[np.float32]
    payloads: list[dict[str, PayloadValue]]

    @property
    def unit(self) -> npt.NDArray[np.float64]:
        v = self.vectors.astype(np.float64)
        unit: npt.NDArray[np.float64] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return unit

    def mask(self, search_filter: SearchFilter) -> npt.NDArray[np.bool_]:
        """Which points satisfy `search_filter`, evaluated in plain Python."""
        excluded = {i.lower() for i in search_filter.exclude_ids}
        keep = []
        for point_id, payload in zip(self.ids, self.payloads, strict=True):
            ok = point_id not in excluded
            ok = ok and all(payload.get(k) == v for k, v in search_filter.equals.items())
            ok = ok and all(payload.get(k) in set(v) for k, v in search_filter.any_of.items())
            ok = ok and all(payload.get(k) not in set(v) for k, v in search_filter.exclude_values.items())
            for key, bounds in search_filter.ranges.items():
                value = payload.get(key)
                ok = ok and isinstance(value, int) and not isinstance(value, bool)
                ok = ok and (bounds.gte is None or bounds.gte <= value)  # type: ignore[operator]
                ok = ok and (bounds.lte is None or value <= bounds.lte)  # type: ignore[operator]
            if search_filter.exclude_placeholders:
                ok = ok and payload.get("placeholder") is not True
            keep.append(ok)
        return np.array(keep, dtype=bool)

    def exact(
        self, query: npt.NDArray[np.float32], limit: int, search_filter: SearchFilter
    ) -> list[tuple[str, float]]:
        """The exact cosine top-`limit` among the points that satisfy the filter."""
        q = query.astype(np.float64)
        sims = self.unit @ (q / np.linalg.norm(q))
        allowed = np.flatnonzero(self.mask(search_filter))
        order = allowed[np.argsort(-sims[allowed], kind="stable")][:limit]
        return [(self.ids[i], float(sims[i])) for i in order]

    def cosine(self, query: npt.NDArray[np.float32]) -> dict[str, float]:
        q = query.astype(np.float64)
        sims = self.unit @ (q / np.linalg.norm(q))
        return dict(zip(self.ids, sims.tolist(), strict=True))


def _make_dataset(n: int, seed: int) -> DataSet:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((N_CLUSTERS, DIM))
    labels = rng.integers(0, N_CLUSTERS, n)
    vectors = (centres[labels] + 0.45 * rng.standard_normal((n, DIM))).astype(np.float32)
    ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]
    payloads: list[dict[str, PayloadValue]] = []
    for i in range(n):
        undated = rng.random() < 0.05
        decade = None if undated else int(rng.choice(DECADES))
        genres = {
            "rosamerica": GENRES[int(rng.integers(0, len(GENRES)))],
            "dortmund": str(rng.choice(["rock", "jazz", "electronic", "folkcountry"])),
            "tzanetakis": str(rng.choice(["roc", "pop", "jaz", "cla"])),
        }
        payloads.append(
            {
                **genres,
                **{f"{k}_decade": None if decade is None else f"{v}@{decade}" for k, v in genres.items()},
                "decade": decade,
                "year": None if decade is None else decade + int(rng.integers(0, 10)),
                "placeholder": bool(rng.random() < 0.04),
                "probability": round(float(rng.random()), 6),
                "artist": int(rng.integers(-(2**62), 2**62)) if i % 10 else 12345,
                "title": f"track {i}",
            }
        )
    return DataSet(ids, vectors, payloads)


@pytest.fixture(scope="module")
def dataset() -> DataSet:
    return _make_dataset(N_POINTS, seed=20240501)


def _queries(data: DataSet, n: int, seed: int) -> list[npt.NDArray[np.float32]]:
    """Half near stored points, half random points in the span of the clusters."""
    rng = np.random.default_rng(seed)
    picked = data.vectors[rng.choice(len(data.ids), n // 2, replace=False)]
    near = picked + 0.1 * rng.standard_normal(picked.shape)
    mixed = rng.dirichlet(np.ones(8), n - n // 2) @ data.vectors[rng.choice(len(data.ids), 8, replace=False)]
    return [q.astype(np.float32) for q in np.vstack([near, mixed])]


# -- backends --------------------------------------------------------------------------------------


def _ping(sock: socket.socket) -> bytes:
    with sock:
        sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        return sock.recv(256).split(b"\r\n", 1)[0]


def _connect_unix(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(1.0)
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def _docker_problem() -> str | None:
    """Why no Docker engine can be used (None when one answers a ping), found out within a second or two."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        if host.startswith("unix://"):
            status = _ping(_connect_unix(host.removeprefix("unix://")))
        elif host.startswith("tcp://"):
            address, _, port = host.removeprefix("tcp://").rstrip("/").rpartition(":")
            status = _ping(socket.create_connection((address, int(port)), timeout=1.0))
        else:
            return f"DOCKER_HOST={host} is not a unix:// or tcp:// address"
    except (OSError, ValueError) as exc:
        return f"no Docker engine answers at {host}: {exc}"
    if b" 200" not in status:
        return f"the Docker engine at {host} answered {status!r} to a ping"
    return None


@pytest.fixture(scope="session")
def qdrant_server_url() -> Iterator[str]:
    problem = _docker_problem()
    if problem is not None:
        pytest.skip(problem)
    image = os.environ.get("MUSICREC_TEST_QDRANT_IMAGE", "qdrant/qdrant:v1.16.2")
    with warnings.catch_warnings():
        # testcontainers and docker-py still use APIs their dependencies deprecate.
        warnings.simplefilter("ignore", DeprecationWarning)
        from testcontainers.community.qdrant import QdrantContainer

        container = QdrantContainer(image)
        container.start()
    try:
        yield f"http://{container.rest_host_address}"
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            container.stop()


@dataclass
class Backend:
    """Opens stores of one kind, always at the same place (so a reopen sees the same data)."""

    kind: str
    opener: Callable[[int], VectorStore]
    opened: list[VectorStore] = field(default_factory=list)
    cleanups: list[Callable[[], object]] = field(default_factory=list)

    def open(self, dimension: int = DIM) -> VectorStore:
        store = self.opener(dimension)
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for store in reversed(self.opened):
            store.close()
        for cleanup in self.cleanups:
            cleanup()


def _make_backend(
    kind: str, folder: Path, request: pytest.FixtureRequest, *, durable: bool = False
) -> Backend:
    """A backend of `kind` keeping its data under `folder`.

    qdrant-local keeps data in memory, in one client shared by every store it opens (like a server
    that outlives its clients), unless `durable`: then each store gets its own client on `folder`.
    Local mode writes every point to SQLite on its own, so on disk it takes seconds per thousand points.
    """
    if kind == "edge":
        return Backend(kind, lambda dim: EdgeVectorStore(folder / "edge", dim))
    if kind == "qdrant-local" and durable:

        def open_on_disk(dim: int) -> VectorStore:
            client = QdrantClient(path=str(folder / "qdrant-local"))
            return QdrantServerVectorStore(client, "tracks", dim, owns_client=True)

        return Backend(kind, open_on_disk)
    if kind == "qdrant-local":
        shared = QdrantClient(location=":memory:")
        backend = Backend(kind, lambda dim: QdrantServerVectorStore(shared, "tracks", dim))
        backend.cleanups.append(shared.close)
        return backend
    if kind == "qdrant-container":
        url: str = request.getfixturevalue("qdrant_server_url")
        collection = f"contract-{uuid.uuid4().hex[:12]}"
        return Backend(
            kind,
            lambda dim: QdrantServerVectorStore.from_url(url, collection=collection, dimension=dim),
        )
    raise AssertionError(kind)


@pytest.fixture(scope="module", params=BACKENDS)
def kind(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def backend(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Backend]:
    made = _make_backend(kind, tmp_path, request)
    yield made
    made.close_all()


@pytest.fixture
def durable_backend(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Backend]:
    made = _make_backend(kind, tmp_path, request, durable=True)
    yield made
    made.close_all()


@pytest.fixture(scope="module")
def loaded(
    kind: str, dataset: DataSet, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[VectorStore]:
    """A store of each kind holding the whole data set (read-only for the tests that use it)."""
    made = _make_backend(kind, tmp_path_factory.mktemp(f"loaded-{kind}"), request)
    store = made.open()
    store.upsert(dataset.ids, dataset.vectors, dataset.payloads)
    store.flush()
    yield store
    made.close_all()


def _small_batch(n: int, seed: int, dim: int = DIM) -> DataSet:
    data = _make_dataset(n, seed)
    return DataSet(data.ids, data.vectors[:, :dim].copy(), data.payloads)


def _unit(v: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    w = v.astype(np.float64)
    unit: npt.NDArray[np.float64] = w / np.linalg.norm(w)
    return unit


def _recall(hits: list[Hit], expected: list[tuple[str, float]]) -> float:
    if not expected:
        return 1.0 if not hits else 0.0
    return len({h.id for h in hits} & {i for i, _ in expected}) / len(expected)


# -- writing and counting --------------------------------------------------------------------------


def test_store_satisfies_the_protocol(backend: Backend) -> None:
    store = backend.open()
    assert isinstance(store, VectorStore)
    assert store.dimension == DIM
    assert store.count() == 0


def test_stopping_a_build_when_none_runs_changes_nothing(backend: Backend) -> None:
    store = backend.open()
    data = _small_batch(300, seed=2)
    store.upsert(data.ids, data.vectors, data.payloads)
    store.stop_build()
    store.optimize()  # not stopped by the earlier request
    assert store.count() == 300
    assert store.search(data.vectors[9], 1, NO_FILTER)[0].id == data.ids[9]


def test_upsert_then_count(backend: Backend) -> None:
    store = backend.open()
    data = _small_batch(250, seed=1)
    store.upsert(data.ids, data.vectors, data.payloads)
    assert store.count() == 250
    store.upsert([], np.empty((0, DIM), dtype=np.float32), [])
    assert store.count() == 250


def test_upsert_is_idempotent_and_the_last_write_wins(backend: Backend) -> None:
    store = backend.open()
    data = _small_batch(2, seed=2)
    point_id = data.ids[0]
    store.upsert([point_id], data.vectors[:1], [data.payloads[0]])
    store.upsert([point_id], data.vectors[1:2], [data.payloads[1]])
    # The same MBID spelled in upper case is the same point.
    store.upsert([point_id.upper()], data.vectors[1:2], [data.payloads[1]])
    assert store.count() == 1
    assert store.get_payloads([point_id]) == {point_id: data.payloads[1]}
    stored = store.get_vectors([point_id])[point_id]
    np.testing.assert_allclose(_unit(stored), _unit(data.vectors[1]), atol=1e-5)


def test_upsert_in_batches_larger_than_one_engine_update(backend: Backend) -> None:
    store = backend.open()
    data = _small_batch(2_600, seed=3)
    store.upsert(data.ids, data.vectors, data.payloads)
    assert store.count() == 2_600
    assert store.get_payloads(data.ids[-1:]) == {data.ids[-1]: data.payloads[-1]}


def test_numpy_scalars_in_payloads_are_stored_as_plain_values(backend: Backend) -> None:
    store = backend.open()
    data = _small_batch(1, seed=12)
    payload: dict[str, PayloadValue] = dict(data.payloads[0])
    numpy_payload: dict[str, object] = {**payload, "year": np.int64(1987), "placeholder": np.bool_(True)}
    store.upsert(data.ids, data.vectors, [numpy_payload])  # type: ignore[list-item]
    stored = store.get_payloads(data.ids)[data.ids[0]]
    assert stored["year"] == 1987
    assert type(stored["year"]) is int
    assert stored["placeholder"] is True


# -- search ----------------------------------------------------------------------------------------


def test_search_matches_an_exact_numpy_search(loaded: VectorStore, dataset: DataSet) -> None:
    recalls = []
    for query in _queries(dataset, 24, seed=4):
        hits = loaded.search(query, LIMIT, NO_FILTER)
        expected = dataset.exact(query, LIMIT, NO_FILTER)
        assert len(hits) == LIMIT
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        cosines = dataset.cosine(query)
        for hit in hits:
            assert hit.score == pytest.approx(cosines[hit.id], abs=1e-4)
        assert hits[0].score == pytest.approx(expected[0][1], abs=1e-4)
        recalls.append(_recall(hits, expected))
    assert float(np.mean(recalls)) >= 0.95


def test_a_stored_vector_finds_itself_first(loaded: VectorStore, dataset: DataSet) -> None:
    for index in (0, 17, 1_999):
        hits = loaded.search(dataset.vectors[index], 5, NO_FILTER)
        assert hits[0].id == dataset.ids[index]
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert dict(hits[0].payload) == dataset.payloads[index]


def test_a_search_returns_only_the_payload_keys_asked(loaded: VectorStore, dataset: DataSet) -> None:
    full = loaded.search(dataset.vectors[7], LIMIT, NO_FILTER)
    keys = sorted({key for hit in full for key in hit.payload})[:2]
    assert len(keys) == 2
    narrow = loaded.search(dataset.vectors[7], LIMIT, NO_FILTER, payload_keys=[*keys, "no-such-key"])
    assert [h.id for h in narrow] == [h.id for h in full]
    for slim, whole in zip(narrow, full, strict=True):
        assert dict(slim.payload) == {k: v for k, v in whole.payload.items() if k in keys}
    bare = loaded.search(dataset.vectors[7], 3, NO_FILTER, payload_keys=[])
    assert all(dict(hit.payload) == {} for hit in bare)


def test_hit_ids_are_lower_case_hyphenated_uuids(loaded: VectorStore, dataset: DataSet) -> None:
    for hit in loaded.search(dataset.vectors[3], LIMIT, NO_FILTER):
        assert hit.id == str(uuid.UUID(hit.id))


def test_filters_are_exact(loaded: VectorStore, dataset: DataSet) -> None:
    queries = _queries(dataset, 12, seed=5)
    recalls = []
    for n, (genre, decade) in enumerate([(g, d) for g in GENRES[:4] for d in DECADES[:3]]):
        search_filter = SearchFilter(equals={"rosamerica": genre, "decade": decade})
        query = queries[n]
        hits = loaded.search(query, LIMIT, search_filter)
        expected = dataset.exact(query, LIMIT, search_filter)
        assert len(hits) == len(expected) > 0
        for hit in hits:
            assert hit.payload["rosamerica"] == genre
            assert hit.payload["decade"] == decade
            assert hit.payload["placeholder"] is False
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        recalls.append(_recall(hits, expected))
    assert float(np.mean(recalls)) >= 0.95


def _random_filter(rng: np.random.Generator, dataset: DataSet) -> SearchFilter:
    """A random combination of every kind of condition, some of them absent."""
    equals: dict[str, str | int] = {}
    any_of: dict[str, list[str | int]] = {}
    ranges: dict[str, Range] = {}
    exclude_values: dict[str, list[str | int]] = {}
    if rng.random() < 0.5:
        any_of["rosamerica"] = [str(g) for g in rng.choice(GENRES, int(rng.integers(1, 4)), replace=False)]
    elif rng.random() < 0.5:
        equals["rosamerica"] = str(rng.choice(GENRES))
    if rng.random() < 0.6:
        low = int(rng.integers(1950, 2010))
        ranges["year"] = Range(gte=low if rng.random() < 0.8 else None, lte=low + int(rng.integers(0, 25)))
    if rng.random() < 0.4:
        exclude_values["dortmund"] = [str(rng.choice(["rock", "jazz", "electronic"]))]
    if rng.random() < 0.3:
        exclude_values["artist"] = [12345]
    if rng.random() < 0.3:
        any_of["tzanetakis"] = ["roc", "pop"]
    excluded = [dataset.ids[int(i)] for i in rng.integers(0, len(dataset.ids), 3)]
    return SearchFilter(
        equals=equals,
        any_of=any_of,
        ranges=ranges,
        exclude_values=exclude_values,
        exclude_ids=excluded,
        exclude_placeholders=bool(rng.random() < 0.7),
    )


def test_random_filter_combinations_are_exact(loaded: VectorStore, dataset: DataSet) -> None:
    """Every hit satisfies every condition, and the hits are the exact top-k of what does."""
    rng = np.random.default_rng(21)
    checked = 0
    for _ in range(60):
        search_filter = _random_filter(rng, dataset)
        allowed = dataset.mask(search_filter)
        query = dataset.vectors[int(rng.integers(0, len(dataset.ids)))]
        hits = loaded.search(query, LIMIT, search_filter)
        allowed_ids = {dataset.ids[i] for i in np.flatnonzero(allowed)}
        assert {h.id for h in hits} <= allowed_ids
        assert len(hits) == min(LIMIT, len(allowed_ids))
        if allowed_ids:
            checked += 1
            assert _recall(hits, dataset.exact(query, LIMIT, search_filter)) >= 0.9
    assert checked >= 30


def test_invalid_filter_values_are_refused(loaded: VectorStore, dataset: DataSet) -> None:
    query = dataset.vectors[0]
    for bad in (
        SearchFilter(any_of={"rosamerica": []}),
        SearchFilter(any_of={"rosamerica": "roc"}),
        SearchFilter(any_of={"rosamerica": ["roc", 3]}),
        SearchFilter(ranges={"year": Range(gte=1990.5)}),  # type: ignore[arg-type]
        SearchFilter(exclude_values={"artist": [True]}),
    ):
        with pytest.raises(VectorStoreError):
            loaded.search(query, LIMIT, bad)


def test_a_filter_on_one_integer_field(loaded: VectorStore, dataset: DataSet) -> None:
    search_filter = SearchFilter(equals={"year": 1994})
    expected = dataset.exact(dataset.vectors[0], 50, search_filter)
    hits = loaded.search(dataset.vectors[0], 50, search_filter)
    assert {h.id for h in hits} == {i for i, _ in expected}
    assert all(h.payload["year"] == 1994 for h in hits)


def test_excluded_ids_are_never_returned(loaded: VectorStore, dataset: DataSet) -> None:
    query = _queries(dataset, 2, seed=6)[0]
    first = loaded.search(query, LIMIT, NO_FILTER)
    excluded = [h.id for h in first]
    # Spelling does not matter, and ids that are not UUIDs are ignored.
    spelled = [excluded[0].upper(), *excluded[1:], "not-an-mbid"]
    search_filter = SearchFilter(exclude_ids=spelled, exclude_placeholders=False)
    second = loaded.search(query, LIMIT, search_filter)
    assert len(second) == LIMIT
    assert not {h.id for h in second} & set(excluded)
    assert (
        _recall(
            second,
            dataset.exact(query, LIMIT, SearchFilter(exclude_ids=excluded, exclude_placeholders=False)),
        )
        >= 0.9
    )


def test_placeholders_are_excluded_only_when_asked(loaded: VectorStore, dataset: DataSet) -> None:
    placeholder = next(i for i, p in enumerate(dataset.payloads) if p["placeholder"] is True)
    query = dataset.vectors[placeholder]
    included = loaded.search(query, LIMIT, SearchFilter(exclude_placeholders=False))
    assert included[0].id == dataset.ids[placeholder]
    assert included[0].payload["placeholder"] is True
    excluded = loaded.search(query, LIMIT, SearchFilter(exclude_placeholders=True))
    assert len(excluded) == LIMIT
    assert all(h.payload["placeholder"] is False for h in excluded)
    assert dataset.ids[placeholder] not in {h.id for h in excluded}
    # The default filter drops placeholders.
    assert [h.id for h in loaded.search(query, LIMIT, SearchFilter())] == [h.id for h in excluded]


def test_a_filter_that_matches_nothing_returns_no_hits(loaded: VectorStore, dataset: DataSet) -> None:
    query = dataset.vectors[0]
    assert loaded.search(query, LIMIT, SearchFilter(equals={"rosamerica": "no-such-genre"})) == []
    assert loaded.search(query, LIMIT, SearchFilter(equals={"decade": 1850})) == []
    assert loaded.search(query, LIMIT, SearchFilter(equals={"rosamerica": "roc", "decade": 1850})) == []
    assert (
        loaded.search(query, LIMIT, SearchFilter(exclude_ids=dataset.ids, exclude_placeholders=False)) == []
    )


def test_a_limit_beyond_the_matches_returns_every_match(loaded: VectorStore, dataset: DataSet) -> None:
    search_filter = SearchFilter(equals={"rosamerica": "cla", "decade": 1960})
    matches = int(dataset.mask(search_filter).sum())
    hits = loaded.search(dataset.vectors[5], matches + 50, search_filter)
    assert len(hits) == matches
    assert loaded.search(dataset.vectors[5], 0, search_filter) == []


# -- reading back ----------------------------------------------------------------------------------


def test_get_vectors_and_payloads_return_what_was_stored(loaded: VectorStore, dataset: DataSet) -> None:
    rng = np.random.default_rng(7)
    picked = [int(i) for i in rng.choice(N_POINTS, 40, replace=False)]
    wanted = [dataset.ids[i] for i in picked]
    unknown = [str(uuid.uuid4()), str(uuid.uuid4())]
    asked = [*wanted, *unknown, "not-an-mbid"]

    vectors = loaded.get_vectors(asked)
    assert set(vectors) == set(wanted)
    for i in picked:
        stored = vectors[dataset.ids[i]]
        assert stored.dtype == np.float32
        assert stored.shape == (DIM,)
        np.testing.assert_allclose(_unit(stored), _unit(dataset.vectors[i]), atol=1e-5)

    payloads = loaded.get_payloads(asked)
    assert set(payloads) == set(wanted)
    for i in picked:
        assert dict(payloads[dataset.ids[i]]) == dataset.payloads[i]
        assert set(PAYLOAD_FIELDS) <= set(payloads[dataset.ids[i]])

    assert loaded.get_vectors([]) == {}
    assert loaded.get_payloads(unknown) == {}


def test_iter_points_returns_every_point_once_with_its_vector_and_payload(
    loaded: VectorStore, dataset: DataSet
) -> None:
    seen: dict[str, int] = {}
    for batch in loaded.iter_points(batch_size=37):
        assert len(batch.ids) <= 37
        assert batch.vectors.shape == (len(batch.ids), DIM)
        assert batch.vectors.dtype == np.float32
        for point_id, vector, payload in zip(batch.ids, batch.vectors, batch.payloads, strict=True):
            assert point_id not in seen
            i = seen[point_id] = dataset.ids.index(point_id)
            np.testing.assert_allclose(_unit(vector), _unit(dataset.vectors[i]), atol=1e-5)
            assert payload == dataset.payloads[i]
    assert len(seen) == N_POINTS
    with pytest.raises(VectorStoreError):
        next(iter(loaded.iter_points(batch_size=0)))


def test_reads_answer_under_the_callers_spelling(loaded: VectorStore, dataset: DataSet) -> None:
    upper = dataset.ids[11].upper()
    assert set(loaded.get_payloads([upper])) == {upper}
    assert set(loaded.get_vectors([upper])) == {upper}


# -- lifecycle -------------------------------------------------------------------------------------


def test_metadata_is_kept_with_the_index(durable_backend: Backend) -> None:
    store = durable_backend.open()
    assert store.get_metadata("feature_model") is None
    store.set_metadata("feature_model", '{"scheme": "fm-v1"}')
    store.set_metadata("other", "x")
    store.set_metadata("other", "y")  # replaced
    assert store.get_metadata("feature_model") == '{"scheme": "fm-v1"}'
    for bad_key, bad_value in (("", "x"), ("k", 3)):
        with pytest.raises(VectorStoreError):
            store.set_metadata(bad_key, bad_value)  # type: ignore[arg-type]
    store.close()
    reopened = durable_backend.open()
    try:
        assert reopened.get_metadata("feature_model") == '{"scheme": "fm-v1"}'
        assert reopened.get_metadata("other") == "y"
        assert reopened.count() == 0  # metadata are not points
    finally:
        reopened.close()


def test_an_index_of_another_payload_version_is_refused(durable_backend: Backend) -> None:
    """Points written with another payload layout lack keys the filters match on: both the ingest
    (load_feature_model) and the request path (FeatureModelRef) refuse such an index, by name."""
    model = fit(np.random.default_rng(0).random((200, FEATURE_DIM)))
    store = durable_backend.open()
    try:
        assert load_feature_model(store) is None  # empty and new: nothing to check yet
        save_feature_model(store, model)
        assert store.get_metadata(PAYLOAD_VERSION_KEY) == str(PAYLOAD_VERSION)
        assert load_feature_model(store) == model
        assert FeatureModelRef(store).current() == model.model_id
        for recorded, named in (("2", "payload version 2"), ("", "payload layout before")):
            store.set_metadata(PAYLOAD_VERSION_KEY, recorded)
            with pytest.raises(FailedPreconditionError, match=named):
                load_feature_model(store)
            with pytest.raises(FailedPreconditionError, match=named):
                FeatureModelRef(store).current()
            with pytest.raises(FailedPreconditionError, match="payload"):
                save_feature_model(store, model)  # an ingest adding to it
    finally:
        store.close()


def test_data_persists_across_close_and_reopen(durable_backend: Backend) -> None:
    backend = durable_backend
    data = _small_batch(60, seed=8)
    store = backend.open()
    store.upsert(data.ids, data.vectors, data.payloads)
    store.flush()
    store.close()
    store.close()  # idempotent

    reopened = backend.open()
    assert reopened.count() == 60
    assert reopened.get_payloads(data.ids[:5]) == {
        i: p for i, p in zip(data.ids[:5], data.payloads[:5], strict=True)
    }
    hits = reopened.search(data.vectors[42], 1, NO_FILTER)
    assert [h.id for h in hits] == [data.ids[42]]


def test_a_closed_store_refuses_work(backend: Backend) -> None:
    store = backend.open()
    store.close()
    with pytest.raises(VectorStoreError, match="closed"):
        store.count()
    with pytest.raises(VectorStoreError, match="closed"):
        store.search(np.ones(DIM, dtype=np.float32), 5, SearchFilter())


def test_reopening_with_another_dimension_is_refused(durable_backend: Backend) -> None:
    backend = durable_backend
    data = _small_batch(3, seed=9, dim=8)
    store = backend.open(8)
    store.upsert(data.ids, data.vectors, data.payloads)
    store.flush()
    store.close()
    with pytest.raises(VectorStoreError, match=r"\b8\b.*\b9\b|\b9\b.*\b8\b") as raised:
        backend.open(9)
    assert not isinstance(raised.value, VectorStoreUnavailableError)
    # The refused open released everything: the right dimension still opens.
    assert backend.open(8).count() == 3


def test_upserting_a_vector_of_the_wrong_dimension_is_refused(backend: Backend) -> None:
    store = backend.open()
    data = _small_batch(2, seed=10)
    wrong = np.ones((2, DIM + 1), dtype=np.float32)
    with pytest.raises(VectorStoreError, match=rf"dimension {DIM + 1}.*{DIM}-dimensional"):
        store.upsert(data.ids, wrong, data.payloads)
    with pytest.raises(VectorStoreError, match="2-d array"):
        store.upsert(data.ids[:1], np.ones(DIM, dtype=np.float32), data.payloads[:1])
    with pytest.raises(VectorStoreError, match="one vector and one payload per id"):
        store.upsert(data.ids, data.vectors, data.payloads[:1])
    with pytest.raises(VectorStoreError, match="not a UUID"):
        store.upsert(["not-an-mbid"], data.vectors[:1], data.payloads[:1])
    with pytest.raises(VectorStoreError, match="NaN"):
        store.upsert(data.ids[:1], np.full((1, DIM), np.nan, dtype=np.float32), data.payloads[:1])
    with pytest.raises(VectorStoreError, match=f"{DIM}-dimensional"):
        store.search(np.ones(DIM - 1, dtype=np.float32), 5, SearchFilter())
    assert store.count() == 0


# -- Edge only -------------------------------------------------------------------------------------


def test_an_edge_shard_opens_once(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    first = EdgeVectorStore(path, DIM)
    try:
        with pytest.raises(VectorStoreUnavailableError, match="already open in another process") as raised:
            EdgeVectorStore(path, DIM)
        assert str(path) in str(raised.value)
        assert "--data-dir" in str(raised.value)
    finally:
        first.close()
    second = EdgeVectorStore(path, DIM)
    second.close()


def test_edge_refuses_a_folder_that_holds_something_else(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a shard")
    with pytest.raises(VectorStoreError, match="holds no Qdrant Edge shard"):
        EdgeVectorStore(tmp_path, DIM)


def test_an_edge_shard_held_by_this_process_is_refused_to_another(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from musicrec_vectorstore import EdgeVectorStore, VectorStoreUnavailableError
        try:
            EdgeVectorStore(Path({str(path)!r}), {DIM})
        except VectorStoreUnavailableError as exc:
            print("UNAVAILABLE", exc)
        else:
            print("OPENED")
        """
    )
    holder = EdgeVectorStore(path, DIM)
    try:
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        holder.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("UNAVAILABLE"), result.stdout + result.stderr
    assert "already open in another process" in result.stdout


def test_edge_optimize_keeps_search_results(tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path / "shard", 8)
    try:
        data = _small_batch(500, seed=11, dim=8)
        store.upsert(data.ids, data.vectors, data.payloads)
        store.optimize()
        assert store.count() == 500
        assert store.search(data.vectors[7], 1, NO_FILTER)[0].id == data.ids[7]
    finally:
        store.close()


def test_edge_builds_its_index_in_another_process_and_refuses_calls_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's build holds the GIL for minutes at 1M points; it runs in a child process while
    this process has the shard closed, so calls fail fast with UNAVAILABLE instead of hanging."""
    data = _small_batch(3_000, seed=12)
    store = EdgeVectorStore(tmp_path / "shard", DIM)
    started, release = threading.Event(), threading.Event()
    real_build = edge_module._optimize_in_child

    def held_build(path: Path, dimension: int, on_start: Callable[[BaseProcess], None]) -> bool:
        started.set()
        assert release.wait(60)
        return real_build(path, dimension, on_start)

    monkeypatch.setattr(edge_module, "_optimize_in_child", held_build)
    try:
        store.upsert(data.ids, data.vectors, data.payloads)
        outcome: list[bool | BaseException] = []

        def build() -> None:
            try:
                outcome.append(store.optimize())
            except BaseException as exc:
                outcome.append(exc)

        builder = threading.Thread(target=build)
        builder.start()
        assert started.wait(60)
        for call in (lambda: store.search(data.vectors[0], LIMIT, NO_FILTER), store.count, store.flush):
            with pytest.raises(VectorStoreUnavailableError, match="being built"):
                call()
        # The shard is closed here, so another process (here: another store) can open it.
        EdgeVectorStore(tmp_path / "shard", DIM).close()
        release.set()
        builder.join(120)
        # Ended without an error (3,000 points are below Edge's indexing threshold: nothing to build).
        assert outcome == [False]
        assert store.count() == 3_000
        assert store.search(data.vectors[5], 1, NO_FILTER)[0].id == data.ids[5]
    finally:
        release.set()
        store.close()


def _start_a_slow_build(
    folder: Path,
) -> tuple[EdgeVectorStore, DataSet, threading.Thread, list[BaseException], BaseProcess]:
    """A store of 60,000 points (above Edge's indexing threshold, with a slow build) whose
    optimize() runs in a thread; returned once the build's process has begun writing its segment
    (under temp_segments/), with the errors optimize() raised and that process."""
    data = _make_dataset(60_000, seed=13)
    store = EdgeVectorStore(folder, DIM, config=IndexConfig(hnsw_ef_construct=200))
    store.upsert(data.ids, data.vectors, data.payloads)
    errors: list[BaseException] = []

    def build() -> None:
        try:
            store.optimize()
        except VectorStoreError as exc:
            errors.append(exc)

    builder = threading.Thread(target=build)
    builder.start()
    deadline = time.monotonic() + 60
    while builder.is_alive() and time.monotonic() < deadline:
        temporary = folder / "temp_segments"
        if temporary.is_dir() and any(temporary.iterdir()):
            break
        time.sleep(0.01)
    name = edge_module.BUILD_PROCESS_NAME
    children = [c for c in multiprocessing.active_children() if c.name == name]
    assert children, "the build ended before it could be interrupted"
    assert children[0].pid is not None
    if sys.platform.startswith("linux"):  # named for `ps` and the benchmarks
        assert Path(f"/proc/{children[0].pid}/comm").read_text().strip() == name
    return store, data, builder, errors, children[0]


def test_an_index_build_killed_half_way_loses_no_point(tmp_path: Path) -> None:
    """kill -9 of the build's process (the OOM killer, a reboot): the store opens the index again
    with every point, and the next build finishes."""
    store, data, builder, errors, child = _start_a_slow_build(tmp_path / "shard")
    try:
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        builder.join(120)
        assert len(errors) == 1
        assert "ended without finishing" in str(errors[0])
        assert store.count() == 60_000
        assert store.search(data.vectors[3], 1, NO_FILTER)[0].id == data.ids[3]
        store.optimize()
        assert store.count() == 60_000
        assert store.search(data.vectors[4], 1, NO_FILTER)[0].id == data.ids[4]
    finally:
        store.close()


def _the_build_ended(
    builder: threading.Thread, child: BaseProcess, errors: list[BaseException]
) -> BaseException:
    """Waits for optimize() to return once its build was stopped; the one error it raised."""
    builder.join(30)
    assert not builder.is_alive()
    assert not child.is_alive()
    assert len(errors) == 1
    return errors[0]


def test_stopping_the_build_keeps_the_store_open_with_every_point(tmp_path: Path) -> None:
    """A service shutting down stops an ingest's build at once: optimize() raises UNAVAILABLE
    (saying what to do), the shard is open again and holds every point."""
    store, data, builder, errors, child = _start_a_slow_build(tmp_path / "shard")
    try:
        store.stop_build()
        error = _the_build_ended(builder, child, errors)
        assert isinstance(error, VectorStoreUnavailableError)
        assert "was stopped" in str(error)
        assert "run the ingest again" in str(error)
        assert store.count() == 60_000
        assert store.search(data.vectors[6], 1, NO_FILTER)[0].id == data.ids[6]
    finally:
        store.close()


def test_closing_the_store_stops_its_index_build(tmp_path: Path) -> None:
    """A service stopping (SIGTERM) during an ingest's build closes the store: the build ends now
    instead of holding the process for minutes, and the index keeps every point."""
    store, data, builder, errors, child = _start_a_slow_build(tmp_path / "shard")
    try:
        store.close()
        _the_build_ended(builder, child, errors)
        with pytest.raises(VectorStoreError, match="closed"):
            store.count()
    finally:
        store.close()
    with EdgeVectorStore(tmp_path / "shard", DIM) as reopened:
        assert reopened.count() == 60_000
        assert reopened.search(data.vectors[5], 1, NO_FILTER)[0].id == data.ids[5]


# -- the factory -----------------------------------------------------------------------------------


def test_the_factory_opens_edge_under_the_data_dir(tmp_path: Path) -> None:
    store = open_vector_store(
        qdrant_url=None, api_key=None, data_dir=tmp_path, collection="tracks", dimension=DIM
    )
    try:
        assert isinstance(store, EdgeVectorStore)
        assert store.path == tmp_path / "qdrant" / "tracks"
        assert (tmp_path / "qdrant" / "tracks").is_dir()
    finally:
        store.close()


def test_the_factory_reports_an_unreachable_server_with_its_url(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(VectorStoreUnavailableError, match=url):
        open_vector_store(qdrant_url=url, api_key=None, data_dir=tmp_path, collection="tracks", dimension=DIM)


# -- build settings ----------------------------------------------------------------------------------

COMPACT = IndexConfig(hnsw_m=8, hnsw_ef_construct=32, hnsw_ef=256, quantization="int8", vectors_on_disk=True)


@pytest.fixture(scope="module")
def large_dataset() -> DataSet:
    # Above Edge's indexing threshold (10 MB of vectors), so optimize() builds the graph and the
    # quantized copy.
    return _make_dataset(45_000, seed=77)


@pytest.mark.parametrize("engine", ["edge", "qdrant-local"])
def test_a_quantized_index_on_disk_answers_with_exact_scores_and_filters(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """int8 quantization with rescoring: the order may differ from exact search a little, but the
    scores are the full vectors' cosines and the filters stay exact. (qdrant-client's local mode
    takes the settings but searches exactly; the real server is the container test's job.)"""
    dataset: DataSet = request.getfixturevalue("large_dataset" if engine == "edge" else "dataset")
    if engine == "edge":
        store: VectorStore = EdgeVectorStore(tmp_path / "edge", DIM, config=COMPACT)
    else:
        store = QdrantServerVectorStore(QdrantClient(location=":memory:"), "tracks", DIM, config=COMPACT)
    try:
        store.upsert(dataset.ids, dataset.vectors, dataset.payloads)
        if isinstance(store, EdgeVectorStore):
            assert store.optimize()
        recalls = []
        # Seeds are stored tracks: query with stored vectors (far-off random queries are where a
        # small graph on clustered data misses whole clusters, quantized or not).
        picks = np.random.default_rng(9).choice(len(dataset.ids), 16, replace=False)
        for n, query in enumerate(dataset.vectors[picks]):
            search_filter = NO_FILTER if n % 2 else SearchFilter(equals={"rosamerica": GENRES[n % 4]})
            hits = store.search(query, LIMIT, search_filter)
            expected = dataset.exact(query, LIMIT, search_filter)
            cosines = dataset.cosine(query)
            for hit in hits:
                assert hit.score == pytest.approx(cosines[hit.id], abs=1e-4)
                assert search_filter is NO_FILTER or hit.payload["rosamerica"] == GENRES[n % 4]
            recalls.append(_recall(hits, expected))
        assert float(np.mean(recalls)) >= 0.9
    finally:
        store.close()


def test_an_edge_index_keeps_the_build_settings_it_was_created_with(dataset: DataSet, tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path / "edge", DIM, config=COMPACT)
    store.upsert(dataset.ids[:100], dataset.vectors[:100], dataset.payloads[:100])
    store.close()
    # Reopened with the defaults: the stored shard stays quantized with its own graph settings.
    reopened = EdgeVectorStore(tmp_path / "edge", DIM)
    try:
        stored = (tmp_path / "edge" / "edge_config.json").read_text(encoding="utf-8")
        assert "int8" in stored.lower()
        assert '"m": 8' in stored.replace(" ", "").replace('"m":8', '"m": 8')
        assert f'"full_scan_threshold":{FULL_SCAN_THRESHOLD_KB}' in stored.replace(" ", "")
        assert reopened.search(dataset.vectors[5], 1, NO_FILTER)[0].id == dataset.ids[5]
    finally:
        reopened.close()


def test_index_settings_are_checked() -> None:
    with pytest.raises(VectorStoreError, match="hnsw_m"):
        IndexConfig(hnsw_m=2)
    with pytest.raises(VectorStoreError, match="hnsw_ef "):
        IndexConfig(hnsw_ef=0)
    with pytest.raises(VectorStoreError, match="quantization"):
        IndexConfig(quantization="int4")  # type: ignore[arg-type]


def test_a_wider_search_finds_at_least_as_much_and_the_width_is_checked(
    loaded: VectorStore, dataset: DataSet
) -> None:
    narrow, wide = [], []
    for query in _queries(dataset, 12, seed=21):
        expected = dataset.exact(query, LIMIT, NO_FILTER)
        narrow.append(_recall(loaded.search(query, LIMIT, NO_FILTER), expected))
        hits = loaded.search(query, LIMIT, NO_FILTER, width=4)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        wide.append(_recall(hits, expected))
    assert float(np.mean(wide)) >= float(np.mean(narrow))
    for bad in (0, 17):
        with pytest.raises(VectorStoreError, match="search width"):
            loaded.search(dataset.vectors[0], LIMIT, NO_FILTER, width=bad)
