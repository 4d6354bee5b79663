"""Serving benchmark at catalog scale ("Performance at 1M tracks"): latency, throughput, memory,
disk and correctness of the recommender, with numpy baselines, at each catalog size.

    uv run python benchmarks/serve_bench.py --sizes 100000,1000000

Smoke run (about three minutes on 2 cores; keep it out of docs/benchmarks.md):

    uv run python benchmarks/serve_bench.py --sizes 20000 --seeds 50 \\
        --doc /tmp/serve-smoke.md --plot /tmp/serve-smoke.png

For every size N (tracks = recordings), on the same data and the same seeds:

1. corpus: WORKDIR/corpus-N.tar.zst, generated when missing (`write_corpus_archive`, seed 0);
2. ingest: `musicrec serve all` as a subprocess on the fresh data dir WORKDIR/serve-N (embedded
   PostgreSQL 18 and Qdrant Edge; inherited MUSICREC_* variables are dropped), the archive ingested
   through the ingestor's gRPC API; the load and the HNSW build (stage "index") are timed apart, and
   peak RSS (VmHWM) of the server, its parse workers and PostgreSQL is sampled from /proc. A marker
   JSON keeps these figures, so `--reuse` skips the ingest of a data dir that already finished one;
3. exact data: this process opens the vector index, reads every point (vectors and the payload
   columns the filters need) and closes it again (the shard is locked to one process);
4. serving: `musicrec serve catalog` and `musicrec serve recommender` as two processes;
5. a client process (grpc.aio, one channel, deadlines) sends every query type at concurrency 1, 8
   and 32 (c requests in flight), after a warm-up, and records latency, errors and the answers;
6. every answer is checked against exact search in numpy with the same filter and the same
   selection rules (`musicrec_recommender.ranking.select`): the filter and the artist cap must hold,
   no request may fail, and mean recall@10 must be at least 0.99 per query type; otherwise the
   tables are still printed and written, marked FAILED, and the script exits 1;
7. baselines in this process on the same queries: the prototype's method (cosine against every row,
   then a walk down the full ranking in Python until 10 pass the filters) and exact filtered search
   in numpy (boolean mask, matmul over the allowed rows, argpartition, the same selection);
8. memory after serving (VmHWM of catalog, recommender, PostgreSQL) and disk use.

Tables are printed and written to --doc (default docs/benchmarks.md) under "## Serving at scale
(issue 6)", latency against catalog size is plotted to --plot, and all figures go to
WORKDIR/serve-bench-results.json. The check functions are pure and unit-tested
(tests/unit/test_serve_bench.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeAlias

# The baselines time numpy in this process with one BLAS thread: on a busy 2-core machine OpenBLAS's
# threads made a 20k-row matrix-vector product 40 times slower, and erratic. Set before numpy loads;
# the services started from here get the caller's setting back (see _service_env).
os.environ["SERVE_BENCH_CALLER_OPENBLAS_NUM_THREADS"] = os.environ.get("OPENBLAS_NUM_THREADS", "")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt
from bench_common import PeakMemory, du, machine, vm_hwm_kib
from doc_section import BENCHMARKS_DOC, write_section

from musicrec_cli.eval import recall_at_k
from musicrec_common.model import GenreClassifier
from musicrec_recommender.ranking import (
    DEFAULT_MAX_PER_ARTIST,
    Candidate,
    FilterSpec,
    SeedFacts,
    genre_labels,
    query_vector,
    resolve_filter,
    select,
)
from musicrec_vectorstore import PayloadValue, PointBatch

FloatArray: TypeAlias = npt.NDArray[np.float32]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]

SECTION = "## Serving at scale (issue 6)"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_PLOT = REPO / "docs" / "bench" / "serve-latency.png"
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "musicrec-bench"
QUERY_TYPES = (
    "none",
    "genre",
    "genre+decade",
    "year range",
    "artist cap",
    "several seeds",
    "negative seeds",
)
CONCURRENCY = (1, 8, 32)
LIMIT = 10
# The client's first requests after the services start, kept apart from the measured query types.
PRIME_KIND = "first requests"
RECALL_TARGET = 0.99
YEAR_SPAN = 5
CLASSIFIER = GenreClassifier.ROSAMERICA
COLLECTION = "tracks"
INGEST_MARKER = "serve-bench-ingest.json"
#: Served and numpy similarities of the same track may differ by float32 rounding, no more.
SIMILARITY_TOLERANCE = 1e-3
#: Above this many tracks the prototype's timing runs on our vectors instead of its raw probability
#: vectors, whose re-read of the corpus takes longer than the rest of the run (see the doc text).
RAW_VECTORS_MAX_TRACKS = 200_000
#: The prototype's catalog on disk: 190 MB for 697k tracks.
PROTOTYPE_CATALOG_BYTES, PROTOTYPE_CATALOG_TRACKS = 190e6, 697_000

# --------------------------------------------------------------------------------------------------
# The stored points, as columns


@dataclass(frozen=True)
class Columns:
    """Every stored point by position (sorted by MBID, so position order is id order): its vector as
    the index holds it (unit length) and the payload values the filters and selection rules read.
    `genre` is the index of the rosamerica label in `labels` (-1: none); `year` is 0 where unknown."""

    ids: list[str]
    vectors: FloatArray
    labels: tuple[str, ...]
    genre: IntArray
    year: IntArray
    has_year: BoolArray
    placeholder: BoolArray
    artist: IntArray
    has_artist: BoolArray
    work: IntArray
    has_work: BoolArray
    submission: IntArray

    @cached_property
    def position(self) -> dict[str, int]:
        return {mbid: i for i, mbid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def payload(self, row: int) -> dict[str, PayloadValue]:
        """The payload keys `select` reads (artist and work hashes), as the index returns them."""
        payload: dict[str, PayloadValue] = {}
        if self.has_artist[row]:
            payload["artist"] = int(self.artist[row])
        if self.has_work[row]:
            payload["work"] = int(self.work[row])
        return payload


def _int_of(value: PayloadValue) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def columns_from_batches(batches: Iterable[PointBatch], dimension: int) -> Columns:
    """Columns of the points in `batches` (payload dicts are dropped batch by batch: at 1M points
    keeping them would take gigabytes)."""
    labels = genre_labels(CLASSIFIER)
    code = {label: i for i, label in enumerate(labels)}
    ids: list[str] = []
    chunks: list[FloatArray] = []
    values: dict[str, list[int | None]] = {k: [] for k in ("year", "artist", "work", "submission")}
    genre: list[int] = []
    placeholder: list[bool] = []
    for batch in batches:
        ids.extend(batch.ids)
        chunks.append(np.asarray(batch.vectors, dtype=np.float32).reshape(-1, dimension))
        for payload in batch.payloads:
            label = payload.get(CLASSIFIER.value)
            genre.append(code.get(label, -1) if isinstance(label, str) else -1)
            placeholder.append(payload.get("placeholder") is True)
            for key, column in values.items():
                column.append(_int_of(payload.get(key)))
    order = np.array(sorted(range(len(ids)), key=ids.__getitem__), dtype=np.int64)
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, dimension), dtype=np.float32)

    def known(key: str) -> tuple[IntArray, BoolArray]:
        column = values[key]
        present = np.array([v is not None for v in column], dtype=np.bool_)
        numbers = np.array([0 if v is None else v for v in column], dtype=np.int64)
        return numbers[order], present[order]

    year, has_year = known("year")
    artist, has_artist = known("artist")
    work, has_work = known("work")
    submission, _ = known("submission")
    return Columns(
        ids=[ids[i] for i in order],
        vectors=vectors[order],
        labels=labels,
        genre=np.array(genre, dtype=np.int64)[order],
        year=year,
        has_year=has_year,
        placeholder=np.array(placeholder, dtype=np.bool_)[order],
        artist=artist,
        has_artist=has_artist,
        work=work,
        has_work=has_work,
        submission=submission,
    )


# --------------------------------------------------------------------------------------------------
# Queries and their filters


@dataclass(frozen=True)
class Query:
    """One request of the benchmark, by positions in `Columns`: the first positive seed is the
    request's seed_mbid, the others go to `seeds`; `max_per_artist` None leaves the default cap."""

    kind: str
    positives: tuple[int, ...]
    negatives: tuple[int, ...] = ()
    same_genre: bool = False
    same_decade: bool = False
    min_year: int | None = None
    max_year: int | None = None
    max_per_artist: int | None = None

    @property
    def cap(self) -> int:
        return DEFAULT_MAX_PER_ARTIST if self.max_per_artist is None else self.max_per_artist


