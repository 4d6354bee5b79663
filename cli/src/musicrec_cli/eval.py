"""`musicrec eval`: how good the recommendations are, measured on a corpus.

Starts the three services in this process on the data directory (as `musicrec demo` does), ingests
the corpus through the ingestor's gRPC API when the index is empty, then answers the same seeds in
three ways, each unfiltered and filtered to the seed's rosamerica genre and decade:

- **prototype**: cosine over the raw probability vectors (`raw_probability_vector`) of each track's
  stored submission, re-read from the corpus, brute force in numpy;
- **exact**: exact cosine search in numpy over the vectors the index holds (`VectorStore.iter_points`);
- **served**: the recommender's answers over gRPC.

With a generated corpus the planted style of every recording (its ground truth, which the system
never reads) says whether a recommendation is right; any other corpus still gets the label, decade,
artist and coverage metrics. Writes report.md, metrics.json and two plots, and prints the tables.

The metric functions at the top are pure, so they are unit-tested on tiny hand-made inputs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import shlex
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from musicrec_common.logging import log_event
from musicrec_common.progress import ProgressMeter, ProgressPrinter

# numpy, gRPC and the services are imported where they are used: every `musicrec` command (even
# `musicrec health`, run by container healthchecks) builds its parser from this module.
if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from musicrec_cli.stack import ServiceStack
    from musicrec_common.corpus import TruthRecord
    from musicrec_common.settings import CommonSettings
    from musicrec_vectorstore import PayloadValue, VectorStore

    IntArray: TypeAlias = npt.NDArray[np.int64]
    FloatArray: TypeAlias = npt.NDArray[np.float32]
    BoolArray: TypeAlias = npt.NDArray[np.bool_]

__all__ = [
    "ARTIST_CAP",
    "CLASSIFIERS",
    "METHODS",
    "MODES",
    "DistributionStats",
    "MethodMetrics",
    "Target",
    "TrackTable",
    "add_parser",
    "agreement",
    "coverage",
    "distinct_count",
    "distribution_stats",
    "ground_truth_path",
    "largest_group",
    "mean_of",
    "metric_rows",
    "precision_at_k",
    "random_pairs",
    "recall_at_k",
    "recall_stats",
    "run_eval",
    "summarise",
    "top_k",
    "unit_rows",
]

log = logging.getLogger(__name__)

METHODS = ("prototype", "exact", "served")
UNFILTERED = "unfiltered"
GENRE_DECADE = "genre+decade"
MODES = (UNFILTERED, GENRE_DECADE)
CLASSIFIERS = ("rosamerica", "dortmund", "tzanetakis")
#: The genre model of the filtered mode (the demo's and the CLI's default).
FILTER_CLASSIFIER = "rosamerica"
#: Target: at most this many tracks of one artist in a top 10.
ARTIST_CAP = 3
RECALL_TARGET = 0.99
RANDOM_PAIR_P95_TARGET = 0.5
STYLE_PRECISION_FACTOR = 2.0
MAX_LIMIT = 100
_SERVED_IN_FLIGHT = 4
_UTF8_BOM = b"\xef\xbb\xbf"


# --------------------------------------------------------------------------------------------------
# Pure metrics


def precision_at_k(relevant: Sequence[bool], k: int) -> float | None:
    """Share of relevant results among the first `k` returned; None when nothing was returned.

    Divides by the results actually returned, so a filter that leaves fewer than `k` candidates is
    judged on what it could show."""
    top = relevant[:k]
    return sum(top) / len(top) if top else None


def recall_at_k(found: Sequence[Hashable], expected: Sequence[Hashable], k: int) -> float | None:
    """Share of the first `k` expected results that are among the first `k` found; None when nothing
    was expected (there is nothing to recall)."""
    wanted = set(expected[:k])
    if not wanted:
        return None
    return len(wanted & set(found[:k])) / len(wanted)


def agreement(seed_value: Hashable | None, values: Sequence[Hashable | None]) -> float | None:
    """Share of `values` equal to the seed's; None when the seed's value is unknown or there are no values."""
    if seed_value is None or not values:
        return None
    return sum(1 for v in values if v == seed_value) / len(values)


def distinct_count(values: Iterable[Hashable]) -> int:
    return len(set(values))


def largest_group(values: Iterable[Hashable]) -> int:
    """How often the most frequent value occurs (0 for no values)."""
    counts = Counter(values)
    return max(counts.values()) if counts else 0


def coverage(result_lists: Iterable[Iterable[Hashable]], catalog_size: int) -> float:
    """Distinct items recommended over all lists, as a share of the catalog."""
    if catalog_size <= 0:
        return 0.0
    seen: set[Hashable] = set()
    for results in result_lists:
        seen.update(results)
    return len(seen) / catalog_size


def mean_of(values: Iterable[float | None]) -> float | None:
    """Mean of the known values; None when none is known."""
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


@dataclass(frozen=True, slots=True)
class DistributionStats:
    count: int
    mean: float
    std: float
    p5: float
    p50: float
    p95: float


def distribution_stats(values: Sequence[float] | npt.NDArray[np.floating[Any]]) -> DistributionStats:
    """Mean, population std and the 5th/50th/95th percentiles (linear interpolation)."""
    import numpy as np

    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return DistributionStats(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    p5, p50, p95 = (float(p) for p in np.percentile(data, [5, 50, 95]))
    return DistributionStats(int(data.size), float(data.mean()), float(data.std()), p5, p50, p95)


def unit_rows(matrix: npt.NDArray[np.floating[Any]]) -> FloatArray:
    """Rows scaled to unit length (float32); all-zero rows stay zero, so their cosine with anything is 0."""
    import numpy as np

    data = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(data, axis=1, keepdims=True)
    safe = np.where(norms > 0.0, norms, 1.0)
    return (data / safe).astype(np.float32)


def top_k(scores: npt.NDArray[np.floating[Any]], allowed: BoolArray, k: int) -> IntArray:
    """Positions of the `k` highest scores among the allowed ones, best first (ties: lower position first)."""
    import numpy as np

    candidates = np.flatnonzero(allowed)
    if candidates.size == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    values = np.asarray(scores, dtype=np.float64)[candidates]
    if candidates.size > k:
        chosen = np.argpartition(-values, k - 1)[:k]
        candidates, values = candidates[chosen], values[chosen]
    order = np.lexsort((candidates, -values))
    return candidates[order].astype(np.int64)


def random_pairs(n: int, count: int, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    """`count` pairs (i, j) of distinct positions in range(n), drawn uniformly with replacement."""
    import numpy as np

    if n < 2 or count <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    first = rng.integers(0, n, size=count, dtype=np.int64)
    second = rng.integers(0, n - 1, size=count, dtype=np.int64)
    second += second >= first  # skips i itself: uniform over the other n - 1 positions
    return first, second


# --------------------------------------------------------------------------------------------------
# Per-method summary


@dataclass(frozen=True)
class TrackTable:
    """What the metrics know about every stored track, by position.

    `labels[classifier]` and `decades` hold -1 where unknown; `styles` (the planted style, from the
    ground truth) is None without a ground truth and -1 for a track it does not list; `artists` holds
    one code per artist, a track whose artist is unknown getting a code of its own."""

    mbids: Sequence[str]
    labels: Mapping[str, IntArray]
    decades: IntArray
    placeholder: BoolArray
    styles: IntArray | None
    artists: IntArray


@dataclass(frozen=True)
class MethodMetrics:
    """One method in one filter mode, over the seeds it answered."""

    seeds: int
    errors: int
    mean_results: float
    short_lists: int
    style_precision: float | None
    style_precision_curve: list[float | None] | None
    genre_agreement: dict[str, float | None]
    decade_agreement: float | None
    distinct_artists: float | None
    max_per_artist_mean: float | None
    max_per_artist_worst: int
    over_artist_cap: int
    coverage: float
    overlap_with_exact: float | None
    recall_vs_exact: float | None = None
    recall_vs_exact_min: float | None = None


def _known(codes: IntArray, positions: Sequence[int]) -> list[int | None]:
    return [None if codes[p] < 0 else int(codes[p]) for p in positions]


def summarise(
    table: TrackTable,
    seeds: Sequence[int],
    results: Sequence[Sequence[int] | None],
    k: int,
    *,
    stored: int,
    reference: Sequence[Sequence[int] | None] | None = None,
) -> MethodMetrics:
    """The metrics of one method: `results[i]` are the positions recommended for `seeds[i]`, best
    first (None when the method failed for that seed); `reference`, when given, is the exact search's
    answer for the same seeds and filter, which the results' overlap is measured against."""
    answered = [(seed, list(r[:k])) for seed, r in zip(seeds, results, strict=True) if r is not None]
    lists = [r for _, r in answered]
    curve: list[float | None] | None = None
    style_precision: float | None = None
    if table.styles is not None:
        styles = table.styles
        flags = [
            [bool(styles[seed] >= 0 and styles[p] == styles[seed]) for p in r]
            for seed, r in answered
            if styles[seed] >= 0
        ]
        curve = [mean_of(precision_at_k(f, depth) for f in flags) for depth in range(1, k + 1)]
        style_precision = curve[-1]
    genre = {
        name: mean_of(agreement(_known(codes, [seed])[0], _known(codes, r)) for seed, r in answered)
        for name, codes in table.labels.items()
    }
    decade = mean_of(
        agreement(_known(table.decades, [seed])[0], _known(table.decades, r)) for seed, r in answered
    )
    per_artist = [largest_group(table.artists[r].tolist()) for r in lists if r]
    overlap = None if reference is None else recall_stats(results, reference, k)[0]
    return MethodMetrics(
        seeds=len(answered),
        errors=len(results) - len(answered),
        mean_results=sum(len(r) for r in lists) / len(lists) if lists else 0.0,
        short_lists=sum(1 for r in lists if len(r) < k),
        style_precision=style_precision,
        style_precision_curve=curve,
        genre_agreement=genre,
        decade_agreement=decade,
        distinct_artists=mean_of(float(distinct_count(table.artists[r].tolist())) for r in lists if r),
        max_per_artist_mean=mean_of(float(n) for n in per_artist),
        max_per_artist_worst=max(per_artist, default=0),
        over_artist_cap=sum(1 for n in per_artist if n > ARTIST_CAP),
        coverage=coverage(lists, stored),
        overlap_with_exact=overlap,
    )


