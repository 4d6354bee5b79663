"""End-to-end ingest benchmark: a dump-shaped .tar.zst into PostgreSQL and the vector index.

    uv run python benchmarks/ingest_bench.py --tracks 200000 [--workers 2] [--workdir DIR]

Generates (or reuses) a synthetic archive of N recordings, starts the three services on the
embedded defaults (real PostgreSQL 18, Qdrant Edge) in a fresh data dir, ingests the archive
through the ingestor's gRPC API and reports wall time, documents/s, time per stage, peak RSS of
this process and of its worker processes, and disk used by PostgreSQL and the vector index.
The HNSW build is not part of the ingest (it is measured by the search benchmarks). The table is
printed and written to docs/benchmarks.md under "## End-to-end ingest (issue 4)".
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench_common import PeakMemory, du, machine
from doc_section import write_section

from musicrec_catalog.settings import CatalogSettings
from musicrec_cli.clients import ingest
from musicrec_cli.stack import SERVICES, ServiceStack, StackSettings
from musicrec_common.corpus import write_corpus_archive
from musicrec_ingestor.settings import IngestorSettings
from musicrec_recommender.settings import RecommenderSettings

SECTION = "## End-to-end ingest (issue 4)"


async def _run(
    archive: Path, data_dir: Path, workers: int, batch_size: int
) -> tuple[object, float, float, float]:
    """The ingest report, the wall time of the ingest call, and when it began and returned
    (time.monotonic)."""
    settings = StackSettings(
        data_dir=data_dir,
        catalog=CatalogSettings(host="127.0.0.1", port=0, database_url=None),
        ingestor=IngestorSettings(host="127.0.0.1", port=0, workers=workers, batch_size=batch_size),
        recommender=RecommenderSettings(host="127.0.0.1", port=0),
    )
    async with ServiceStack(settings, SERVICES) as stack:
        began, start = time.perf_counter(), time.monotonic()
        report = await ingest(stack.addresses["ingestor"], [archive], show_progress=sys.stderr.isatty())
        return report, time.perf_counter() - began, start, time.monotonic()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracks", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "musicrec-bench")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    archive = args.workdir / f"corpus-{args.tracks}.tar.zst"
    if not archive.exists():
        print(f"writing {archive} …", file=sys.stderr)
        write_corpus_archive(archive, tracks=args.tracks, seed=1)
    data_dir = args.workdir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    with PeakMemory(data_dir) as memory:
        report, wall, started, ended = asyncio.run(_run(archive, data_dir, args.workers, args.batch_size))
    from musicrec.ingestor.v1 import ingestor_pb2

    assert isinstance(report, ingestor_pb2.IngestReport)
    # Both stores apply the same preference rule, so every row written had its vector written.
    if report.tracks_stored == 0 or report.vectors_upserted != report.tracks_inserted + report.tracks_updated:
        print(
            f"benchmark result is wrong (nothing stored, or rows and vectors disagree):\n{report}",
            file=sys.stderr,
        )
        return 1
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_worker = memory.peaks.get("worker", 0) / 1024
    rss_build = memory.peaks.get("index-build", 0) / 1024
    rss_postgres = memory.peaks.get("postgres", 0) / 1024
    docs = report.documents_read
    # The run ends with the HNSW build (stage "index"); the ingest target leaves it out.
    index_seconds = sum(s.seconds for s in report.stages if s.stage == "index")
    wall_total, wall = wall, wall - index_seconds
    # CPU time of every process from the ingest call to the index build (the stack's start-up left
    # out): what the load costs, wherever it ran.
    at_start, at_build = memory.cpu_at(started), memory.cpu_at(ended - index_seconds)
    load_cpu = {kind: seconds - at_start.get(kind, 0.0) for kind, seconds in at_build.items()}
    cpu_total = sum(load_cpu.values())
    cores = os.cpu_count() or 1

    def per_doc(seconds: float) -> str:
        return f"{seconds / max(docs, 1) * 1e6:,.0f} µs"

    kinds = (("self", "server process"), ("worker", "parse workers"), ("postgres", "PostgreSQL"))
    cpu_parts = ", ".join(f"{label} {per_doc(load_cpu.get(kind, 0.0))}" for kind, label in kinds)
    # Seconds for 1M documents at this CPU cost: all cores busy, and the server process alone.
    bound_all = cpu_total / max(docs, 1) * 1e6 / cores
    bound_server = load_cpu.get("self", 0.0) / max(docs, 1) * 1e6
    pg, qd = du(data_dir / "postgres"), du(data_dir / "qdrant")
    per_million = 1e6 / max(report.tracks_stored, 1) / 1e9  # bytes → GB per million tracks
    size_mb = archive.stat().st_size / 1e6
    slowest = max((s for s in report.stages if s.stage != "index"), key=lambda s: s.seconds).stage
    stages = " · ".join(f"{s.stage} {s.seconds:.1f} s" for s in report.stages)
    command = f"uv run python benchmarks/ingest_bench.py --tracks {args.tracks} --workers {args.workers}"
    text = f"""{SECTION}

Command: `{command}` — {dt.date.today().isoformat()}, {machine()}.
One `.tar.zst` of {args.tracks:,} synthetic recordings ({docs:,} documents, {size_mb:.0f} MB)
into the embedded PostgreSQL 18 and Qdrant Edge through the ingestor's gRPC API, {args.workers} parse
workers, batches of {args.batch_size:,}. The run ends with the HNSW build, timed apart.

| measure | value |
|---|---|
| wall time, without the index build | {wall:.1f} s |
| index build (HNSW, after the load) | {index_seconds:.1f} s (total {wall_total:.1f} s) |
| documents/s end to end | {docs / wall:,.0f} |
| recordings stored | {report.tracks_stored:,} |
| vectors written | {report.vectors_upserted:,} |
| stage time (read · parse in workers · catalog · vectors · index) | {stages} |
| peak RSS, server process (reader, catalog client, vector index) | {rss_self:,.0f} MB |
| peak RSS, largest parse worker | {rss_worker:,.0f} MB |
| peak RSS, index build (its own process) | {rss_build:,.0f} MB |
| peak RSS, largest PostgreSQL process (shared buffers included) | {rss_postgres:,.0f} MB |
| PostgreSQL on disk | {pg / 1e6:,.0f} MB ({pg * per_million:,.2f} GB per million tracks) |
| vector index on disk | {qd / 1e6:,.0f} MB ({qd * per_million:,.2f} GB per million tracks) |
| projected for 1M documents at this rate | {1e6 / (docs / wall):,.0f} s |
| CPU time of the load, all processes (no index build) | {cpu_total:,.1f} s, {per_doc(cpu_total)}/document |
| … by process | {cpu_parts} |
| fastest 1M documents could load at this CPU cost, {cores} cores fully busy | {bound_all:,.0f} s |
| … the server process alone (one process: it holds the vector index) | {bound_server:,.0f} s |
| projected for the full dump (29.46M documents) | {29_460_584 / (docs / wall) / 3600:,.1f} h |

The longest stage bounds the run: {slowest}. Stage times overlap (reading, parsing in workers,
and the two stores' writes run concurrently), so they add up to more than the wall time.
Memory is flat by construction: at most 2 × workers batches are in flight, whatever the input size.
"""
    print(text)
    write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