def make_query(kind: str, seed: int, others: Sequence[int], cols: Columns) -> Query:
    """The request of query type `kind` for `seed`; `others` are further seeds (two are used by
    "several seeds", one as the negative seed by "negative seeds")."""
    match kind:
        case "none":
            return Query(kind, (seed,))
        case "genre":
            return Query(kind, (seed,), same_genre=True)
        case "genre+decade":
            return Query(kind, (seed,), same_genre=True, same_decade=True)
        case "year range":
            year = int(cols.year[seed])
            low, high = max(year - YEAR_SPAN, 1000), min(year + YEAR_SPAN, 9999)
            return Query(kind, (seed,), min_year=low, max_year=high)
        case "artist cap":
            return Query(kind, (seed,), max_per_artist=1)
        case "several seeds":
            return Query(kind, (seed, *others[:2]))
        case "negative seeds":
            return Query(kind, (seed,), negatives=(others[0],))
    raise ValueError(f"unknown query type {kind!r}")


def pick_seeds(cols: Columns, count: int, rng_seed: int, usable: BoolArray | None = None) -> list[int]:
    """`count` distinct positions of non-placeholder tracks with a genre and a year (so every query
    type applies to them), drawn with a fixed RNG seed."""
    eligible = ~cols.placeholder & (cols.genre >= 0) & cols.has_year
    if usable is not None:
        eligible &= usable
    candidates = np.flatnonzero(eligible)
    rng = np.random.default_rng(rng_seed)
    chosen = rng.choice(candidates.size, size=min(count, candidates.size), replace=False)
    return [int(candidates[i]) for i in chosen]


def build_queries(cols: Columns, seeds: Sequence[int], rng_seed: int) -> dict[str, list[Query]]:
    """Every query type for every seed; the extra seeds of a request are other seeds of the list."""
    if len(seeds) < 3:
        raise ValueError(f"need at least 3 seeds, got {len(seeds)}")
    rng = np.random.default_rng([rng_seed, 1])
    others: list[list[int]] = []
    for i in range(len(seeds)):
        picks = rng.choice(len(seeds) - 1, size=2, replace=False)
        others.append([seeds[int(j) + (j >= i)] for j in picks])
    return {
        kind: [make_query(kind, s, o, cols) for s, o in zip(seeds, others, strict=True)]
        for kind in QUERY_TYPES
    }


def seed_facts(cols: Columns, row: int) -> SeedFacts:
    """The seed as the recommender sees it in the index's payload, as far as the filters read it."""
    code = int(cols.genre[row])
    return SeedFacts(
        mbid=cols.ids[row],
        genres={CLASSIFIER.value: cols.labels[code]} if code >= 0 else {},
        year=int(cols.year[row]) if cols.has_year[row] else None,
        artist_hash=int(cols.artist[row]) if cols.has_artist[row] else None,
    )


def filter_spec(query: Query, cols: Columns) -> FilterSpec:
    """The filter the recommender applies to `query` (`resolve_filter` on its first seed, all seeds
    excluded, placeholders excluded)."""
    spec = resolve_filter(
        seed_facts(cols, query.positives[0]),
        CLASSIFIER,
        same_genre=query.same_genre,
        same_decade=query.same_decade,
        min_year=query.min_year,
        max_year=query.max_year,
    )
    excluded = tuple(dict.fromkeys(cols.ids[p] for p in (*query.positives, *query.negatives)))
    return dataclasses.replace(spec, exclude_ids=excluded)


def condition_flags(spec: FilterSpec, cols: Columns, rows: IntArray | None = None) -> dict[str, BoolArray]:
    """For each condition of `spec`, which of `rows` (None: every row) satisfy it."""
    if spec.traits or spec.exclude_artist_hashes or spec.min_genre_probability is not None:
        raise ValueError("trait, artist and genre-probability conditions are not part of this benchmark")
    if spec.genres and spec.classifier != CLASSIFIER:
        raise ValueError(f"only {CLASSIFIER.value} genres are kept in the columns")
    at: IntArray | slice = slice(None) if rows is None else rows
    size = len(cols) if rows is None else len(rows)
    flags: dict[str, BoolArray] = {}
    if not spec.include_placeholders:
        flags["placeholder"] = ~cols.placeholder[at]
    if spec.genres:
        codes = [cols.labels.index(g) for g in spec.genres if g in cols.labels]
        flags["genre"] = np.isin(cols.genre[at], codes)
    if spec.min_year is not None:
        flags["min_year"] = cols.has_year[at] & (cols.year[at] >= spec.min_year)
    if spec.max_year is not None:
        flags["max_year"] = cols.has_year[at] & (cols.year[at] <= spec.max_year)
    if spec.exclude_ids:
        excluded = np.array(
            [cols.position[m] for m in spec.exclude_ids if m in cols.position], dtype=np.int64
        )
        if rows is None:
            keep = np.ones(size, dtype=np.bool_)
            keep[excluded] = False
        else:
            keep = ~np.isin(rows, excluded)
        flags["seed"] = keep
    return flags


def allowed_mask(spec: FilterSpec, cols: Columns) -> BoolArray:
    """Every row's verdict under `spec`."""
    mask = np.ones(len(cols), dtype=np.bool_)
    for flags in condition_flags(spec, cols).values():
        mask &= flags
    return mask


def query_of(query: Query, vectors: FloatArray) -> FloatArray:
    """The vector the recommender searches for `query` (`ranking.query_vector` over `vectors`)."""
    return query_vector([vectors[p] for p in query.positives], [vectors[n] for n in query.negatives])


# --------------------------------------------------------------------------------------------------
# Exact search and the prototype's method


