"""Text rendering of recommendations and ingest reports for the terminal."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

from musicrec.ingestor.v1 import ingestor_pb2
from musicrec.recommender.v1 import recommender_pb2

__all__ = ["recommendation_table", "report_table", "table"]


def _cell_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _fit(text: str, width: int) -> str:
    """`text` clipped and padded to `width` terminal columns (CJK characters take two)."""
    used = 0
    out: list[str] = []
    for char in text:
        w = _cell_width(char)
        if used + w > width:
            while out and used + 1 > width:
                used -= _cell_width(out.pop())
            out.append("…")
            used += 1
            break
        out.append(char)
        used += w
    return "".join(out) + " " * (width - used)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], widths: Sequence[int]) -> str:
    def line(cells: Sequence[str]) -> str:
        return " | ".join(_fit(c, w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(headers), "-+-".join("-" * w for w in widths)]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def _conditions(applied: recommender_pb2.AppliedFilter) -> list[str]:
    """The applied filter in words, for the header line."""
    classifier = recommender_pb2.GenreClassifier.Name(applied.genre_classifier)
    classifier = classifier.removeprefix("GENRE_CLASSIFIER_").lower()
    conditions = []
    genres = list(applied.genres) or ([applied.genre] if applied.genre else [])
    if genres:
        text = f"{classifier}={'|'.join(genres)}"
        if applied.HasField("min_genre_probability"):
            text += f" (p>={applied.min_genre_probability:g})"
        conditions.append(text)
    if applied.HasField("decade"):
        conditions.append(f"decade={applied.decade}s")
    elif applied.HasField("min_year") or applied.HasField("max_year"):
        low = str(applied.min_year) if applied.HasField("min_year") else ""
        high = str(applied.max_year) if applied.HasField("max_year") else ""
        conditions.append(f"year={low}..{high}")
    for trait in applied.traits:
        name = recommender_pb2.Trait.Name(trait.trait).removeprefix("TRAIT_").lower()
        parts = []
        if trait.HasField("min"):
            parts.append(f">={trait.min:g}")
        if trait.HasField("max"):
            parts.append(f"<={trait.max:g}")
        if trait.HasField("target"):
            parts.append(f"~{trait.target:g}")
        conditions.append(f"{name}{','.join(parts)}")
    if applied.exclude_seed_artists:
        conditions.append("not the seeds' artists")
    if applied.max_per_artist:
        conditions.append(f"<={applied.max_per_artist} per artist")
    if applied.HasField("min_similarity"):
        conditions.append(f"similarity>={applied.min_similarity:g}")
    if applied.diversity:
        conditions.append(f"diversity={applied.diversity:g}")
    return conditions


def _describe(track: recommender_pb2.RecommendedTrack) -> str:
    year = track.year if track.HasField("year") else "?"
    return f"{track.artist} - {track.title} ({year}) [dortmund={track.dortmund or '?'} " + (
        f"rosamerica={track.rosamerica or '?'}] {track.mbid}"
    )


def recommendation_table(response: recommender_pb2.RecommendResponse, *, explain: bool = False) -> str:
    """The prototype's table (Artist | Title | Year | Dortmund | Rosamerica | Sim | MBID) and its stats;
    with `explain`, a line per result saying why it was picked."""
    seeds = list(response.seeds) or [response.seed]
    conditions = _conditions(response.filter)
    title = "\n".join(
        [f"Seed: {_describe(seed)}" for seed in seeds]
        + [f"Less like: {_describe(seed)}" for seed in response.negative_seeds]
        + [f"Filter: {', '.join(conditions) if conditions else 'none'}"]
    )
    rows = [
        (
            t.artist,
            t.title,
            str(t.year) if t.HasField("year") else "",
            t.dortmund,
            t.rosamerica,
            f"{t.similarity:.4f}",
            t.mbid,
        )
        for t in response.tracks
    ]
    body = table(
        ("Artist", "Title", "Year", "Dortmund", "Rosamerica", "Sim", "MBID"),
        rows,
        (24, 30, 4, 11, 10, 6, 36),
    )
    s = response.stats
    stats = (
        f"Similarity over {s.count} results: "
        f"mean={s.mean:.4f} std={s.std:.4f} p95={s.p95:.4f} max={s.max:.4f}"
    )
    if not response.tracks:
        body += "\n(no track satisfies the filter)"
    if response.feature_model:
        stats += f"  (feature model {response.feature_model})"
    if explain and response.tracks:
        lines = ["Why:"]
        for track in response.tracks:
            groups = ", ".join(f"{g.group} {g.contribution:+.2f}" for g in track.explanation.groups[:3])
            facts = "; ".join(track.explanation.facts)
            lines.append(f"  {track.rank:>2}. {groups}" + (f" — {facts}" if facts else ""))
        body += "\n" + "\n".join(lines)
    return f"{title}\n{body}\n{stats}"


_REPORT_ROWS = (
    ("documents read", "documents_read"),
    ("documents parsed", "documents_parsed"),
    ("invalid JSON", "invalid_json"),
    ("wrong shape", "wrong_shape"),
    ("missing MBID", "missing_mbid"),
    ("missing title (skipped)", "missing_title"),
    ("missing artist (skipped)", "missing_artist"),
    ("missing release date", "missing_release_date"),
    ("impossible/unparseable date", "invalid_release_date"),
    ("duplicate submissions", "duplicate_submissions"),
    ("placeholder titles (flagged)", "placeholder_titles"),
    ("ignored members (not <mbid>-<n>.json)", "ignored_members"),
    ("oversized members (skipped)", "oversized"),
    ("corrupt or truncated sources", "corrupt_sources"),
    ("recordings (distinct MBIDs)", "tracks_stored"),
    ("catalog rows inserted", "tracks_inserted"),
    ("catalog rows updated", "tracks_updated"),
    ("catalog rows unchanged", "tracks_unchanged"),
    ("vectors upserted", "vectors_upserted"),
)


def report_table(report: ingestor_pb2.IngestReport) -> str:
    rows = [(label, f"{getattr(report, name):,}") for label, name in _REPORT_ROWS]
    rows.append(("elapsed", f"{report.elapsed_seconds:.1f} s"))
    rows.append(("rate", f"{report.documents_per_second:,.0f} documents/s"))
    for stage in report.stages:
        rows.append((f"  {stage.stage}", f"{stage.seconds:.1f} s ({stage.documents_per_second:,.0f}/s)"))
    if report.resumed_from_documents:
        rows.append(("resumed after", f"{report.resumed_from_documents:,} documents"))
    text = table(("Ingest report", "count"), rows, (38, 24))
    if report.skipped:
        listed = "\n".join(f"  {s.reason}: {s.source} ({s.detail})" for s in report.skipped[:10])
        text += f"\nFirst skipped documents:\n{listed}"
        if len(report.skipped) > 10:
            text += f"\n  … {len(report.skipped) - 10} more in the JSON report"
    return text
