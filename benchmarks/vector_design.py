"""Which vector makes similarity mean something: the alternatives side by side, on one corpus.

    uv run python benchmarks/vector_design.py --tracks 20000

Generates (or reuses, under --workdir) a synthetic dump archive with planted latent styles, parses it
the way the ingest does (one preferred submission per recording), and builds every candidate vector:

  raw        the prototype's: every classifier probability as is (both sides of binary models);
  clr-v1     centred log-ratio per classifier, genre blocks weighted 1.5, L2 (what the parser emits);
  fm-v1 ...  clr-v1 standardised per dimension with statistics fitted on the corpus (the feature
             model), then one weight per feature group, L2 — with several weightings.

For --seeds random tracks it runs exact cosine search (numpy, the seed excluded, placeholders
excluded) and reports: precision@10 of the seed's planted style (ground truth the system never
reads), agreement of the rosamerica genre with the seed's, and the similarity of random pairs (mean
and p95 — the prototype's 0.96 is what makes "similar" meaningless). The table is printed and written
to docs/benchmarks.md under "## Vector design (issue 5)".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson
from doc_section import write_section

from musicrec_common.acousticbrainz import DocumentError, parse_document_detailed
from musicrec_common.corpus import ARCHIVE_GROUND_TRUTH_SUFFIX, write_corpus_archive
from musicrec_common.feature_model import DEFAULT_GROUP_WEIGHTS, GROUP_MODELS, GROUPS, fit
from musicrec_common.features import raw_probability_vector
from musicrec_ingestor.sources import Document, iter_source

SECTION = "## Vector design (issue 5)"

_BLOCKS = {group: len(GROUP_MODELS[group]) for group in GROUPS}

WEIGHTINGS: dict[str, dict[str, float]] = {
    "fm-v1 equal group weights": dict.fromkeys(GROUPS, 1.0),
    "fm-v1 genre 1.5, others 1 (first guess)": {g: 1.5 if g == "genre" else 1.0 for g in GROUPS},
    "fm-v1 every classifier alike (w = √classifiers in the group)": {g: n**0.5 for g, n in _BLOCKS.items()},
    "fm-v1 every classifier alike, genre models ×1.5": {
        g: n**0.5 * (1.5 if g == "genre" else 1.0) for g, n in _BLOCKS.items()
    },
    "fm-v1 genre 1.5, mood 1.5, rhythm 1, others 0.75": {
        **dict.fromkeys(GROUPS, 0.75),
        "genre": 1.5,
        "mood": 1.5,
        "rhythm": 1.0,
    },
    "**fm-v1 chosen: genre 2, mood 1.5, rhythm 1, others 0.5**": dict(DEFAULT_GROUP_WEIGHTS),
    "fm-v1 genre 3, mood 1.5, rhythm 1, others 0.5": {**DEFAULT_GROUP_WEIGHTS, "genre": 3.0},
}


@dataclass
class Corpus:
    ids: list[str]
    clr: npt.NDArray[np.float32]
    raw: npt.NDArray[np.float32]
    style: npt.NDArray[np.int64]
    genre: list[str]
    placeholder: npt.NDArray[np.bool_]


def _load(archive: Path) -> Corpus:
    truth = {}
    with archive.with_name(archive.name + ARCHIVE_GROUND_TRUTH_SUFFIX).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                truth[record["mbid"]] = int(record["style_id"])
    best: dict[str, tuple[tuple[int, int], npt.NDArray[np.float32], npt.NDArray[np.float32], str, bool]] = {}
    for item in iter_source(archive):
        if not isinstance(item, Document):
            continue
        try:
            parsed, _status = parse_document_detailed(
                item.data, source=item.source, mbid=item.mbid, submission=item.submission
            )
        except DocumentError:
            continue
        track = parsed.track
        if track.title is None or track.artist is None:
            continue
        key = track.preference_key()
        if track.mbid not in best or key > best[track.mbid][0]:
            raw = raw_probability_vector(orjson.loads(item.data)["highlevel"])
            genre = track.rosamerica.label if track.rosamerica else ""
            best[track.mbid] = (key, parsed.features, raw, genre, track.is_placeholder_title)
    ids = sorted(mbid for mbid in best if mbid in truth)
    return Corpus(
        ids=ids,
        clr=np.stack([best[m][1] for m in ids]),
        raw=np.stack([best[m][2] for m in ids]),
        style=np.array([truth[m] for m in ids]),
        genre=[best[m][3] for m in ids],
        placeholder=np.array([best[m][4] for m in ids]),
    )


def _unit(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    m = matrix.astype(np.float64)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    unit: npt.NDArray[np.float64] = np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)
    return unit


def _measure(
    vectors: npt.NDArray[np.float32],
    corpus: Corpus,
    seeds: npt.NDArray[np.int64],
    pairs: npt.NDArray[np.int64],
) -> dict[str, float]:
    unit = _unit(vectors)
    genre = np.array(corpus.genre)
    precision, agreement = [], []
    for start in range(0, len(seeds), 256):
        chunk = seeds[start : start + 256]
        sims = unit[chunk] @ unit.T
        sims[:, corpus.placeholder] = -np.inf
        sims[np.arange(len(chunk)), chunk] = -np.inf
        top = np.argpartition(-sims, 10, axis=1)[:, :10]
        precision.extend((corpus.style[top] == corpus.style[chunk, None]).mean(axis=1).tolist())
        agreement.extend((genre[top] == genre[chunk, None]).mean(axis=1).tolist())
    random_pairs = np.einsum("ij,ij->i", unit[pairs[:, 0]], unit[pairs[:, 1]])
    return {
        "style_precision_at_10": float(np.mean(precision)),
        "genre_agreement_at_10": float(np.mean(agreement)),
        "random_pair_mean": float(random_pairs.mean()),
        "random_pair_p95": float(np.percentile(random_pairs, 95)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracks", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=1_000)
    parser.add_argument("--pairs", type=int, default=50_000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "musicrec-bench")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    archive = args.workdir / f"corpus-{args.tracks}.tar.zst"
    if not archive.exists():
        print(f"writing {archive} …", file=sys.stderr)
        write_corpus_archive(archive, tracks=args.tracks, seed=1)
    corpus = _load(archive)
    rng = np.random.default_rng(5)
    candidates = np.flatnonzero(~corpus.placeholder)
    seeds = rng.choice(candidates, min(args.seeds, len(candidates)), replace=False)
    pairs = rng.integers(0, len(corpus.ids), (args.pairs, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]

    rows: dict[str, dict[str, float]] = {
        "raw probabilities (the prototype)": _measure(corpus.raw, corpus, seeds, pairs),
        "clr-v1 (no corpus fit)": _measure(corpus.clr, corpus, seeds, pairs),
    }
    for name, weights in WEIGHTINGS.items():
        model = fit(corpus.clr, group_weights=weights)
        rows[name] = _measure(model.transform(corpus.clr), corpus, seeds, pairs)

    chance = float(np.mean([(corpus.style == s).mean() for s in corpus.style[seeds]]))
    command = shlex.join(["uv", "run", "python", "benchmarks/vector_design.py", *sys.argv[1:]])
    lines = [
        SECTION,
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `{command}` on {os.cpu_count()} cores, "
        f"Python {platform.python_version()}.",
        f"Corpus: {len(corpus.ids):,} recordings (synthetic, {len(set(corpus.style.tolist()))} styles), "
        f"{len(seeds):,} seeds, {len(pairs):,} random pairs; exact cosine search, seed and placeholder "
        f"titles excluded. Chance level of style precision: {chance:.3f}.",
        "",
        "| vector | style precision@10 | rosamerica agreement@10 | random-pair mean | random-pair p95 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in rows.items():
        lines.append(
            f"| {name} | {m['style_precision_at_10']:.3f} | {m['genre_agreement_at_10']:.3f} "
            f"| {m['random_pair_mean']:.3f} | {m['random_pair_p95']:.3f} |"
        )
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