def exact_select(
    vector: FloatArray,
    mask: BoolArray,
    cols: Columns,
    limit: int,
    cap: int,
    *,
    include_duplicates: bool = False,
) -> list[Candidate]:
    """The recommender's selection over exact search: the allowed rows by cosine (ties by id), then
    `select` (one per work, at most `cap` per artist). Only the top of the ranking is ordered; it
    grows until `select` fills `limit` or every allowed row was seen, so the answer is the one
    `select` gives over the whole ranking."""
    candidates = np.flatnonzero(mask)
    if candidates.size == 0:
        return []
    # Copying the allowed rows pays when a filter leaves few; otherwise score every row.
    if candidates.size * 4 < len(mask):
        scores = cols.vectors[candidates] @ vector
    else:
        scores = (cols.vectors @ vector)[candidates]
    pool = max(5 * limit, limit + 20)  # what the recommender asks the index for first
    while True:
        take = min(pool, int(candidates.size))
        top = np.argpartition(-scores, take - 1)[:take] if take < candidates.size else np.arange(take)
        order = top[np.lexsort((candidates[top], -scores[top]))]
        ranked = [
            Candidate(cols.ids[row], score, cols.payload(row), score)
            for row, score in zip(candidates[order].tolist(), scores[order].tolist(), strict=True)
        ]
        chosen = select(ranked, limit, max_per_artist=cap, include_duplicates=include_duplicates)
        if len(chosen) >= limit or take == candidates.size:
            return chosen
        pool *= 4


@dataclass(frozen=True)
class PrototypeTable:
    """The columns as plain Python lists, which the prototype's filter walk reads row by row."""

    placeholder: list[bool]
    genre: list[int]
    year: list[int | None]
    artist: list[int | None]
    work: list[int | None]

    @classmethod
    def of(cls, cols: Columns) -> PrototypeTable:
        def optional(values: IntArray, present: BoolArray) -> list[int | None]:
            return [v if p else None for v, p in zip(values.tolist(), present.tolist(), strict=True)]

        return cls(
            placeholder=cols.placeholder.tolist(),
            genre=cols.genre.tolist(),
            year=optional(cols.year, cols.has_year),
            artist=optional(cols.artist, cols.has_artist),
            work=optional(cols.work, cols.has_work),
        )


def prototype_select(
    matrix: FloatArray,
    vector: FloatArray,
    spec: FilterSpec,
    cols: Columns,
    table: PrototypeTable,
    limit: int,
    cap: int,
) -> list[int]:
    """The prototype's method: cosine of `vector` with every row of `matrix` (unit rows), the whole
    ranking sorted, then walked in Python applying the filter, one per work and the artist cap,
    until `limit` rows pass. Returns their positions."""
    ranking = np.argsort(-(matrix @ vector), kind="stable")
    genres = {cols.labels.index(g) for g in spec.genres}
    excluded = {cols.position[m] for m in spec.exclude_ids}
    low, high = spec.min_year, spec.max_year
    picked: list[int] = []
    per_artist: dict[int, int] = {}
    works: set[int] = set()
    for start in range(0, ranking.size, 4096):
        for row in ranking[start : start + 4096].tolist():
            if row in excluded or (not spec.include_placeholders and table.placeholder[row]):
                continue
            if genres and table.genre[row] not in genres:
                continue
            year = table.year[row]
            if (low is not None or high is not None) and (
                year is None or (low is not None and year < low) or (high is not None and year > high)
            ):
                continue
            work, artist = table.work[row], table.artist[row]
            if work is not None and work in works:
                continue
            if cap and artist is not None and per_artist.get(artist, 0) >= cap:
                continue
            picked.append(row)
            if work is not None:
                works.add(work)
            if artist is not None:
                per_artist[artist] = per_artist.get(artist, 0) + 1
            if len(picked) >= limit:
                return picked
    return picked


# --------------------------------------------------------------------------------------------------
# Checks (pure)


def served_violations(
    served: Sequence[str], spec: FilterSpec, cols: Columns, cap: int, *, include_duplicates: bool = False
) -> list[str]:
    """What is wrong with the served MBIDs `served` of a request with filter `spec` and artist cap
    `cap` (0: none): tracks the index does not hold, tracks the filter excludes, more than `cap`
    tracks of one artist, the same work twice, the same track twice. Empty when all is well."""
    problems: list[str] = []
    rows: list[int] = []
    for mbid in served:
        row = cols.position.get(mbid)
        if row is None:
            problems.append(f"{mbid} is not in the index")
        else:
            rows.append(row)
    if len(set(served)) < len(served):
        problems.append("the same track is returned twice")
    at = np.array(rows, dtype=np.int64)
    for condition, ok in condition_flags(spec, cols, at).items():
        for row in at[~ok].tolist():
            problems.append(f"{cols.ids[row]} violates the {condition} filter ({_describe(cols, row)})")
    artists = [int(cols.artist[r]) for r in rows if cols.has_artist[r]]
    if cap:
        for artist in sorted(set(artists)):
            if (n := artists.count(artist)) > cap:
                problems.append(f"{n} tracks of one artist (hash {artist}), the cap is {cap}")
    if not include_duplicates:
        works = [int(cols.work[r]) for r in rows if cols.has_work[r]]
        if len(set(works)) < len(works):
            problems.append("two tracks of the same title by the same artist")
    return problems


def _describe(cols: Columns, row: int) -> str:
    genre = cols.labels[int(cols.genre[row])] if cols.genre[row] >= 0 else None
    year = int(cols.year[row]) if cols.has_year[row] else None
    return f"genre {genre}, year {year}, placeholder {bool(cols.placeholder[row])}"


def similarity_mismatches(
    served: Sequence[tuple[str, float]], vector: FloatArray, cols: Columns, tolerance: float
) -> list[str]:
    """Served similarities that are not the cosine of the track's stored vector with `vector`."""
    problems = []
    for mbid, similarity in served:
        row = cols.position.get(mbid)
        if row is None:
            continue
        exact = float(cols.vectors[row] @ vector)
        if abs(exact - similarity) > tolerance:
            problems.append(f"{mbid}: served similarity {similarity:.6f}, exact {exact:.6f}")
    return problems


def percentiles(values: Sequence[float]) -> tuple[float, float, float]:
    """p50, p95, p99 (linear interpolation); NaN for no values."""
    if not values:
        return (float("nan"),) * 3
    p50, p95, p99 = (float(v) for v in np.percentile(np.asarray(values, dtype=np.float64), [50, 95, 99]))
    return p50, p95, p99


@dataclass
class RecallStats:
    mean: float | None
    min: float | None
    checked: int


def recall_stats(recalls: Sequence[float | None]) -> RecallStats:
    known = [r for r in recalls if r is not None]
    return RecallStats(sum(known) / len(known) if known else None, min(known, default=None), len(known))


