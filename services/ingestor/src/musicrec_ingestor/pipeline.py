"""The ingest pipeline's pure part: documents in, the chosen submission per recording and the
report counts out. No I/O beyond what the sources yield, so it is unit-tested directly.

Rules (also in the README):
- a document that is not JSON, has the wrong shape or no MBID is skipped and counted;
- a document without a title or an artist is skipped and counted (it cannot be shown or searched);
- of several submissions of one recording, the one with the larger `Track.preference_key()`
  (most complete metadata, then the lowest submission number) is kept — independent of order;
- placeholder titles are kept, flagged, and excluded from recommendations by default.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from musicrec_common.acousticbrainz import DocumentError, parse_document_detailed
from musicrec_common.dates import DateStatus
from musicrec_common.model import ParsedDocument
from musicrec_ingestor.sources import Document, SourceProblem

__all__ = ["MAX_SKIPPED_LISTED", "IngestCounts", "Selection", "Skipped"]

MAX_SKIPPED_LISTED = 100


@dataclass(frozen=True, slots=True)
class Skipped:
    source: str
    reason: str
    detail: str


@dataclass
class IngestCounts:
    documents_read: int = 0
    documents_parsed: int = 0
    invalid_json: int = 0
    wrong_shape: int = 0
    missing_mbid: int = 0
    missing_title: int = 0
    missing_artist: int = 0
    missing_release_date: int = 0
    invalid_release_date: int = 0
    duplicate_submissions: int = 0
    placeholder_titles: int = 0
    ignored_members: int = 0
    corrupt_sources: int = 0
    oversized: int = 0
    tracks_stored: int = 0
    vectors_upserted: int = 0
    tracks_inserted: int = 0
    tracks_updated: int = 0
    tracks_unchanged: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_REASON_COUNTER = {
    "invalid_json": "invalid_json",
    "wrong_shape": "wrong_shape",
    "missing_mbid": "missing_mbid",
    "ignored_member": "ignored_members",
    "corrupt_archive": "corrupt_sources",
    "unreadable": "corrupt_sources",
    "unsupported_source": "corrupt_sources",
    "oversized": "oversized",
}


@dataclass
class Selection:
    """Accumulates documents; keeps one submission per MBID and the counts of everything seen."""

    counts: IngestCounts = field(default_factory=IngestCounts)
    chosen: dict[str, ParsedDocument] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)

    def _skip(self, source: str, reason: str, detail: str) -> None:
        counter = _REASON_COUNTER.get(reason, reason)
        setattr(self.counts, counter, getattr(self.counts, counter) + 1)
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped.append(Skipped(source, reason, detail))

    def add(self, item: Document | SourceProblem) -> None:
        if isinstance(item, SourceProblem):
            self._skip(item.source, item.reason, item.detail)
            return
        self.counts.documents_read += 1
        try:
            parsed, date_status = parse_document_detailed(
                item.data, source=item.source, mbid=item.mbid, submission=item.submission
            )
        except DocumentError as error:
            self._skip(item.source, error.reason, str(error))
            return
        self.counts.documents_parsed += 1
        track = parsed.track
        if track.title is None:
            self._skip(item.source, "missing_title", "no title tag")
            return
        if track.artist is None:
            self._skip(item.source, "missing_artist", "no artist tag")
            return
        if date_status is DateStatus.MISSING:
            self.counts.missing_release_date += 1
        elif date_status is DateStatus.INVALID:
            self.counts.invalid_release_date += 1
        current = self.chosen.get(track.mbid)
        if current is None:
            self.chosen[track.mbid] = parsed
            if track.is_placeholder_title:
                self.counts.placeholder_titles += 1
            return
        self.counts.duplicate_submissions += 1
        if track.preference_key() > current.track.preference_key():
            self.counts.placeholder_titles += int(track.is_placeholder_title) - int(
                current.track.is_placeholder_title
            )
            self.chosen[track.mbid] = parsed

    def add_all(self, items: Iterable[Document | SourceProblem]) -> None:
        for item in items:
            self.add(item)