def recall_stats(
    found: Sequence[Sequence[Hashable] | None], expected: Sequence[Sequence[Hashable] | None], k: int
) -> tuple[float | None, float | None]:
    """Mean and minimum of recall@k of `found[i]` against `expected[i]`, over the pairs where both are
    known and something was expected."""
    recalls = [
        recall
        for f, e in zip(found, expected, strict=True)
        if f is not None and e is not None and (recall := recall_at_k(f, e, k)) is not None
    ]
    return mean_of(recalls), min(recalls, default=None)


# --------------------------------------------------------------------------------------------------
# Command line


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    """Register `musicrec eval` (`parents` carry the shared options, such as --data-dir)."""
    parser = subparsers.add_parser(
        "eval",
        parents=list(parents),
        help="measure recommendation quality on a corpus (prototype vs exact vs served)",
        description="Start the services on the data directory, ingest CORPUS when the index is empty, "
        "and compare, on the same seeds, the prototype (cosine over raw probabilities), exact search "
        "over the stored vectors, and the recommender's answers, unfiltered and filtered to the "
        "seed's rosamerica genre and decade. With a generated corpus (its ground truth beside it) "
        "style precision is measured too. Writes report.md, metrics.json, similarity_hist.png and "
        "precision.png to --out and prints the tables.",
    )
    parser.add_argument(
        "corpus",
        type=Path,
        metavar="CORPUS",
        help="a generated corpus (folder, or .tar.zst with its .ground_truth.ndjson beside it) "
        "or any dump folder/file",
    )
    parser.add_argument("--seeds", type=int, default=200, help="seed tracks to evaluate (default 200)")
    parser.add_argument("--limit", type=int, default=10, help="recommendations per seed, 1-100 (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="random seed for seeds and pairs (default 1)")
    parser.add_argument("--out", type=Path, help="output folder (default <data dir>/eval)")
    parser.add_argument(
        "--random-pairs",
        type=int,
        default=20_000,
        help="random track pairs for the similarity distributions (default 20000)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    return parser


def run_eval(args: argparse.Namespace, common: CommonSettings) -> int:
    if args.seeds < 1:
        raise SystemExit("musicrec eval: --seeds must be at least 1")
    if not 1 <= args.limit <= MAX_LIMIT:
        raise SystemExit(f"musicrec eval: --limit must be between 1 and {MAX_LIMIT}")
    if args.random_pairs < 1:
        raise SystemExit("musicrec eval: --random-pairs must be at least 1")
    from musicrec_ingestor.sources import describe_unsupported

    problem = describe_unsupported(args.corpus)
    if problem:
        raise SystemExit(f"musicrec eval: {problem}")
    out: Path = args.out if args.out is not None else common.data_dir / "eval"
    options = {
        "--data-dir": common.data_dir,
        "--seeds": args.seeds,
        "--limit": args.limit,
        "--seed": args.seed,
        "--out": out,
        "--random-pairs": args.random_pairs,
    }
    words = ["musicrec", "eval", str(args.corpus), *(str(w) for pair in options.items() for w in pair)]
    command = shlex.join(words + (["--check"] if args.check else []))
    evaluation = _write_outputs(asyncio.run(_evaluate(args, common.data_dir, command)), out)
    print(_terminal_text(evaluation))
    print(
        f"\nreport written to {out / 'report.md'} "
        f"(numbers in metrics.json; plots: {', '.join(evaluation.plots)})"
    )
    missed = [t for t in evaluation.targets if t.verdict == "missed"]
    if missed:
        print(f"{len(missed)} target(s) missed: " + "; ".join(t.name for t in missed))
    return 1 if args.check and missed else 0


# --------------------------------------------------------------------------------------------------
# Collecting the data


def ground_truth_path(corpus: Path) -> Path | None:
    """Where the generator put the ground truth of `corpus` (inside a folder; beside an archive as
    `<archive>.ground_truth.ndjson`), or None when there is none."""
    from musicrec_common.corpus import ARCHIVE_GROUND_TRUTH_SUFFIX, GROUND_TRUTH_FILE

    candidate = (
        corpus / GROUND_TRUTH_FILE
        if corpus.is_dir()
        else corpus.with_name(corpus.name + ARCHIVE_GROUND_TRUTH_SUFFIX)
    )
    return candidate if candidate.is_file() else None


def _load_ground_truth(path: Path) -> dict[str, TruthRecord]:
    from musicrec_common.corpus import GROUND_TRUTH_FILE, read_ground_truth

    if path.name == GROUND_TRUTH_FILE:
        return read_ground_truth(path.parent)
    # `read_ground_truth` reads <folder>/ground_truth.ndjson; an archive's sits beside it under
    # another name, so hand it a folder where that name points at the file.
    with tempfile.TemporaryDirectory(prefix="musicrec-eval-") as folder:
        (Path(folder) / GROUND_TRUTH_FILE).symlink_to(path.resolve())
        return read_ground_truth(Path(folder))


def _payload_text(payload: Mapping[str, PayloadValue], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value else None


def _payload_int(payload: Mapping[str, PayloadValue], key: str) -> int | None:
    value = payload.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class _StoredPoints:
    mbids: list[str]
    vectors: FloatArray
    payloads: list[dict[str, PayloadValue]]


def _read_points(store: VectorStore) -> _StoredPoints:
    import numpy as np

    total = store.count()
    meter = ProgressMeter(total=total)
    printer = ProgressPrinter("eval: read vectors", "tracks")
    mbids: list[str] = []
    chunks: list[FloatArray] = []
    payloads: list[dict[str, PayloadValue]] = []
    for batch in store.iter_points(batch_size=1024):
        mbids.extend(batch.ids)
        chunks.append(np.asarray(batch.vectors, dtype=np.float32))
        payloads.extend(batch.payloads)
        meter.done = len(mbids)
        printer.show(meter.done, total, meter.rate, meter.eta)
    printer.show(len(mbids), total, meter.rate, 0.0, final=True)
    # The engine's order is its own; sorting by MBID makes the seed choice depend only on --seed.
    order = sorted(range(len(mbids)), key=mbids.__getitem__)
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, store.dimension), dtype=np.float32)
    return _StoredPoints([mbids[i] for i in order], vectors[order], [payloads[i] for i in order])


@dataclass(frozen=True)
class _RawVectors:
    rows: FloatArray  # one row per stored track (zeros where not found)
    found: BoolArray
    documents: int


def _read_raw_vectors(corpus: Path, wanted: Mapping[str, int], positions: Mapping[str, int]) -> _RawVectors:
    """The prototype's raw probability vector of each stored track's stored submission (`wanted`:
    MBID -> submission number), re-read from the corpus."""
    import numpy as np
    import orjson

    from musicrec_common.acousticbrainz import DocumentError, parse_document_detailed
    from musicrec_common.features import raw_probability_vector
    from musicrec_ingestor.sources import BytesRead, Document, iter_source, source_bytes

    rows: list[FloatArray | None] = [None] * len(positions)
    total_bytes = max(source_bytes(corpus), 1)
    position = BytesRead()
    meter = ProgressMeter()
    printer = ProgressPrinter("eval: read corpus", "documents")
    documents = 0
    for item in iter_source(corpus, position):
        if not isinstance(item, Document):
            continue
        documents += 1
        meter.done = documents
        fraction = position.done / total_bytes
        eta = meter.elapsed * (1 - fraction) / fraction if fraction > 0 else -1.0
        printer.show(documents, None, meter.rate, eta, fraction=fraction)
        mbid, submission = item.mbid, item.submission
        if mbid is None or submission is None:
            # No member name (NDJSON lines): the parser finds the MBID as the ingestor does.
            try:
                parsed, _ = parse_document_detailed(item.data, source=item.source)
            except DocumentError:
                continue
            mbid, submission = parsed.track.mbid, parsed.track.submission
        at = positions.get(mbid)
        if at is None or rows[at] is not None or wanted.get(mbid) != submission:
            continue
        try:
            document = orjson.loads(item.data.removeprefix(_UTF8_BOM))
        except orjson.JSONDecodeError:
            continue
        highlevel = document.get("highlevel") if isinstance(document, dict) else None
        if isinstance(highlevel, dict):
            rows[at] = np.asarray(raw_probability_vector(highlevel), dtype=np.float32)
    printer.show(documents, None, meter.rate, 0.0, final=True, fraction=1.0)
    width = next((len(r) for r in rows if r is not None), 0)
    matrix = np.zeros((len(rows), width), dtype=np.float32)
    found = np.zeros(len(rows), dtype=np.bool_)
    for i, row in enumerate(rows):
        if row is not None:
            matrix[i] = row
            found[i] = True
    return _RawVectors(matrix, found, documents)


def _codes(values: Sequence[Hashable | None]) -> IntArray:
    """Integer codes of values (equal values, equal codes); -1 for None."""
    import numpy as np

    mapping: dict[Hashable, int] = {}
    return np.array(
        [-1 if v is None else mapping.setdefault(v, len(mapping)) for v in values], dtype=np.int64
    )


def _artist_codes(artists: Sequence[str | None]) -> IntArray:
    """One code per artist; an unknown artist gets a code of its own per track (never a shared one)."""
    import numpy as np

    codes = _codes(artists)
    unknown = codes < 0
    codes[unknown] = codes.max(initial=-1) + 1 + np.arange(int(unknown.sum()))
    return codes


def _base_table(
    points: _StoredPoints, truth: Mapping[str, TruthRecord] | None, artists: Sequence[str | None]
) -> TrackTable:
    import numpy as np

    payloads = points.payloads
    years = [_payload_int(p, "year") for p in payloads]
    return TrackTable(
        mbids=points.mbids,
        labels={name: _codes([_payload_text(p, name) for p in payloads]) for name in CLASSIFIERS},
        decades=np.array([-1 if y is None else y // 10 * 10 for y in years], dtype=np.int64),
        placeholder=np.array([p.get("placeholder") is True for p in payloads], dtype=np.bool_),
        styles=None
        if truth is None
        else _codes([None if (r := truth.get(m)) is None else r.style for m in points.mbids]),
        artists=_artist_codes(artists),
    )


def _pick_seeds(eligible: BoolArray, count: int, seed: int) -> list[int]:
    import numpy as np

    candidates = np.flatnonzero(eligible)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[0])
    chosen = rng.choice(candidates.size, size=min(count, candidates.size), replace=False)
    return [int(candidates[i]) for i in chosen]


def _candidates(table: TrackTable, base: BoolArray, seed: int, mode: str) -> BoolArray:
    mask = base.copy()
    mask[seed] = False
    if mode == GENRE_DECADE:
        genres = table.labels[FILTER_CLASSIFIER]
        mask &= genres == genres[seed]
        mask &= table.decades == table.decades[seed]
    return mask


def _brute_force(
    label: str, unit: FloatArray, table: TrackTable, base: BoolArray, seeds: Sequence[int], k: int
) -> dict[str, list[Sequence[int] | None]]:
    """Each mode's top k per seed by exact cosine (dot products of unit rows)."""
    meter = ProgressMeter(total=len(seeds))
    printer = ProgressPrinter(f"eval: {label}", "seeds")
    out: dict[str, list[Sequence[int] | None]] = {mode: [] for mode in MODES}
    for seed in seeds:
        scores = unit @ unit[seed]
        for mode in MODES:
            out[mode].append(top_k(scores, _candidates(table, base, seed, mode), k).tolist())
        meter.advance()
        printer.show(meter.done, meter.total, meter.rate, meter.eta, final=meter.done == len(seeds))
    return out


#: Requests as users send them (the recommender's defaults: a per-artist cap, one track per title
#: and artist), and the same without those rules: plain filtered nearest neighbours, which is what
#: exact search is the reference for.
AS_SERVED = "as served"
UNCAPPED = "uncapped"


@dataclass(frozen=True)
class _Served:
    results: dict[tuple[str, str], list[Sequence[str] | None]]  # (variant, mode) -> per seed
    errors: list[str]
    feature_model: str


async def _served(address: str, seed_mbids: Sequence[str], k: int) -> _Served:
    import grpc

    from musicrec.recommender.v1 import recommender_pb2, recommender_pb2_grpc
    from musicrec_common.grpc_client import create_channel

    channel = create_channel(address, ["musicrec.recommender.v1.RecommenderService"])
    stub = recommender_pb2_grpc.RecommenderServiceStub(channel)
    plans = [(variant, mode) for variant in (AS_SERVED, UNCAPPED) for mode in MODES]
    total = len(seed_mbids) * len(plans)
    meter = ProgressMeter(total=total)
    printer = ProgressPrinter("eval: served", "requests")
    gate = asyncio.Semaphore(_SERVED_IN_FLIGHT)
    unreachable = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    models: set[str] = set()

    async def ask(mbid: str, variant: str, mode: str) -> Sequence[str] | str:
        filtered = mode == GENRE_DECADE
        request = recommender_pb2.RecommendRequest(
            seed_mbid=mbid,
            genre_classifier=recommender_pb2.GENRE_CLASSIFIER_ROSAMERICA,
            same_genre=filtered,
            same_decade=filtered,
            limit=k,
        )
        if variant == UNCAPPED:
            request.max_per_artist = 0
            request.include_duplicates = True
        async with gate:
            try:
                response: recommender_pb2.RecommendResponse = await stub.Recommend(request, timeout=30.0)
            except grpc.aio.AioRpcError as error:
                if error.code() in unreachable:
                    raise
                # An answer the recommender got wrong for one seed is a result of the evaluation.
                return f"{mbid} ({variant}, {mode}): {error.code().name}: {error.details()}"
            finally:
                meter.advance()
                printer.show(meter.done, total, meter.rate, meter.eta, final=meter.done == total)
        models.add(response.feature_model)
        return [t.mbid for t in response.tracks]

    try:
        answers = {plan: await asyncio.gather(*(ask(mbid, *plan) for mbid in seed_mbids)) for plan in plans}
    finally:
        await channel.close()
    results = {plan: [None if isinstance(a, str) else a for a in answers[plan]] for plan in plans}
    errors = [a for plan in plans for a in answers[plan] if isinstance(a, str)]
    if len(errors) == total:
        raise SystemExit(f"musicrec eval: the recommender failed every request, e.g. {errors[0]}")
    return _Served(results, errors, ", ".join(sorted(models)))


async def _catalog_artists(address: str, mbids: Sequence[str]) -> dict[str, str | None]:
    from musicrec_common.catalog_client import CatalogClient

    client = CatalogClient(address)
    found: dict[str, str | None] = {}
    try:
        for start in range(0, len(mbids), 500):
            for track in await client.get_tracks(mbids[start : start + 500]):
                found[track.mbid] = track.artist
    finally:
        await client.close()
    return found


@asynccontextmanager
async def _stack(data_dir: Path) -> AsyncIterator[ServiceStack]:
    from musicrec_catalog.settings import CatalogSettings
    from musicrec_cli.stack import SERVICES, ServiceStack, StackSettings
    from musicrec_ingestor.settings import IngestorSettings
    from musicrec_recommender.settings import RecommenderSettings

    settings = StackSettings(
        data_dir=data_dir,
        catalog=CatalogSettings().model_copy(update={"host": "127.0.0.1", "port": 0}),
        ingestor=IngestorSettings().model_copy(update={"host": "127.0.0.1", "port": 0}),
        recommender=RecommenderSettings().model_copy(update={"host": "127.0.0.1", "port": 0}),
    )
    async with ServiceStack(settings, SERVICES) as stack:
        yield stack


# --------------------------------------------------------------------------------------------------
# The evaluation


@dataclass(frozen=True)
class Target:
    name: str
    value: str
    verdict: str  # "met", "missed" or "skipped"
    note: str = ""


@dataclass(frozen=True)
class _Evaluation:
    info: dict[str, Any]
    metrics: dict[str, dict[str, MethodMetrics]]
    pairs: dict[str, DistributionStats]
    pair_values: dict[str, FloatArray]
    targets: list[Target]
    skipped: dict[str, str]
    plots: Sequence[str] = ()


async def _evaluate(args: argparse.Namespace, data_dir: Path, command: str) -> _Evaluation:
    import numpy as np

    from musicrec_cli.clients import ingest
    from musicrec_common.corpus import ARCHIVE_GROUND_TRUTH_SUFFIX, GROUND_TRUTH_FILE

    started = dt.datetime.now(dt.UTC)
    corpus: Path = args.corpus
    k: int = args.limit
    truth_file = ground_truth_path(corpus)
    truth = await asyncio.to_thread(_load_ground_truth, truth_file) if truth_file else None
    skipped: dict[str, str] = {}
    if truth is None:
        skipped["style_precision"] = (
            f"no ground truth beside {corpus} (a generated corpus has {GROUND_TRUTH_FILE} in its folder, "
            f"or <archive>{ARCHIVE_GROUND_TRUTH_SUFFIX} beside its archive), so the planted style is unknown"
        )
    async with _stack(data_dir) as stack:
        print("services up: " + ", ".join(f"{name}={a}" for name, a in stack.addresses.items()))
        store = stack.vector_store
        ingested = False
        if await asyncio.to_thread(store.count) == 0:
            print(f"the index is empty: ingesting {corpus}")
            report = await ingest(stack.addresses["ingestor"], [corpus])
            log_event(log, "eval ingest done", tracks=report.tracks_stored, vectors=report.vectors_upserted)
            ingested = True
        else:
            print(f"the index already holds tracks: evaluating them without ingesting {corpus}")
        points = await asyncio.to_thread(_read_points, store)
        if not points.mbids:
            raise SystemExit(f"musicrec eval: the index holds no tracks after ingesting {corpus}")
        positions = {m: i for i, m in enumerate(points.mbids)}
        wanted = {
            m: s
            for m, p in zip(points.mbids, points.payloads, strict=True)
            if (s := _payload_int(p, "submission")) is not None
        }
        raw = await asyncio.to_thread(_read_raw_vectors, corpus, wanted, positions)
        unmatched = len(points.mbids) - int(raw.found.sum())
        log_event(log, "eval corpus read", documents=raw.documents, unmatched=unmatched)
        if unmatched:
            print(
                f"warning: {unmatched:,} stored tracks have no document of their stored submission in "
                f"{corpus} (does the data dir hold another corpus?); the prototype leaves them out"
            )
        artists: list[str | None] = [None] * len(points.mbids)
        if truth is not None:
            artists = [None if (r := truth.get(m)) is None else r.artist for m in points.mbids]
        table = _base_table(points, truth, artists)
        eligible = ~table.placeholder & (table.decades >= 0) & (table.labels[FILTER_CLASSIFIER] >= 0)
        eligible &= raw.found
        seeds = _pick_seeds(eligible, args.seeds, args.seed)
        if not seeds:
            raise SystemExit(
                "musicrec eval: no stored track can be a seed (a non-placeholder track with a year, a "
                f"{FILTER_CLASSIFIER} label and its stored submission in {corpus})"
            )
        log_event(log, "eval seeds picked", seeds=len(seeds), eligible=int(eligible.sum()))
        ours = unit_rows(points.vectors)
        prototype_rows = unit_rows(raw.rows)
        exact = await asyncio.to_thread(
            _brute_force, "exact search", ours, table, ~table.placeholder, seeds, k
        )
        prototype = await asyncio.to_thread(
            _brute_force, "prototype search", prototype_rows, table, ~table.placeholder & raw.found, seeds, k
        )
        served = await _served(stack.addresses["recommender"], [points.mbids[s] for s in seeds], k)
        served_positions = {
            plan: [None if r is None else [positions[m] for m in r if m in positions] for r in lists]
            for plan, lists in served.results.items()
        }
        if truth is None:
            needed = set(seeds)
            every: list[Sequence[int] | None] = []
            for answers in (exact, prototype):
                every.extend(r for lists in answers.values() for r in lists)
            every.extend(r for lists in served_positions.values() for r in lists)
            needed.update(p for r in every if r is not None for p in r)
            names = await _catalog_artists(
                stack.addresses["catalog"], [points.mbids[p] for p in sorted(needed)]
            )
            artists = [names.get(m) for m in points.mbids]
            table = _base_table(points, truth, artists)

    stored = len(points.mbids)
    metrics: dict[str, dict[str, MethodMetrics]] = {}
    for mode in MODES:
        as_served = summarise(
            table, seeds, served_positions[AS_SERVED, mode], k, stored=stored, reference=exact[mode]
        )
        recall, lowest = recall_stats(served_positions[UNCAPPED, mode], exact[mode], k)
        metrics[mode] = {
            "prototype": summarise(table, seeds, prototype[mode], k, stored=stored, reference=exact[mode]),
            "exact": summarise(table, seeds, exact[mode], k, stored=stored),
            "served": replace(as_served, recall_vs_exact=recall, recall_vs_exact_min=lowest),
        }
    pair_rng = np.random.default_rng(np.random.SeedSequence(args.seed).spawn(2)[1])
    with_raw = np.flatnonzero(raw.found)
    first, second = random_pairs(with_raw.size, args.random_pairs, pair_rng)
    first, second = with_raw[first], with_raw[second]
    pair_values = {
        "ours": np.einsum("ij,ij->i", ours[first], ours[second]),
        "prototype": np.einsum("ij,ij->i", prototype_rows[first], prototype_rows[second]),
    }
    pairs = {name: distribution_stats(values) for name, values in pair_values.items()}
    info: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "command": command,
        "corpus": {
            "path": str(corpus),
            "ground_truth": None if truth_file is None else str(truth_file),
            "documents_read": raw.documents,
            "tracks_matched": int(raw.found.sum()),
            "tracks_unmatched": unmatched,
            "ingested_now": ingested,
        },
        "index": {
            "tracks": stored,
            "placeholders": int(table.placeholder.sum()),
            "dimension": int(points.vectors.shape[1]),
            "feature_model": served.feature_model,
        },
        "seeds": {
            "count": len(seeds),
            "asked": args.seeds,
            "eligible": int(eligible.sum()),
            "random_seed": args.seed,
            "mbids": [points.mbids[s] for s in seeds],
        },
        "limit": k,
        "random_pairs": int(first.size),
        "served_errors": served.errors,
    }
    return _Evaluation(info, metrics, pairs, pair_values, _targets(metrics, pairs, k), skipped)


def _targets(
    metrics: Mapping[str, Mapping[str, MethodMetrics]], pairs: Mapping[str, DistributionStats], k: int
) -> list[Target]:
    targets: list[Target] = []
    for mode in MODES:
        recall = metrics[mode]["served"].recall_vs_exact
        targets.append(
            Target(
                f"served recall@{k} vs exact >= {RECALL_TARGET}, uncapped request ({mode})",
                _fmt(recall),
                "skipped" if recall is None else "met" if recall >= RECALL_TARGET else "missed",
            )
        )
    p95 = pairs["ours"].p95
    targets.append(
        Target(
            f"random-pair similarity p95 < {RANDOM_PAIR_P95_TARGET} (our vectors)",
            _fmt(p95),
            "met" if p95 < RANDOM_PAIR_P95_TARGET else "missed",
        )
    )
    for mode in MODES:
        served = metrics[mode]["served"].style_precision
        baseline = metrics[mode]["prototype"].style_precision
        name = f"served style precision@{k} >= {STYLE_PRECISION_FACTOR:g}x prototype's ({mode})"
        if served is None or baseline is None:
            targets.append(Target(name, "—", "skipped", "no ground truth"))
        else:
            met = served >= STYLE_PRECISION_FACTOR * baseline
            ratio = f"{served / baseline:.2f}x" if baseline > 0 else "∞"
            targets.append(
                Target(name, f"{_fmt(served)} vs {_fmt(baseline)} ({ratio})", "met" if met else "missed")
            )
    for mode in MODES:
        m = metrics[mode]["served"]
        targets.append(
            Target(
                f"at most {ARTIST_CAP} tracks of one artist in a served top {k} ({mode})",
                f"worst {m.max_per_artist_worst}; {m.over_artist_cap} of {m.seeds} seeds over",
                "met" if m.max_per_artist_worst <= ARTIST_CAP else "missed",
            )
        )
    return targets


# --------------------------------------------------------------------------------------------------
# Output


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def metric_rows(by_method: Mapping[str, MethodMetrics], k: int) -> list[list[str]]:
    """The rows of one filter mode's table: a metric, then one cell per method of `METHODS`."""

    def row(label: str, cell: Callable[[MethodMetrics], str]) -> list[str]:
        return [label, *(cell(by_method[m]) for m in METHODS)]

    rows = [row(f"style precision@{k}", lambda m: _fmt(m.style_precision))]
    rows += [
        [f"{name} agreement", *(_fmt(by_method[m].genre_agreement[name]) for m in METHODS)]
        for name in CLASSIFIERS
    ]
    rows += [
        row("decade agreement", lambda m: _fmt(m.decade_agreement)),
        row(f"distinct artists in top {k} (mean)", lambda m: _fmt(m.distinct_artists, 2)),
        row(f"max tracks of one artist in top {k} (mean)", lambda m: _fmt(m.max_per_artist_mean, 2)),
        row(f"max tracks of one artist in top {k} (worst)", lambda m: str(m.max_per_artist_worst)),
        row(f"seeds with > {ARTIST_CAP} tracks of one artist", lambda m: str(m.over_artist_cap)),
        row("catalog coverage", lambda m: _fmt(m.coverage)),
        row(f"overlap with exact top {k} (mean)", lambda m: _fmt(m.overlap_with_exact)),
        row(f"recall@{k} vs exact, uncapped request (mean)", lambda m: _fmt(m.recall_vs_exact)),
        row(f"recall@{k} vs exact, uncapped request (min)", lambda m: _fmt(m.recall_vs_exact_min)),
        row("results per seed (mean)", lambda m: _fmt(m.mean_results, 2)),
        row(f"seeds with fewer than {k} results", lambda m: str(m.short_lists)),
        row("seeds answered / failed", lambda m: f"{m.seeds} / {m.errors}"),
    ]
    return rows


_MODE_TITLES = {
    UNFILTERED: "Unfiltered",
    GENRE_DECADE: f"Filtered to the seed's {FILTER_CLASSIFIER} genre and decade (genre+decade)",
}


def _tables(evaluation: _Evaluation) -> str:
    k = int(evaluation.info["limit"])
    parts = []
    for mode in MODES:
        parts.append(f"## {_MODE_TITLES[mode]}\n")
        parts.append(_markdown_table(["metric", *METHODS], metric_rows(evaluation.metrics[mode], k)))
        parts.append("")
    parts.append(f"## Random-pair similarity ({evaluation.info['random_pairs']:,} pairs)\n")
    pair_rows = [
        [label, *(_fmt(getattr(evaluation.pairs[name], f)) for f in ("mean", "std", "p5", "p50", "p95"))]
        for name, label in (("ours", "our vectors"), ("prototype", "raw probabilities (prototype)"))
    ]
    parts.append(_markdown_table(["representation", "mean", "std", "p5", "p50", "p95"], pair_rows))
    parts.append("\n## Targets\n")
    target_rows = [
        [t.name, t.value, t.verdict + (f" ({t.note})" if t.note else "")] for t in evaluation.targets
    ]
    parts.append(_markdown_table(["target", "value", "verdict"], target_rows))
    return "\n".join(parts)


def _report(evaluation: _Evaluation) -> str:
    info = evaluation.info
    corpus, index, seeds = info["corpus"], info["index"], info["seeds"]
    truth = corpus["ground_truth"] or "none"
    lines = [
        "# musicrec evaluation",
        "",
        f"- date: {info['date']}",
        f"- command: `{info['command']}`",
        f"- corpus: `{corpus['path']}` (ground truth: `{truth}`); {corpus['documents_read']:,} documents "
        f"read, {corpus['tracks_matched']:,} stored tracks matched to their stored submission"
        + (" (ingested by this run)" if corpus["ingested_now"] else "")
        + (
            f"; **{corpus['tracks_unmatched']:,} stored tracks have no such document** (another corpus "
            "in the data dir?), and the prototype leaves them out"
            if corpus["tracks_unmatched"]
            else ""
        ),
        f"- index: {index['tracks']:,} tracks ({index['placeholders']:,} placeholder titles), "
        f"{index['dimension']}-d vectors, feature model `{index['feature_model'] or '?'}`",
        f"- seeds: {seeds['count']} of {seeds['eligible']:,} eligible tracks (non-placeholder, with a year, "
        f"a {FILTER_CLASSIFIER} label and a raw vector), numpy seed {seeds['random_seed']}; "
        f"{info['limit']} results per seed",
        "- methods: **prototype** = cosine over raw probability vectors (numpy, filter in Python); "
        "**exact** = exact cosine over the stored vectors (numpy); **served** = the recommender over gRPC "
        "with its defaults (per-artist cap, one track per title and artist). All exclude the seed and "
        "placeholder titles. Recall against exact search is measured on the same requests sent "
        "*uncapped* (`max_per_artist=0`, `include_duplicates`): plain filtered nearest neighbours.",
        "- precision and agreements are shares of the results returned (fewer than k when a filter "
        "leaves fewer candidates), averaged over seeds",
        "",
        _tables(evaluation),
    ]
    if evaluation.skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- {name.replace('_', ' ')}: {reason}" for name, reason in evaluation.skipped.items()]
    errors = info["served_errors"]
    if errors:
        lines += ["", "## Served errors", ""]
        lines += [f"- {e}" for e in errors[:20]]
    if evaluation.plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{Path(p).stem}]({p})" for p in evaluation.plots]
    return "\n".join(lines) + "\n"