def failures(
    errors: Mapping[str, Sequence[str]],
    violations: Mapping[str, Sequence[str]],
    recall: Mapping[str, RecallStats],
    target: float = RECALL_TARGET,
) -> list[str]:
    """Why the run fails, per query type: failed requests, violated filters or rules, mean recall
    below `target` (or nothing to measure it on)."""
    out: list[str] = []
    for kind in sorted({*errors, *violations, *recall}):
        if errs := errors.get(kind):
            out.append(f"{kind}: {len(errs)} request(s) failed, e.g. {errs[0]}")
        if bad := violations.get(kind):
            out.append(f"{kind}: {len(bad)} violation(s), e.g. {bad[0]}")
        stats = recall.get(kind)
        if stats is not None and (stats.mean is None or stats.mean < target):
            shown = "not measured" if stats.mean is None else f"{stats.mean:.4f}"
            out.append(f"{kind}: mean recall@{LIMIT} {shown} < {target}")
    return out


# --------------------------------------------------------------------------------------------------
# The client process


@dataclass
class Phase:
    """One query type at one concurrency, as the client measured it."""

    kind: str
    concurrency: int
    wall: float
    latencies: list[float]
    errors: list[str | None]
    results: list[list[tuple[str, float]] | None]


async def _client(spec: Mapping[str, Any]) -> list[Phase]:
    import grpc
    from google.protobuf import json_format

    from musicrec.recommender.v1 import recommender_pb2, recommender_pb2_grpc

    deadline = float(spec["deadline"])
    channel = grpc.aio.insecure_channel(
        spec["address"],
        options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.enable_retries", 0)],
    )
    await asyncio.wait_for(channel.channel_ready(), timeout=60)
    stub = recommender_pb2_grpc.RecommenderServiceStub(channel)

    async def run(requests: Sequence[recommender_pb2.RecommendRequest], concurrency: int, kind: str) -> Phase:
        latencies = [0.0] * len(requests)
        errors: list[str | None] = [None] * len(requests)
        results: list[list[tuple[str, float]] | None] = [None] * len(requests)
        pending = iter(range(len(requests)))

        async def worker() -> None:
            for i in pending:
                began = time.perf_counter()
                try:
                    response = await stub.Recommend(requests[i], timeout=deadline)
                except grpc.aio.AioRpcError as error:
                    errors[i] = f"{error.code().name}: {error.details()}"
                else:
                    results[i] = [(t.mbid, t.similarity) for t in response.tracks]
                latencies[i] = time.perf_counter() - began

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return Phase(kind, concurrency, time.perf_counter() - began, latencies, errors, results)

    phases: list[Phase] = []
    try:
        if spec.get("prime"):
            # Unrecorded as a query type: the first requests after the services start, on other
            # seeds, which read the index's and PostgreSQL's pages into memory.
            prime = [json_format.ParseDict(r, recommender_pb2.RecommendRequest()) for r in spec["prime"]]
            phases.append(await run(prime, 1, PRIME_KIND))
            print(f"  client: {len(prime)} priming requests done", file=sys.stderr, flush=True)
        for kind, items in spec["requests"].items():
            requests = [json_format.ParseDict(r, recommender_pb2.RecommendRequest()) for r in items]
            for concurrency in spec["concurrency"]:
                await run(requests[: spec["warmup"]], concurrency, kind)
                phases.append(await run(requests, concurrency, kind))
                print(f"  client: {kind} × {concurrency} done", file=sys.stderr, flush=True)
    finally:
        await channel.close()
    return phases


def client_main(spec_path: Path, out_path: Path) -> int:
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    phases = asyncio.run(_client(spec))
    out_path.write_text(json.dumps([dataclasses.asdict(p) for p in phases]), encoding="utf-8")
    return 0


def request_dict(query: Query, cols: Columns) -> dict[str, Any]:
    """The RecommendRequest of `query` in protobuf's JSON mapping (what the client parses)."""
    request: dict[str, Any] = {
        "seed_mbid": cols.ids[query.positives[0]],
        "limit": LIMIT,
        "genre_classifier": "GENRE_CLASSIFIER_ROSAMERICA",
    }
    if query.positives[1:]:
        request["seeds"] = [{"mbid": cols.ids[p]} for p in query.positives[1:]]
    if query.negatives:
        request["negative_seeds"] = [{"mbid": cols.ids[p]} for p in query.negatives]
    for name in ("same_genre", "same_decade"):
        if getattr(query, name):
            request[name] = True
    for name in ("min_year", "max_year", "max_per_artist"):
        if (value := getattr(query, name)) is not None:
            request[name] = value
    return request


# --------------------------------------------------------------------------------------------------
# Service processes


