"""The `musicrec` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import grpc
from pydantic import ValidationError

from musicrec.recommender.v1 import recommender_pb2
from musicrec_cli import eval as evaluation
from musicrec_common.features import TRAITS
from musicrec_common.logging import configure_logging
from musicrec_common.settings import DEFAULT_PORTS, CommonSettings

__all__ = ["build_parser", "main"]

DEFAULT_INGESTOR = f"127.0.0.1:{DEFAULT_PORTS['ingestor']}"
DEFAULT_RECOMMENDER = f"127.0.0.1:{DEFAULT_PORTS['recommender']}"

TRAIT_NAMES = tuple(t.name for t in TRAITS)


def _data_dir_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="where the embedded PostgreSQL and Qdrant keep their data "
        "(env MUSICREC_DATA_DIR; default: a musicrec folder in your user data directory)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    common = _data_dir_parent()
    parser = argparse.ArgumentParser(
        prog="musicrec",
        description="Content-based music recommendations over the AcousticBrainz dumps, served over gRPC.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser(
        "gen-corpus",
        parents=[common],
        help="write a synthetic corpus in the AcousticBrainz dump layout",
        description="Write a synthetic corpus of N recordings in the real dump layout "
        "(highlevel/<2 hex>/<1 hex>/<mbid>-<n>.json) with planted styles and real-dump messiness.",
    )
    gen.add_argument("--tracks", type=int, required=True, help="distinct recordings to generate")
    gen.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder to write into (with --format tar.zst: the archive file)",
    )
    gen.add_argument(
        "--format",
        choices=["folder", "tar.zst"],
        default="folder",
        help="loose files in a folder (default), or one .tar.zst archive like a dump archive",
    )
    gen.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same corpus")

    serve = sub.add_parser(
        "serve",
        parents=[common],
        help="run the catalog, ingestor, recommender, or all three",
        description="Run gRPC services until SIGTERM/Ctrl-C. With no database or Qdrant URL configured, "
        "'all' runs the three in one process on the embedded PostgreSQL and Qdrant Edge "
        f"(ports {DEFAULT_PORTS['catalog']}, {DEFAULT_PORTS['ingestor']}, {DEFAULT_PORTS['recommender']}).",
    )
    serve.add_argument("service", choices=["catalog", "ingestor", "recommender", "all"])
    serve.add_argument("--host", help="address to bind (default from MUSICREC_<SERVICE>_HOST, 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help="port to bind; only with a single service (0 = any free port)"
    )

    ing = sub.add_parser(
        "ingest",
        parents=[common],
        help="ingest dump folders/files through the ingestor's gRPC API",
        description="Ask the ingestor to read PATHs (a folder in the dump layout, .tar, .tar.zst, NDJSON or "
        "a .json file), showing progress, then print the ingest report.",
    )
    ing.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ing.add_argument(
        "--ingestor",
        default=os.environ.get("MUSICREC_INGESTOR_ADDRESS", DEFAULT_INGESTOR),
        help=f"ingestor address (env MUSICREC_INGESTOR_ADDRESS; default {DEFAULT_INGESTOR})",
    )
    ing.add_argument("--report", type=Path, help="also write the report as JSON to this file")

    rec = sub.add_parser(
        "recommend",
        parents=[common],
        help="tracks that sound like a seed track",
        description='Recommend tracks similar to a seed given as "Artist - Title" or --mbid.',
    )
    rec.add_argument("query", nargs="?", help='the seed as "Artist - Title" (or a title)')
    rec.add_argument("--mbid", help="the seed's MusicBrainz recording id")
    rec.add_argument(
        "--genre-classifier",
        choices=["rosamerica", "dortmund", "tzanetakis"],
        default="rosamerica",
        help="genre model used by the genre filter (default rosamerica)",
    )
    rec.add_argument("--same-genre", action="store_true", help="only tracks of the seed's genre")
    rec.add_argument("--same-decade", action="store_true", help="only tracks of the seed's decade")
    rec.add_argument("--genre", help="only tracks with this genre label of the chosen classifier")
    rec.add_argument("--decade", type=int, help="only tracks from this decade, e.g. 1990")
    rec.add_argument("--include-placeholders", action="store_true", help="also return placeholder titles")
    rec.add_argument(
        "--seed",
        action="append",
        default=[],
        metavar="SEED",
        help='another seed (MBID or "Artist - Title"); repeatable: results are near all seeds',
    )
    rec.add_argument(
        "--not",
        dest="negative",
        action="append",
        default=[],
        metavar="SEED",
        help='"less like this": a negative seed (MBID or "Artist - Title"); repeatable',
    )
    rec.add_argument("--genres", help="only tracks with one of these genre labels, comma-separated")
    rec.add_argument(
        "--min-genre-probability",
        type=float,
        help="with a genre filter: the classifier's minimum probability",
    )
    rec.add_argument("--min-year", type=int, help="only tracks released in or after this year")
    rec.add_argument("--max-year", type=int, help="only tracks released in or before this year")
    rec.add_argument("--exclude-seed-artists", action="store_true", help="no tracks by the seeds' artists")
    rec.add_argument(
        "--max-per-artist", type=int, help="at most this many tracks per artist (default 3; 0: no cap)"
    )
    rec.add_argument(
        "--include-duplicates", action="store_true", help="allow the same title by the same artist twice"
    )
    rec.add_argument("--min-similarity", type=float, help="only tracks at least this similar (-1..1)")
    for trait in TRAIT_NAMES:
        rec.add_argument(f"--min-{trait}", type=float, metavar="P", help=argparse.SUPPRESS)
        rec.add_argument(f"--max-{trait}", type=float, metavar="P", help=argparse.SUPPRESS)
        rec.add_argument(f"--target-{trait}", type=float, metavar="P", help=argparse.SUPPRESS)
    rec.add_argument(
        "--target-weight", type=float, help="how much trait targets weigh against similarity (default 0.5)"
    )
    rec.add_argument(
        "--diversity", type=float, default=0.0, help="0 (most similar, default) .. 1 (most varied)"
    )
    rec.add_argument("--explain", action="store_true", help="say why each track was picked")
    rec.add_argument("--feature-model", default="", help="refuse to answer unless the index has this model")
    rec.add_argument("--limit", type=int, default=10, help="how many tracks, 1-100 (default 10)")
    rec.add_argument("--json", action="store_true", help="print the response as JSON")
    rec.epilog = (
        "Traits (probabilities in 0..1): "
        + ", ".join(TRAIT_NAMES)
        + ". For each: --min-TRAIT and --max-TRAIT filter exactly, --target-TRAIT re-ranks "
        "(e.g. --min-danceability 0.7 --target-happy 0.9)."
    )
    rec.add_argument(
        "--recommender",
        default=os.environ.get("MUSICREC_RECOMMENDER_ADDRESS", DEFAULT_RECOMMENDER),
        help=f"recommender address (env MUSICREC_RECOMMENDER_ADDRESS; default {DEFAULT_RECOMMENDER})",
    )

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="generate a corpus, serve, ingest and show recommendations, end to end",
        description="Generate a 20,000-track synthetic corpus (unless --corpus is given), start the three "
        "services, ingest the corpus through the ingestor, and print recommendations for three seeds, "
        "unfiltered and filtered to the seed's rosamerica genre and decade. Stops everything it started.",
    )
    demo.add_argument("--corpus", type=Path, help="ingest this folder/archive instead of a generated corpus")
    demo.add_argument(
        "--tracks", type=int, default=20_000, help="size of the generated corpus (default 20000)"
    )
    demo.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    demo.add_argument(
        "--seed-track", action="append", default=[], metavar="ARTIST - TITLE", help="seed track(s) to show"
    )
    demo.add_argument("--limit", type=int, default=10, help="recommendations per table (default 10)")

    evaluation.add_parser(sub, parents=[common])

    health = sub.add_parser(
        "health",
        parents=[common],
        help="check a service's gRPC health (exit 0 when SERVING)",
        description="Call grpc.health.v1 Check on ADDRESS; used by container healthchecks.",
    )
    health.add_argument("address", help="HOST:PORT")
    health.add_argument("--service", default="", help="service name to check (default: the whole server)")
    health.add_argument("--timeout", type=float, default=3.0)
    return parser


def _common_settings(args: argparse.Namespace) -> CommonSettings:
    settings = CommonSettings()
    if getattr(args, "data_dir", None) is not None:
        settings = settings.model_copy(update={"data_dir": args.data_dir})
    return settings


def _run_gen_corpus(args: argparse.Namespace) -> int:
    from musicrec_common.corpus import generate_corpus
    from musicrec_common.progress import ProgressMeter, ProgressPrinter

    if args.tracks < 1:
        raise SystemExit("musicrec gen-corpus: --tracks must be at least 1")
    meter = ProgressMeter(total=args.tracks)
    printer = ProgressPrinter("gen-corpus", "tracks")

    def progress(done: int, total: int) -> None:
        meter.done = done
        printer.show(done, total, meter.rate, meter.eta, final=done >= total)

    if args.format == "tar.zst":
        from musicrec_common.corpus import write_corpus_archive

        summary = write_corpus_archive(args.out, tracks=args.tracks, seed=args.seed, progress=progress)
    else:
        summary = generate_corpus(args.out, tracks=args.tracks, seed=args.seed, progress=progress)
    print(
        f"wrote {summary.documents:,} documents for {summary.tracks:,} recordings "
        f"({summary.duplicate_submissions:,} duplicate submissions) to {args.out}"
    )
    return 0


def _run_serve(args: argparse.Namespace, common: CommonSettings) -> int:
    from musicrec_cli.serve import serve

    if args.port is not None and args.service == "all":
        raise SystemExit(
            "musicrec serve: --port applies to a single service; 'all' uses each service's port setting"
        )
    return asyncio.run(serve(args.service, common, host=args.host, port=args.port))


def _run_ingest(args: argparse.Namespace) -> int:
    from musicrec_cli.clients import ingest, report_as_json
    from musicrec_cli.render import report_table

    report = asyncio.run(ingest(args.ingestor, args.paths))
    print(report_table(report))
    if args.report:
        args.report.write_text(report_as_json(report) + "\n")
        print(f"report written to {args.report}")
    return 0


def _seed(text: str) -> recommender_pb2.Seed:
    """A seed from the command line: an MBID when it parses as a UUID, else "Artist - Title"."""
    try:
        return recommender_pb2.Seed(mbid=str(uuid.UUID(text.strip())))
    except ValueError:
        return recommender_pb2.Seed(query=text)


def _recommend_request(args: argparse.Namespace) -> recommender_pb2.RecommendRequest:
    from musicrec_cli.clients import CLASSIFIERS

    if args.mbid and args.query:
        raise SystemExit('musicrec recommend: give either "Artist - Title" or --mbid MBID, not both')
    if not (args.mbid or args.query or args.seed):
        raise SystemExit('musicrec recommend: give a seed: "Artist - Title", --mbid MBID or --seed')
    request = recommender_pb2.RecommendRequest(
        genre_classifier=CLASSIFIERS[args.genre_classifier],
        same_genre=args.same_genre,
        same_decade=args.same_decade,
        genre=args.genre or "",
        limit=args.limit,
        include_placeholders=args.include_placeholders,
        seeds=[_seed(s) for s in args.seed],
        negative_seeds=[_seed(s) for s in args.negative],
        genres=[g.strip() for g in (args.genres or "").split(",") if g.strip()],
        exclude_seed_artists=args.exclude_seed_artists,
        include_duplicates=args.include_duplicates,
        diversity=args.diversity,
        feature_model=args.feature_model,
    )
    if args.mbid:
        request.seed_mbid = args.mbid
    elif args.query:
        request.seed_query = args.query
    for name in (
        "decade",
        "min_genre_probability",
        "min_year",
        "max_year",
        "max_per_artist",
        "min_similarity",
    ):
        value = getattr(args, name)
        if value is not None:
            if name == "max_per_artist" and value < 0:
                raise SystemExit("musicrec recommend: --max-per-artist must be 0 or more")
            setattr(request, name, value)
    if args.target_weight is not None:
        request.target_weight = args.target_weight
    for trait in TRAIT_NAMES:
        bounds = {k: getattr(args, f"{k}_{trait}") for k in ("min", "max", "target")}
        if any(v is not None for v in bounds.values()):
            target = request.traits.add(trait=recommender_pb2.Trait.Value(f"TRAIT_{trait.upper()}"))
            for key, value in bounds.items():
                if value is not None:
                    setattr(target, key, value)
    return request


def _run_recommend(args: argparse.Namespace) -> int:
    from musicrec_cli.clients import recommend, response_as_json
    from musicrec_cli.render import recommendation_table

    response = asyncio.run(recommend(args.recommender, _recommend_request(args)))
    print(response_as_json(response) if args.json else recommendation_table(response, explain=args.explain))
    return 0


def _run_health(args: argparse.Namespace) -> int:
    from musicrec_cli.clients import check_health

    try:
        status = asyncio.run(check_health(args.address, args.service, timeout=args.timeout))
    except grpc.aio.AioRpcError as error:
        print(f"{args.address}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    print(f"{args.address}: {status}")
    return 0 if status == "SERVING" else 1


def _run_demo(args: argparse.Namespace, common: CommonSettings) -> int:
    from musicrec_cli.demo import run_demo

    return asyncio.run(run_demo(args, common))


def _unreachable(details: str) -> bool:
    """Whether an UNAVAILABLE status says the service could not be reached (gRPC's own wording),
    rather than a service's reason (e.g. "the index is being built")."""
    text = details.lower()
    return any(words in text for words in ("connect", "socket closed", "dns resolution", "unreachable"))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        common = _common_settings(args)
    except ValidationError as error:
        print(f"musicrec: invalid setting: {error}", file=sys.stderr)
        return 2
    configure_logging(common.log_level, common.log_format)
    try:
        match args.command:
            case "gen-corpus":
                return _run_gen_corpus(args)
            case "serve":
                return _run_serve(args, common)
            case "ingest":
                return _run_ingest(args)
            case "recommend":
                return _run_recommend(args)
            case "health":
                return _run_health(args)
            case "demo":
                return _run_demo(args, common)
            case "eval":
                return evaluation.run_eval(args, common)
    except grpc.aio.AioRpcError as error:
        hint = ""
        if error.code() is grpc.StatusCode.UNAVAILABLE and _unreachable(error.details() or ""):
            hint = "\nhint: is `musicrec serve all` running (or the address right)?"
        print(f"musicrec {args.command}: {error.code().name}: {error.details()}{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
