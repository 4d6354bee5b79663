"""`musicrec demo`: the whole system end to end on this machine.

Generates a synthetic corpus (unless one is given), starts the three services, ingests through the
ingestor's gRPC API, then shows recommendations for three seeds — unfiltered, and filtered to the
seed's rosamerica genre and decade — in the prototype's table. Everything it starts is stopped on
exit or Ctrl-C.

With the embedded defaults the services share this process (the Qdrant Edge shard can be open in
one process only) and listen on free loopback ports. With both a database URL and a Qdrant URL
configured, each service runs as its own `musicrec serve <service>` process, as in compose.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from musicrec.recommender.v1 import recommender_pb2
from musicrec_catalog.settings import CatalogSettings
from musicrec_cli.clients import ingest, recommend
from musicrec_cli.render import recommendation_table, report_table
from musicrec_cli.stack import SERVICES, ServiceStack, StackSettings
from musicrec_common.catalog_client import CatalogClient
from musicrec_common.corpus import generate_corpus, read_ground_truth
from musicrec_common.model import Track
from musicrec_common.progress import ProgressMeter, ProgressPrinter
from musicrec_common.settings import CommonSettings
from musicrec_ingestor.settings import IngestorSettings
from musicrec_recommender.settings import RecommenderSettings

__all__ = ["run_demo"]

_READY = re.compile(r"musicrec ready: (?P<pairs>.*?)(?: \(|$)")


def _ensure_corpus(data_dir: Path, tracks: int, seed: int) -> Path:
    corpus = data_dir / "demo-corpus" / f"tracks-{tracks}-seed-{seed}"
    if (corpus / "corpus.json").exists():
        print(f"using the corpus generated earlier in {corpus}")
        return corpus
    print(f"generating a synthetic corpus of {tracks:,} recordings in {corpus}")
    meter = ProgressMeter(total=tracks)
    printer = ProgressPrinter("gen-corpus", "tracks")

    def progress(done: int, total: int) -> None:
        meter.done = done
        printer.show(done, total, meter.rate, meter.eta, final=done >= total)

    summary = generate_corpus(corpus, tracks=tracks, seed=seed, progress=progress)
    print(f"wrote {summary.documents:,} documents ({summary.duplicate_submissions:,} duplicate submissions)")
    return corpus


@contextlib.asynccontextmanager
async def _in_process(data_dir: Path) -> AsyncIterator[dict[str, str]]:
    settings = StackSettings(
        data_dir=data_dir,
        catalog=CatalogSettings().model_copy(update={"host": "127.0.0.1", "port": 0}),
        ingestor=IngestorSettings().model_copy(update={"host": "127.0.0.1", "port": 0}),
        recommender=RecommenderSettings().model_copy(update={"host": "127.0.0.1", "port": 0}),
    )
    async with ServiceStack(settings, SERVICES) as stack:
        yield dict(stack.addresses)


async def _start_process(service: str, env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "musicrec_cli.main",
        "serve",
        service,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), timeout=120)).decode()
    match = _READY.search(line)
    if not match:
        process.terminate()
        await process.wait()
        raise RuntimeError(f"musicrec serve {service} did not start (said: {line.strip() or 'nothing'})")
    return process, dict(p.split("=", 1) for p in match["pairs"].split())[service]


@contextlib.asynccontextmanager
async def _separate_processes() -> AsyncIterator[dict[str, str]]:
    processes: list[asyncio.subprocess.Process] = []
    try:
        env = dict(os.environ)
        catalog_process, catalog = await _start_process("catalog", env)
        processes.append(catalog_process)
        env["MUSICREC_INGESTOR_CATALOG_ADDRESS"] = catalog
        env["MUSICREC_RECOMMENDER_CATALOG_ADDRESS"] = catalog
        addresses = {"catalog": catalog}
        for service in ("ingestor", "recommender"):
            process, addresses[service] = await _start_process(service, env)
            processes.append(process)
        yield addresses
    finally:
        for process in reversed(processes):
            if process.returncode is None:
                process.terminate()
        for process in processes:
            await process.wait()


async def _pick_seeds(catalog: CatalogClient, corpus: Path, wanted: list[str]) -> list[Track]:
    """The seeds the user named, else three well-tagged tracks of different planted styles."""
    if wanted:
        seeds: list[Track] = []
        for query in wanted:
            found = await catalog.search(query=query, limit=1)
            if not found:
                print(f"(no track matches {query!r}; skipped)")
            seeds.extend(found)
        return seeds
    truth = read_ground_truth(corpus) if (corpus / "ground_truth.ndjson").exists() else {}
    if not truth:
        raise SystemExit("musicrec demo: this corpus has no ground truth; name seeds with --seed-track")
    styles_seen: set[str] = set()
    candidates = [r for r in sorted(truth.values(), key=lambda r: r.mbid) if r.year is not None]
    seeds = []
    for start in range(0, len(candidates), 200):
        batch = [r for r in candidates[start : start + 200] if r.style not in styles_seen]
        by_mbid = {t.mbid: t for t in await catalog.get_tracks([r.mbid for r in batch])}
        for record in batch:
            track = by_mbid.get(record.mbid)
            if (
                track is None
                or track.year is None
                or track.is_placeholder_title
                or record.style in styles_seen
            ):
                continue
            styles_seen.add(record.style)
            seeds.append(track)
            if len(seeds) == 3:
                return seeds
    return seeds


async def run_demo(args: argparse.Namespace, common: CommonSettings) -> int:
    started = time.monotonic()
    corpus: Path = args.corpus or await asyncio.to_thread(
        _ensure_corpus, common.data_dir, args.tracks, args.seed
    )
    separate = bool(CatalogSettings().database_url) and bool(
        IngestorSettings().qdrant_url and RecommenderSettings().qdrant_url
    )
    services = _separate_processes() if separate else _in_process(common.data_dir)
    async with services as addresses:
        mode = "three processes" if separate else "one process, embedded PostgreSQL + Qdrant Edge"
        print("services up (" + mode + "): " + ", ".join(f"{k}={v}" for k, v in addresses.items()))
        report = await ingest(addresses["ingestor"], [corpus])
        print(report_table(report))
        catalog = CatalogClient(addresses["catalog"])
        try:
            seeds = await _pick_seeds(catalog, corpus, args.seed_track)
        finally:
            await catalog.close()
        for seed in seeds:
            for filtered in (False, True):
                request = recommender_pb2.RecommendRequest(
                    seed_mbid=seed.mbid,
                    genre_classifier=recommender_pb2.GENRE_CLASSIFIER_ROSAMERICA,
                    same_genre=filtered,
                    same_decade=filtered,
                    limit=args.limit,
                )
                began = time.perf_counter()
                response = await recommend(addresses["recommender"], request)
                took = (time.perf_counter() - began) * 1000
                heading = "filtered to the seed's rosamerica genre and decade" if filtered else "unfiltered"
                print(f"\n=== {heading} ({took:.1f} ms) ===")
                print(recommendation_table(response))
    print(f"\ndemo finished in {time.monotonic() - started:.1f} s; all services stopped")
    return 0