class Service:
    """A `musicrec serve …` subprocess: started, awaited until its ready line, stopped with SIGTERM
    (then SIGKILL). Its stdout is drained by a thread; its stderr goes to a log file."""

    def __init__(self, name: str, args: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.name, self.log = name, log
        self._lines: queue.Queue[str | None] = queue.Queue()
        with log.open("ab") as stderr:
            self.process = subprocess.Popen(
                list(args),
                env=dict(env),
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                text=True,
                start_new_session=True,  # a Ctrl-C reaches the benchmark only, which stops us cleanly
            )
        threading.Thread(target=self._drain, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_ready(self, timeout: float) -> dict[str, str]:
        """The addresses of the ready line ("musicrec ready: name=host:port …")."""
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith("musicrec ready:"):
                words = line.removeprefix("musicrec ready:").split("(")[0].split()
                return dict(word.split("=", 1) for word in words)
        tail = self.log.read_text(errors="replace").splitlines()[-15:] if self.log.exists() else []
        state = "exited" if self.process.poll() is not None else f"not ready after {timeout:.0f} s"
        raise RuntimeError(f"musicrec serve {self.name} {state}; end of {self.log}:\n" + "\n".join(tail))

    def stop(self, timeout: float = 180.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                print(
                    f"musicrec serve {self.name} did not stop in {timeout:.0f} s: killing it", file=sys.stderr
                )
                self.process.kill()
                self.process.wait()


def _musicrec() -> str:
    script = Path(sys.executable).with_name("musicrec")
    if not script.exists():
        raise SystemExit(f"no musicrec script beside {sys.executable}: run this with `uv run python …`")
    return str(script)


def _service_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICREC_")}
    env.pop("OPENBLAS_NUM_THREADS", None)
    if caller := env.pop("SERVE_BENCH_CALLER_OPENBLAS_NUM_THREADS", ""):
        env["OPENBLAS_NUM_THREADS"] = caller
    env["MUSICREC_DATA_DIR"] = str(data_dir)
    for name in ("CATALOG", "INGESTOR", "RECOMMENDER"):
        env[f"MUSICREC_{name}_HOST"] = "127.0.0.1"
        env[f"MUSICREC_{name}_PORT"] = "0"
    env.update(extra)
    return env


def stop_leftover_postgres(data_dir: Path, timeout: float = 60.0) -> bool:
    """Stop an embedded PostgreSQL still running on `data_dir` (its postmaster.pid names it), which
    a killed catalog leaves behind: fast shutdown, then immediate. True when one was running."""
    pid_file = data_dir / "postgres" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return False
    if b"postgres" not in command or str(data_dir / "postgres").encode() + b"\0" not in command:
        return False
    for sig in (signal.SIGINT, signal.SIGQUIT):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not Path(f"/proc/{pid}").exists():
                return True
            time.sleep(0.2)
    return True


@contextlib.contextmanager
def services(data_dir: Path) -> Iterator[list[Service]]:
    """A list the block appends started services to; on exit they are stopped, last first, and a
    PostgreSQL left running on `data_dir` is shut down."""
    started: list[Service] = []
    try:
        yield started
    finally:
        for service in reversed(started):
            service.stop()
        if stop_leftover_postgres(data_dir):
            print(f"stopped a PostgreSQL left running on {data_dir}", file=sys.stderr)


# --------------------------------------------------------------------------------------------------
# Phases of one size


@dataclass
class IngestFigures:
    corpus: str
    corpus_bytes: int
    documents: int
    tracks_stored: int
    vectors_upserted: int
    load_seconds: float
    index_seconds: float
    docs_per_second: float
    rss_serve_mb: float
    rss_worker_mb: float
    rss_postgres_mb: float
    stages: dict[str, float]
    date: str
    # The index build in its own process (0: an ingest from before it had one).
    rss_build_mb: float = 0.0


def ensure_corpus(workdir: Path, tracks: int) -> Path:
    archive = workdir / f"corpus-{tracks}.tar.zst"
    if not archive.exists():
        from musicrec_common.corpus import write_corpus_archive

        print(f"writing {archive} …", file=sys.stderr, flush=True)
        write_corpus_archive(archive, tracks=tracks, seed=0)
    return archive


def ingest_phase(archive: Path, data_dir: Path, workers: int, *, reuse: bool) -> tuple[IngestFigures, bool]:
    """Ingest `archive` into a fresh `data_dir` through `musicrec serve all` (or, with `reuse`, read
    the figures of the finished ingest the data dir holds). Returns the figures and whether reused."""
    marker = data_dir / INGEST_MARKER
    if reuse and marker.exists():
        saved = json.loads(marker.read_text(encoding="utf-8"))
        if saved.get("corpus") == archive.name:
            print(f"reusing the ingest in {data_dir} ({saved['date']})", file=sys.stderr)
            return IngestFigures(**saved), True
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    env = _service_env(data_dir, MUSICREC_INGESTOR_WORKERS=str(workers))
    with services(data_dir) as running:
        serve = Service(
            "all", [_musicrec(), "serve", "all"], env, data_dir.parent / f"{data_dir.name}-all.log"
        )
        running.append(serve)
        with PeakMemory(data_dir, {serve.pid: "serve"}) as memory:
            addresses = serve.wait_ready(300)
            print(f"ingesting {archive.name} into {data_dir} …", file=sys.stderr, flush=True)
            report, wall = asyncio.run(_ingest(addresses["ingestor"], archive))
            memory.sample()
        serve_kib = max(memory.peaks.get("serve", 0), vm_hwm_kib(serve.pid) or 0)
    if report.tracks_stored == 0 or report.vectors_upserted != report.tracks_inserted + report.tracks_updated:
        raise RuntimeError(f"the ingest stored nothing, or rows and vectors disagree:\n{report}")
    index = sum(s.seconds for s in report.stages if s.stage == "index")
    figures = IngestFigures(
        corpus=archive.name,
        corpus_bytes=archive.stat().st_size,
        documents=report.documents_read,
        tracks_stored=report.tracks_stored,
        vectors_upserted=report.vectors_upserted,
        load_seconds=wall - index,
        index_seconds=index,
        docs_per_second=report.documents_read / max(wall - index, 1e-9),
        rss_serve_mb=serve_kib / 1024,
        rss_worker_mb=memory.peaks.get("worker", 0) / 1024,
        rss_build_mb=memory.peaks.get("index-build", 0) / 1024,
        rss_postgres_mb=memory.peaks.get("postgres", 0) / 1024,
        stages={s.stage: s.seconds for s in report.stages},
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    marker.write_text(json.dumps(dataclasses.asdict(figures), indent=2) + "\n", encoding="utf-8")
    return figures, False


async def _ingest(address: str, archive: Path) -> tuple[Any, float]:
    from musicrec_cli.clients import ingest

    began = time.perf_counter()
    report = await ingest(address, [archive], show_progress=sys.stderr.isatty())
    return report, time.perf_counter() - began


def read_columns(data_dir: Path) -> Columns:
    """Every stored point of the index in `data_dir`, read in this process; the shard is closed
    again before the recommender opens it."""
    from musicrec_common.features import FEATURE_DIM
    from musicrec_vectorstore import open_vector_store

    store = open_vector_store(
        qdrant_url=None, api_key=None, data_dir=data_dir, collection=COLLECTION, dimension=FEATURE_DIM
    )
    try:
        return columns_from_batches(store.iter_points(batch_size=2048), FEATURE_DIM)
    finally:
        store.close()


def raw_matrix(archive: Path, cols: Columns) -> tuple[FloatArray, BoolArray]:
    """The prototype's raw probability vectors (unit rows) of every stored track's stored
    submission, re-read from the corpus, and which tracks have one."""
    from musicrec_cli.eval import _read_raw_vectors, unit_rows

    wanted = {m: int(s) for m, s in zip(cols.ids, cols.submission.tolist(), strict=True)}
    raw = _read_raw_vectors(archive, wanted, cols.position)
    return unit_rows(raw.rows), raw.found


@dataclass
class Serving:
    phases: list[Phase]
    rss_mb: dict[str, float]


def serve_phase(data_dir: Path, spec: dict[str, Any], workdir: Path) -> Serving:
    """Catalog and recommender as two processes, the client as a third; the client's phases and the
    services' peak RSS."""
    logs = data_dir.parent
    with services(data_dir) as running:
        catalog = Service(
            "catalog",
            [_musicrec(), "serve", "catalog"],
            _service_env(data_dir),
            logs / f"{data_dir.name}-catalog.log",
        )
        running.append(catalog)
        with PeakMemory(data_dir, {catalog.pid: "catalog"}) as memory:
            catalog_address = catalog.wait_ready(300)["catalog"]
            env = _service_env(data_dir, MUSICREC_RECOMMENDER_CATALOG_ADDRESS=catalog_address)
            recommender = Service(
                "recommender",
                [_musicrec(), "serve", "recommender"],
                env,
                logs / f"{data_dir.name}-recommender.log",
            )
            running.append(recommender)
            memory.labels[recommender.pid] = "recommender"
            spec["address"] = recommender.wait_ready(900)["recommender"]
            print(
                f"serving from {data_dir}: catalog {catalog_address}, recommender {spec['address']}",
                file=sys.stderr,
                flush=True,
            )
            phases = run_client(spec, workdir, memory)
            memory.sample()
            rss = {
                name: max(memory.peaks.get(name, 0), vm_hwm_kib(service.pid) or 0) / 1024
                for name, service in (("catalog", catalog), ("recommender", recommender))
            }
            rss["postgres"] = memory.peaks.get("postgres", 0) / 1024
    return Serving(phases, rss)


def run_client(spec: Mapping[str, Any], workdir: Path, memory: PeakMemory) -> list[Phase]:
    with tempfile.TemporaryDirectory(dir=workdir, prefix="serve-client-") as folder:
        spec_path, out_path = Path(folder) / "spec.json", Path(folder) / "out.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        args = [sys.executable, str(Path(__file__).resolve()), "_client", "--spec", str(spec_path)]
        client = subprocess.Popen([*args, "--out", str(out_path)], stdin=subprocess.DEVNULL)
        memory.labels[client.pid] = "client"
        try:
            code = client.wait(timeout=6 * 3600)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        if code != 0:
            raise RuntimeError(f"the client process failed (exit code {code})")
        return [
            Phase(
                p["kind"],
                p["concurrency"],
                p["wall"],
                p["latencies"],
                p["errors"],
                [None if r is None else [(m, s) for m, s in r] for r in p["results"]],
            )
            for p in json.loads(out_path.read_text(encoding="utf-8"))
        ]


# --------------------------------------------------------------------------------------------------
# Putting one size together


@dataclass
class Latency:
    p50: float  # milliseconds
    p95: float
    p99: float
    rps: float | None = None
    requests: int = 0
    errors: int = 0


def latency_of(seconds: Sequence[float], wall: float | None = None, errors: int = 0) -> Latency:
    p50, p95, p99 = percentiles([s * 1000 for s in seconds])
    rps = None if wall is None or wall <= 0 else len(seconds) / wall
    return Latency(p50, p95, p99, rps, len(seconds), errors)


@dataclass
class SizeResult:
    size: int
    ingest: IngestFigures
    reused_ingest: bool
    points: int
    placeholders: int
    seeds: int
    read_points_seconds: float
    raw_read_seconds: float | None
    prototype_vectors: str
    rss_serving_mb: dict[str, float]
    disk_bytes: dict[str, int]
    served: dict[str, dict[int, Latency]]
    baselines: dict[str, dict[str, Latency]]
    recall: dict[str, RecallStats]
    violations: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    # The priming requests: unfiltered, concurrency 1, the first after the services started.
    first_requests: Latency | None = None


@dataclass
class Expected:
    """Exact answers to one query type, per seed, and the vectors they were computed for."""

    specs: list[FilterSpec]
    vectors: list[FloatArray]
    ids: list[list[str]]
    seconds: list[float]


def expected_answers(queries: Sequence[Query], cols: Columns) -> Expected:
    """Exact search with the recommender's rules for every query, timed (the numpy baseline)."""
    out = Expected([], [], [], [])
    for query in queries:
        began = time.perf_counter()
        spec = filter_spec(query, cols)
        vector = query_of(query, cols.vectors)
        chosen = exact_select(vector, allowed_mask(spec, cols), cols, LIMIT, query.cap)
        out.seconds.append(time.perf_counter() - began)
        out.specs.append(spec)
        out.vectors.append(vector)
        out.ids.append([c.id for c in chosen])
    return out


def prototype_seconds(
    queries: Sequence[Query], specs: Sequence[FilterSpec], matrix: FloatArray, cols: Columns
) -> list[float]:
    table = PrototypeTable.of(cols)
    seconds = []
    for query, spec in zip(queries, specs, strict=True):
        began = time.perf_counter()
        prototype_select(matrix, query_of(query, matrix), spec, cols, table, LIMIT, query.cap)
        seconds.append(time.perf_counter() - began)
    return seconds


def check_phases(
    phases: Sequence[Phase],
    queries: Mapping[str, Sequence[Query]],
    expected: Mapping[str, Expected],
    cols: Columns,
) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, RecallStats]]:
    """Errors, violations and recall@10 of every served answer, per query type."""
    errors: dict[str, list[str]] = {}
    violations: dict[str, list[str]] = {}
    recalls: dict[str, list[float | None]] = {}
    for phase in phases:
        exact = expected[phase.kind]
        for i, (error, result) in enumerate(zip(phase.errors, phase.results, strict=True)):
            query = queries[phase.kind][i]
            where = f"seed {cols.ids[query.positives[0]]}, concurrency {phase.concurrency}"
            if error is not None or result is None:
                errors.setdefault(phase.kind, []).append(f"{where}: {error}")
                continue
            served = [m for m, _ in result]
            problems = served_violations(served, exact.specs[i], cols, query.cap)
            problems += similarity_mismatches(result, exact.vectors[i], cols, SIMILARITY_TOLERANCE)
            violations.setdefault(phase.kind, []).extend(f"{where}: {p}" for p in problems)
            recalls.setdefault(phase.kind, []).append(recall_at_k(served, exact.ids[i], LIMIT))
    violations = {k: v for k, v in violations.items() if v}
    return errors, violations, {kind: recall_stats(r) for kind, r in recalls.items()}


def run_size(size: int, args: argparse.Namespace) -> SizeResult:
    workdir: Path = args.workdir
    archive = ensure_corpus(workdir, size)
    data_dir = workdir / f"serve-{size}"
    figures, reused = ingest_phase(archive, data_dir, args.workers, reuse=args.reuse)
    print(f"reading the stored points of {data_dir} …", file=sys.stderr, flush=True)
    began = time.perf_counter()
    cols = read_columns(data_dir)
    read_seconds = time.perf_counter() - began
    use_raw = args.prototype_vectors == "raw" or (
        args.prototype_vectors == "auto" and len(cols) <= RAW_VECTORS_MAX_TRACKS
    )
    raw_seconds: float | None = None
    usable: BoolArray | None = None
    matrix = cols.vectors
    if use_raw:
        began = time.perf_counter()
        matrix, usable = raw_matrix(archive, cols)
        raw_seconds = time.perf_counter() - began
    seeds = pick_seeds(cols, args.seeds, args.rng_seed, usable)
    queries = build_queries(cols, seeds, args.rng_seed)
    measured = set(seeds)
    primers = [s for s in pick_seeds(cols, args.prime + len(seeds), args.rng_seed + 1) if s not in measured]
    spec = {
        "deadline": args.deadline,
        "warmup": args.warmup,
        "prime": [request_dict(make_query("none", s, [], cols), cols) for s in primers[: args.prime]],
        "concurrency": list(CONCURRENCY),
        "requests": {kind: [request_dict(q, cols) for q in qs] for kind, qs in queries.items()},
    }
    serving = serve_phase(data_dir, spec, workdir)
    disk = {"postgres": du(data_dir / "postgres"), "qdrant": du(data_dir / "qdrant")}
    print("exact answers and baselines …", file=sys.stderr, flush=True)
    expected = {kind: expected_answers(qs, cols) for kind, qs in queries.items()}
    prototype = {
        kind: prototype_seconds(qs, expected[kind].specs, matrix, cols) for kind, qs in queries.items()
    }
    priming = [p for p in serving.phases if p.kind == PRIME_KIND]
    phases = [p for p in serving.phases if p.kind != PRIME_KIND]
    errors, violations, recall = check_phases(phases, queries, expected, cols)
    served: dict[str, dict[int, Latency]] = {}
    for phase in phases:
        ok = [s for s, e in zip(phase.latencies, phase.errors, strict=True) if e is None]
        served.setdefault(phase.kind, {})[phase.concurrency] = latency_of(
            ok, phase.wall, sum(e is not None for e in phase.errors)
        )
    return SizeResult(
        size=size,
        ingest=figures,
        reused_ingest=reused,
        points=len(cols),
        placeholders=int(cols.placeholder.sum()),
        seeds=len(seeds),
        read_points_seconds=read_seconds,
        raw_read_seconds=raw_seconds,
        prototype_vectors="raw probabilities" if use_raw else "our vectors",
        rss_serving_mb=serving.rss_mb,
        disk_bytes=disk,
        served=served,
        baselines={
            "exact (numpy)": {k: latency_of(e.seconds) for k, e in expected.items()},
            "prototype": {k: latency_of(s) for k, s in prototype.items()},
        },
        recall=recall,
        violations=violations,
        errors=errors,
        failures=failures(errors, violations, recall, args.min_recall),
        first_requests=None
        if not priming
        else latency_of(
            [s for s, e in zip(priming[0].latencies, priming[0].errors, strict=True) if e is None],
            priming[0].wall,
            sum(e is not None for e in priming[0].errors),
        ),
    )


# --------------------------------------------------------------------------------------------------
# Output


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def _ms(value: float) -> str:
    return "—" if value != value else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _trio(latency: Latency) -> str:
    return f"{_ms(latency.p50)} / {_ms(latency.p95)} / {_ms(latency.p99)}"


def footprint_table(r: SizeResult) -> str:
    f = r.ingest
    per_million = 1e6 / max(r.points, 1)
    pg, qd = r.disk_bytes["postgres"], r.disk_bytes["qdrant"]
    prototype = PROTOTYPE_CATALOG_BYTES * 1e6 / PROTOTYPE_CATALOG_TRACKS
    rows = [
        ["corpus", f"`{f.corpus}`, {f.corpus_bytes / 1e6:,.0f} MB, {f.documents:,} documents"],
        ["tracks in the index (placeholder titles)", f"{r.points:,} ({r.placeholders:,})"],
        [
            "ingest (load, without the index build)",
            f"{f.load_seconds:,.1f} s, {f.docs_per_second:,.0f} documents/s",
        ],
        ['index build (HNSW, stage "index")', f"{f.index_seconds:,.1f} s"],
        ["ingest stages (overlapping)", " · ".join(f"{k} {v:,.1f} s" for k, v in f.stages.items())],
        ["peak RSS during ingest: `serve all` process", f"{f.rss_serve_mb:,.0f} MB"],
        ["peak RSS during ingest: largest parse worker", f"{f.rss_worker_mb:,.0f} MB"],
        [
            "peak RSS during ingest: index build (its own process)",
            f"{f.rss_build_mb:,.0f} MB"
            if f.rss_build_mb
            else "— (an ingest from before the build had its own process)",
        ],
        ["peak RSS during ingest: largest PostgreSQL process", f"{f.rss_postgres_mb:,.0f} MB"],
        ["peak RSS serving: catalog process", f"{r.rss_serving_mb['catalog']:,.0f} MB"],
        ["peak RSS serving: recommender process", f"{r.rss_serving_mb['recommender']:,.0f} MB"],
        ["peak RSS serving: largest PostgreSQL process", f"{r.rss_serving_mb['postgres']:,.0f} MB"],
        ["PostgreSQL on disk", f"{pg / 1e6:,.0f} MB ({pg * per_million / 1e6:,.0f} MB per million tracks)"],
        ["vector index on disk", f"{qd / 1e6:,.0f} MB ({qd * per_million / 1e6:,.0f} MB per million tracks)"],
        ["prototype's catalog on disk", f"190 MB for 697k tracks ({prototype / 1e6:,.0f} MB per million)"],
        ["reading the stored points (exact data)", f"{r.read_points_seconds:,.1f} s"],
    ]
    if r.raw_read_seconds is not None:
        rows.append(["re-reading the corpus for raw vectors (prototype)", f"{r.raw_read_seconds:,.1f} s"])
    if r.reused_ingest:
        rows.append(["ingest figures", f"from the earlier run of {f.date} (`--reuse`)"])
    return _table(["measure", "value"], rows)


def latency_table(r: SizeResult) -> str:
    headers = ["query type"]
    for c in CONCURRENCY:
        headers += [f"c={c} p50 / p95 / p99 ms", f"c={c} req/s"]
    rows = []
    for kind in QUERY_TYPES:
        row = [kind]
        for c in CONCURRENCY:
            latency = r.served.get(kind, {}).get(c)
            if latency is None:
                row += ["—", "—"]
                continue
            errors = f" ({latency.errors} failed)" if latency.errors else ""
            row += [_trio(latency) + errors, f"{latency.rps:,.0f}" if latency.rps else "—"]
        rows.append(row)
    if r.first_requests is not None:
        first = r.first_requests
        errors = f" ({first.errors} failed)" if first.errors else ""
        label = f"first {first.requests + first.errors} after start (none, other seeds)"
        row = [label, _trio(first) + errors]
        row += [f"{first.rps:,.0f}" if first.rps else "—"] + ["—", "—"] * (len(CONCURRENCY) - 1)
        rows.append(row)
    return _table(headers, rows)


def correctness_table(r: SizeResult) -> str:
    rows = []
    for kind in QUERY_TYPES:
        stats = r.recall.get(kind, RecallStats(None, None, 0))
        mean = "—" if stats.mean is None else f"{stats.mean:.4f}"
        low = "—" if stats.min is None else f"{stats.min:.2f}"
        rows.append(
            [
                kind,
                mean,
                low,
                str(stats.checked),
                str(len(r.violations.get(kind, []))),
                str(len(r.errors.get(kind, []))),
            ]
        )
    return _table(
        ["query type", f"recall@{LIMIT} (mean)", "min", "answers checked", "violations", "failed requests"],
        rows,
    )


def baseline_table(r: SizeResult) -> str:
    methods = [("served, c=1", {k: v[1] for k, v in r.served.items() if 1 in v}), *r.baselines.items()]
    rows = [[kind, *(_trio(m[kind]) if kind in m else "—" for _, m in methods)] for kind in QUERY_TYPES]
    return _table(["query type", *(f"{name} p50 / p95 / p99 ms" for name, _ in methods)], rows)


def render(
    results: Sequence[SizeResult], args: argparse.Namespace, command: str, plot_link: str | None
) -> str:
    failed = [f"{r.size:,}: {f}" for r in results for f in r.failures]
    verdict = "**FAILED**" if failed else "passed"
    first = results[0]
    parts = [
        SECTION,
        "",
        f"Command: `{command}` — {dt.date.today().isoformat()}, {machine()}.",
        f"Verdict: {verdict} (no failed request, every filter and the artist cap hold, mean recall@{LIMIT} "
        f"≥ {args.min_recall:g} per query type against exact search with the same rules).",
        "",
        "Synthetic corpora (`musicrec gen-corpus` layout), ingested by `musicrec serve all` (embedded "
        "PostgreSQL 18, Qdrant Edge; the HNSW build timed apart), then served by `musicrec serve catalog` "
        "and `musicrec serve recommender` as two processes. A third process is the client: grpc.aio, one "
        f"channel, {first.seeds} seeds (non-placeholder tracks with a genre and a year, fixed RNG seed), "
        f"every query type once per seed at each concurrency c (c requests in flight), after "
        f"{args.warmup} warm-up requests, deadline {args.deadline:g} s. Before any of it, "
        f'{args.prime} unfiltered requests on other seeds (the row "first … after start") read the '
        "index's and PostgreSQL's pages into memory, as in a server that has been running. Client, "
        "services and PostgreSQL share the machine's CPUs. Query types: `none` (limit 10), `genre` "
        "(same_genre, rosamerica), "
        "`genre+decade`, "
        f"`year range` (seed's year ± {YEAR_SPAN}), `artist cap` (max_per_artist 1), `several seeds` "
        "(3 positive), `negative seeds` (1 positive, 1 negative). Default rules otherwise: at most "
        f"{DEFAULT_MAX_PER_ARTIST} per artist, one track per title and artist, no placeholder titles.",
        "",
        "Every served answer is checked against exact search in numpy over the stored vectors with the "
        "same filter and `ranking.select` (the expected top 10). Baselines run in the benchmark process "
        "on the same queries: **exact (numpy)** = boolean mask, matmul over the allowed rows, "
        "argpartition, the same selection; **prototype** = cosine against every row (rows normalised "
        "once beforehand), the whole ranking sorted, then walked in Python with the filter and the "
        "rules until 10 pass. Both with one BLAS thread.",
    ]
    for r in results:
        note = (
            "the prototype's raw probability vectors, re-read from the corpus"
            if r.prototype_vectors == "raw probabilities"
            else "our stored vectors, not its raw probability vectors: re-reading the corpus for those "
            f"takes minutes above {RAW_VECTORS_MAX_TRACKS:,} tracks; the matmul and the full sort cost the "
            "same on any values, only the length of the filter walk depends on them"
        )
        parts += [
            "",
            f"### {r.size:,} tracks",
            "",
            footprint_table(r),
            "",
            "Served latency (client side, successful requests) and throughput over the wall time:",
            "",
            latency_table(r),
            "",
            "Correctness of every served answer (all concurrencies):",
            "",
            correctness_table(r),
            "",
            f"Baselines in one process, same queries (prototype timed on {note}):",
            "",
            baseline_table(r),
        ]
    if plot_link:
        parts += ["", f"![serving latency against catalog size]({plot_link})"]
    if failed:
        parts += ["", "**FAILED:**", "", *(f"- {f}" for f in failed[:30])]
    return "\n".join(parts) + "\n"


def plot(results: Sequence[SizeResult], path: Path) -> None:
    """p50 and p99 at concurrency 1 against catalog size, unfiltered and genre+decade, with the
    numpy baselines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}" if f"{value:g}"[0] in "125" else "")
    figure = Figure(figsize=(10, 4.5), dpi=110)
    FigureCanvasAgg(figure)
    ordered = sorted(results, key=lambda r: r.points)
    sizes = [r.points for r in ordered]
    colours = {"served, c=1": "tab:green", "exact (numpy)": "tab:blue", "prototype": "tab:red"}
    for i, kind in enumerate(("none", "genre+decade")):
        axes = figure.add_subplot(1, 2, i + 1)

        def series(r: SizeResult, method: str, kind: str = kind) -> Latency:
            return r.served[kind][1] if method == "served, c=1" else r.baselines[method][kind]

        for method, colour in colours.items():
            for stat, style, marker in (("p50", "-", "o"), ("p99", "--", "^")):
                values = [getattr(series(r, method), stat) for r in ordered]
                axes.plot(sizes, values, style, marker=marker, color=colour, label=f"{method} {stat}")
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(plain)
        axes.yaxis.set_minor_formatter(plain)
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.set_xticks(sizes, labels=[f"{n / 1e6:.2g}M" if n >= 1e6 else f"{n / 1e3:.0f}k" for n in sizes])
        axes.set_xlabel("tracks in the index")
        axes.set_ylabel("latency (ms)")
        axes.set_title(("unfiltered" if kind == "none" else "genre + decade filter") + ", concurrency 1")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize="x-small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


def _leftover_postgres(workdir: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", "postgres -D"], capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if str(workdir) in line and "/serve-" in line]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100000,1000000", help="catalog sizes (tracks), comma-separated")
    parser.add_argument(
        "--seeds", type=int, default=200, help="seed tracks (requests per type and concurrency)"
    )
    parser.add_argument("--rng-seed", type=int, default=1, help="random seed of the seed choice")
    parser.add_argument("--warmup", type=int, default=20, help="unrecorded requests before each measurement")
    parser.add_argument(
        "--prime",
        type=int,
        default=300,
        help="unfiltered requests on other seeds before any measurement, reported apart (first requests)",
    )
    parser.add_argument(
        "--min-recall", type=float, default=RECALL_TARGET, help="mean recall@10 a query type must reach"
    )
    parser.add_argument("--deadline", type=float, default=30.0, help="deadline of each request, seconds")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 2, help="parse workers of the ingest"
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--reuse", action="store_true", help="keep a data dir that holds a finished ingest")
    parser.add_argument(
        "--prototype-vectors",
        choices=["auto", "raw", "ours"],
        default="auto",
        help=f"vectors of the prototype's timing (auto: raw up to {RAW_VECTORS_MAX_TRACKS:,} tracks)",
    )
    parser.add_argument(
        "--doc", type=Path, default=BENCHMARKS_DOC, help="markdown file to write the section to"
    )
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help="PNG of latency against catalog size")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes takes comma-separated integers, not {args.sizes!r}")
    if not args.sizes or min(args.sizes) < 100:
        parser.error("--sizes: each size must be at least 100")
    if args.seeds < 3:
        parser.error("--seeds must be at least 3")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # A SIGTERM (a timeout, a process manager) unwinds like Ctrl-C, so the services are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.workdir.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["uv", "run", "python", "benchmarks/serve_bench.py", *sys.argv[1:]])
    plot_link = os.path.relpath(args.plot.resolve(), args.doc.resolve().parent)
    results: list[SizeResult] = []
    text = ""
    try:
        for size in args.sizes:
            results.append(run_size(size, args))
            text = render(results, args, command, plot_link)
            write_section(SECTION, text, args.doc)
            plot(results, args.plot)
            (args.workdir / "serve-bench-results.json").write_text(
                json.dumps([dataclasses.asdict(r) for r in results], indent=1, default=str), encoding="utf-8"
            )
    finally:
        if leftover := _leftover_postgres(args.workdir):
            print("warning: PostgreSQL still running:\n" + "\n".join(leftover), file=sys.stderr)
    print(text)
    print(f"written to {args.doc} (section {SECTION!r}), plot {args.plot}", file=sys.stderr)
    failed = [f"{r.size:,}: {f}" for r in results for f in r.failures]
    if failed:
        print("FAILED:\n" + "\n".join(f"  {f}" for f in failed), file=sys.stderr)
        return 1
    return 0


def _entry(argv: Sequence[str]) -> int:
    if argv[:1] == ["_client"]:
        parser = argparse.ArgumentParser(prog="serve_bench.py _client")
        parser.add_argument("--spec", type=Path, required=True)
        parser.add_argument("--out", type=Path, required=True)
        ns = parser.parse_args(argv[1:])
        return client_main(ns.spec, ns.out)
    return main(argv)


if __name__ == "__main__":
    sys.exit(_entry(sys.argv[1:]))
