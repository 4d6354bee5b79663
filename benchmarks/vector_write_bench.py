"""What writing vectors into the embedded index costs, per point, and whether it runs beside Python.

    uv run python benchmarks/vector_write_bench.py [--tracks 20000]

The ingest's vector stage writes each recording's vector and payload into the Qdrant Edge shard the
ingestor holds (issue 4: the stage that bounds the ingest). This script parses a generated corpus
with the ingestor's own `parse_batch`, then, on a fresh shard in a temporary folder, measures per
point, in batches of 2,000 as the ingest writes them:

  - building the engine's `Point` objects from our vectors and payloads (the payload is converted
    from Python values inside qdrant-edge-py), and the same with an empty payload;
  - the conversion cost of one payload value by type (26 values of one type per point);
  - `EdgeVectorStore.upsert` as the ingest calls it (conversion and the engine's write);
  - how much longer a piece of pure-Python work takes in a second thread while upserts run than
    alone: whether the upserts leave the GIL to the rest of the process (reading, the catalog,
    gRPC) while vectors are written.

Prints a table and writes it to docs/benchmarks.md under "## Vector index writes (issue 4)".
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import qdrant_edge as edge
from bench_common import machine
from doc_section import write_section

from musicrec_common.acousticbrainz import parse_member_name
from musicrec_common.corpus import iter_corpus
from musicrec_common.features import FEATURE_DIM
from musicrec_ingestor.pipeline import PackedDocuments, parse_batch
from musicrec_ingestor.sources import Document
from musicrec_vectorstore.edge import EdgeVectorStore

SECTION = "## Vector index writes (issue 4)"
BATCH = 2_000
# One value of each type, as our payloads hold them (genre labels, integer millionths, flags).
VALUE_TYPES: Mapping[str, object] = {"bool": True, "int": 621_247, "str": "rock@1990", "float": 0.621247}


def _points_of(tracks: int) -> tuple[list[str], npt.NDArray[np.float32], list[dict[str, Any]], int]:
    """ids, vectors and payloads of the recordings of a generated corpus, through `parse_batch`;
    and how many documents they came from."""
    documents: list[Document] = []
    for name, data in iter_corpus(tracks, seed=3):
        parsed = parse_member_name(name)
        if parsed is not None:
            documents.append(Document(name, data, parsed[0], parsed[1]))
    ids: list[str] = []
    vectors: list[npt.NDArray[np.float32]] = []
    payloads: list[dict[str, Any]] = []
    for start in range(0, len(documents), BATCH):
        result = parse_batch(PackedDocuments.pack(documents[start : start + BATCH]))
        ids.extend(result.ids)
        vectors.append(result.features)
        payloads.extend(dict(p) for p in result.payloads)
    # A recording can recur in a later batch: keep its last, as the index would.
    last = {point_id: i for i, point_id in enumerate(ids)}
    keep = sorted(last.values())
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, FEATURE_DIM), np.float32)
    return [ids[i] for i in keep], matrix[keep], [payloads[i] for i in keep], len(documents)


def _best_of(rounds: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - began)
    return best


def _build(ids: Sequence[str], vectors: npt.NDArray[np.float32], payloads: Sequence[object]) -> None:
    for start in range(0, len(ids), BATCH):
        end = start + BATCH
        _ = [
            edge.Point(i, v, p)  # type: ignore[arg-type]
            for i, v, p in zip(ids[start:end], vectors[start:end], payloads[start:end], strict=True)
        ]


def _python_work() -> float:
    """Seconds a fixed piece of pure-Python work takes (it needs the GIL throughout)."""
    began = time.perf_counter()
    total = 0
    for value in range(3_000_000):
        total += value & 7
    return time.perf_counter() - began


def _beside(work: Callable[[], object]) -> float:
    """Seconds `_python_work` takes in another thread while `work` runs in this one."""
    seconds: list[float] = []
    thread = threading.Thread(target=lambda: seconds.append(_python_work()))
    thread.start()
    while thread.is_alive():
        work()
    thread.join()
    return seconds[0]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs per measurement; the best is kept")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()

    print(f"parsing a corpus of {args.tracks:,} tracks …", file=sys.stderr)
    ids, vectors, payloads, documents = _points_of(args.tracks)
    count = len(ids)
    if count < BATCH:
        print(f"too few points ({count}); ask for more --tracks", file=sys.stderr)
        return 1
    keys = len(payloads[0])
    per_point = 1e6 / count

    build = _best_of(args.rounds, lambda: _build(ids, vectors, payloads)) * per_point
    empty = _best_of(args.rounds, lambda: _build(ids, vectors, [None] * count)) * per_point
    by_type: dict[str, float] = {}
    for kind, value in VALUE_TYPES.items():
        same: list[object] = [{f"k{k}": value for k in range(keys)} for _ in range(count)]
        typed = _best_of(args.rounds, partial(_build, ids, vectors, same)) * per_point
        by_type[kind] = (typed - empty) / keys

    upsert_seconds = float("inf")
    with tempfile.TemporaryDirectory(prefix="musicrec-vector-write-") as folder:
        for run in range(args.rounds):
            # Each run into a fresh, empty shard, as an ingest's first load.
            store = EdgeVectorStore(Path(folder) / f"shard-{run}", FEATURE_DIM, batch_size=BATCH)
            try:
                began = time.perf_counter()
                store.upsert(ids, vectors, payloads)
                store.flush()
                upsert_seconds = min(upsert_seconds, time.perf_counter() - began)
                if store.count() != count:
                    print(f"the index holds {store.count()} points, not {count}", file=sys.stderr)
                    return 1
                if run == args.rounds - 1:
                    # The GIL: the same Python work alone, and beside upserts (the first batch,
                    # written again until the work is done).
                    alone = min(_python_work() for _ in range(args.rounds))
                    beside = _beside(partial(store.upsert, ids[:BATCH], vectors[:BATCH], payloads[:BATCH]))
            finally:
                store.close()
    upsert = upsert_seconds * per_point
    slower = beside / alone if alone else 0.0
    per_document = count / documents
    million = upsert * per_document  # seconds of the index-holding process per 1M documents

    gil = (
        "the conversion and the engine's write hold the GIL, so the rest of the process (reading the "
        "archive, the catalog's gRPC calls) waits for them."
        if slower >= 1.5
        else "the upserts leave the GIL to the rest of the process most of the time."
    )
    value_costs = " · ".join(f"{by_type[kind]:.2f}" for kind in VALUE_TYPES)
    command = f"uv run python benchmarks/vector_write_bench.py --tracks {args.tracks}"
    text = f"""{SECTION}