def _metrics_json(evaluation: _Evaluation) -> dict[str, Any]:
    return {
        **evaluation.info,
        "modes": {
            mode: {method: asdict(m) for method, m in by_method.items()}
            for mode, by_method in evaluation.metrics.items()
        },
        "random_pair_similarity": {name: asdict(s) for name, s in evaluation.pairs.items()},
        "targets": [asdict(t) for t in evaluation.targets],
        "skipped": evaluation.skipped,
        "plots": evaluation.plots,
    }


def _plot_histogram(evaluation: _Evaluation, path: Path) -> None:
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    bins = np.linspace(-1.0, 1.0, 101).tolist()
    for name, label in (("prototype", "raw probabilities (prototype)"), ("ours", "our vectors")):
        stats = evaluation.pairs[name]
        axes.hist(
            evaluation.pair_values[name],
            bins=bins,
            alpha=0.55,
            density=True,
            label=f"{label}: mean {stats.mean:.2f}, p95 {stats.p95:.2f}",
        )
    axes.axvline(RANDOM_PAIR_P95_TARGET, color="grey", linestyle=":", label="p95 target")
    axes.set_xlabel("cosine similarity of a random pair of tracks")
    axes.set_ylabel("density")
    axes.set_title(f"Random-pair similarity ({evaluation.info['random_pairs']:,} pairs)")
    axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    figure.savefig(path)