Command: `{command}` — {dt.date.today().isoformat()}, {machine()}.
{count:,} recordings ({documents:,} documents of a generated corpus, parsed by the ingestor's
`parse_batch`), written into a fresh Qdrant Edge shard with the default index settings, in batches
of {BATCH:,}; payloads of {keys} values as the ingest writes them. Best of {args.rounds} runs; each
upsert run writes into a fresh, empty shard.

| per point | µs |
|---|---:|
| engine `Point` objects built from our vectors and payloads | {build:.1f} |
| … with an empty payload | {empty:.1f} |
| one payload value converted, by type: {" · ".join(VALUE_TYPES)} | {value_costs} |
| `EdgeVectorStore.upsert` (conversion, the engine's write, flush) | {upsert:.1f} |
| of it, the engine's write and flush (upsert − conversion) | {upsert - build:.1f} |

A piece of pure-Python work took {slower:.1f}× as long in a second thread while upserts ran as
alone (two cores; about 1× would mean the upserts leave the GIL free): {gil} At
{per_document:.2f} vectors per document, the upserts alone are **{million:,.0f} s for 1M
documents**, all in the one process that may hold the shard (a shard opens in one process only);
the issue's end-to-end target for 1M documents is 120 s.
"""
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
        print("written to docs/benchmarks.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