def _plot_precision(evaluation: _Evaluation, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colours = {"prototype": "tab:red", "exact": "tab:blue", "served": "tab:green"}
    styles = {UNFILTERED: "-", GENRE_DECADE: "--"}
    for mode in MODES:
        for method in METHODS:
            curve = evaluation.metrics[mode][method].style_precision_curve or []
            depths = [d for d, v in enumerate(curve, start=1) if v is not None]
            values = [v for v in curve if v is not None]
            # Served and exact usually coincide: exact is drawn wide and pale underneath, so both show.
            wide = method == "exact"
            axes.plot(
                depths,
                values,
                styles[mode],
                color=colours[method],
                linewidth=5 if wide else 1.5,
                alpha=0.35 if wide else 1.0,
                marker=None if wide else "o",
                markersize=3,
                label=f"{method}, {mode}",
            )
    axes.set_xlabel("k")
    axes.set_ylabel("style precision@k")
    axes.set_ylim(0.0, 1.02)
    axes.set_title(f"Precision of the planted style, {evaluation.info['seeds']['count']} seeds")
    axes.legend(loc="lower left", fontsize="small", ncol=2)
    figure.tight_layout()
    figure.savefig(path)


def _write_outputs(evaluation: _Evaluation, out: Path) -> _Evaluation:
    """Write the plots, report.md and metrics.json into `out`; returns the evaluation with its plots."""
    out.mkdir(parents=True, exist_ok=True)
    _plot_histogram(evaluation, out / "similarity_hist.png")
    plots = ["similarity_hist.png"]
    precision_png = out / "precision.png"
    if "style_precision" in evaluation.skipped:
        # A plot left by an earlier run on another corpus would look like this run's.
        precision_png.unlink(missing_ok=True)
    else:
        _plot_precision(evaluation, precision_png)
        plots.append("precision.png")
    evaluation = replace(evaluation, plots=plots)
    (out / "report.md").write_text(_report(evaluation), encoding="utf-8")
    (out / "metrics.json").write_text(
        json.dumps(_metrics_json(evaluation), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    log_event(log, "eval written", out=str(out), plots=plots)
    return evaluation


def _terminal_text(evaluation: _Evaluation) -> str:
    text = _tables(evaluation)
    if evaluation.skipped:
        text += "\n\n" + "\n".join(
            f"skipped {n.replace('_', ' ')}: {r}" for n, r in evaluation.skipped.items()
        )
    return text
