"""The ingest pipeline's pure part: a batch of documents in, the tracks to store and the counts out.

`parse_batch` runs in worker processes. What crosses the process boundary is kept cheap to pickle:
a batch goes in as `PackedDocuments` (one bytes blob, not thousands of objects) and comes back as a
`BatchResult` whose tracks are already encoded as the catalog's `UpsertTracksRequest` and whose vector
inputs are an array and plain dicts — per-document Python objects cost more to pickle and unpickle
than to parse. Rules (also in the README):
- a document that is not JSON, has the wrong shape or no MBID is skipped and counted;
- a document without a title or an artist is skipped and counted (it can be neither shown nor
  searched);
- of several submissions of one recording, the one with the larger `Track.preference_key()`
  (most complete metadata, then the lowest submission number) is kept. The rule looks only at
  the submission, so the outcome does not depend on file order or on how work is split into
  batches and processes: the catalog and the vector index apply the same rule when a submission
  meets one stored earlier;
- placeholder titles are kept, flagged, and excluded from recommendations by default.
"""

from __future__ import annotations

import time
import uuid
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from itertools import accumulate
from pathlib import Path

import numpy as np
import numpy.typing as npt

from musicrec.catalog.v1 import catalog_pb2
from musicrec_common.acousticbrainz import DocumentError
from musicrec_common.convert import track_from_proto, track_to_proto
from musicrec_common.dates import DateStatus
from musicrec_common.fastparse import DocumentInput, parse_documents_fast
from musicrec_common.features import FEATURE_DIM
from musicrec_common.model import Track
from musicrec_ingestor.sources import Document
from musicrec_vectorstore.payload import payload_for
from musicrec_vectorstore.port import PayloadValue

__all__ = [
    "MAX_SKIPPED_LISTED",
    "BatchResult",
    "IngestCounts",
    "PackedDocuments",
    "Skipped",
    "count_distinct",
    "count_distinct_in_file",
    "count_problem",
    "mbid_keys",
    "parse_batch",
    "vector_winners",
]

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

    def add(self, other: IngestCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @classmethod
    def from_dict(cls, values: Mapping[str, int]) -> IngestCounts:
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in values.items() if k in known})


# Which counter a skip reason increments.
_REASON_COUNTER = {
    "invalid_json": "invalid_json",
    "wrong_shape": "wrong_shape",
    "missing_mbid": "missing_mbid",
    "missing_title": "missing_title",
    "missing_artist": "missing_artist",
    "ignored_member": "ignored_members",
    "corrupt_archive": "corrupt_sources",
    "unreadable": "corrupt_sources",
    "unsupported_source": "corrupt_sources",
    "oversized": "oversized",
}


def count_problem(counts: IngestCounts, reason: str) -> None:
    counter = _REASON_COUNTER[reason]
    setattr(counts, counter, getattr(counts, counter) + 1)


@dataclass(frozen=True, slots=True)
class PackedDocuments:
    """A batch of documents for a worker: their bytes concatenated in one blob (`ends[i]` is where
    document i ends), plus where each came from. Pickling it copies one large bytes object instead of
    building and tearing down an object per document."""

    blob: bytes
    ends: array[int]
    sources: list[str]
    mbids: list[str | None]
    submissions: list[int | None]

    @classmethod
    def pack(cls, documents: Sequence[Document]) -> PackedDocuments:
        return cls(
            blob=b"".join([d.data for d in documents]),
            ends=array("q", accumulate([len(d.data) for d in documents])),
            sources=[d.source for d in documents],
            mbids=[d.mbid for d in documents],
            submissions=[d.submission for d in documents],
        )

    def __len__(self) -> int:
        return len(self.sources)

    def inputs(self) -> list[DocumentInput]:
        """The documents as parser inputs; their data are views into the blob (no copies)."""
        view = memoryview(self.blob)
        starts = [0, *self.ends[:-1]]
        return [
            DocumentInput(view[start:end], source, mbid, submission)
            for start, end, source, mbid, submission in zip(
                starts, self.ends, self.sources, self.mbids, self.submissions, strict=True
            )
        ]


@dataclass
class BatchResult:
    """What one batch of documents yields: the preferred submission of each recording in it.

    `ids[i]` is a recording's MBID (sorted), `features[i]` its vector and `payloads[i]` its vector
    payload; `catalog_request` is the catalog's `UpsertTracksRequest` for the same tracks, in the
    same order, already encoded. `mbids` holds the MBID (16 bytes) of every valid document,
    duplicates included, so a run can count distinct recordings without keeping tracks in memory.
    """

    ids: list[str]
    catalog_request: bytes
    features: npt.NDArray[np.float32]
    payloads: list[dict[str, PayloadValue]]
    mbids: npt.NDArray[np.uint8]
    # The feature vector of every valid document, duplicates included, in input order: what a
    # feature model is fitted on (so the fit does not depend on how documents were batched).
    document_features: npt.NDArray[np.float32]
    counts: IngestCounts = field(default_factory=IngestCounts)
    skipped: list[Skipped] = field(default_factory=list)
    parse_seconds: float = 0.0

    def tracks(self) -> list[Track]:
        """The chosen tracks, decoded from `catalog_request` (for inspection and tests)."""
        request = catalog_pb2.UpsertTracksRequest.FromString(self.catalog_request)
        return [track_from_proto(message) for message in request.tracks]


def mbid_keys(mbids: Iterable[str]) -> npt.NDArray[np.uint8]:
    """MBIDs as an (n, 16) byte array: compact, picklable, and sortable with numpy."""
    raw = b"".join(uuid.UUID(m).bytes for m in mbids)
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, 16).copy()


def count_distinct(keys: npt.NDArray[np.uint8]) -> int:
    """How many different MBIDs an (n, 16) array of `mbid_keys` holds."""
    if len(keys) == 0:
        return 0
    return len(np.unique(np.ascontiguousarray(keys).view(np.dtype((np.void, 16))).ravel()))


def count_distinct_in_file(path: Path, memory_budget: int = 64 << 20) -> int:
    """`count_distinct` of the MBIDs in a file of `mbid_keys` rows, in bounded memory.

    The rows are split by their first byte into as many ranges as it takes for one range (and its
    sort) to fit `memory_budget`; each range is counted in one pass over the memory-mapped file, so a
    full-dump run (30M documents, 480 MB of MBIDs) counts in ~15 passes of ~64 MB each.
    """
    size = path.stat().st_size if path.exists() else 0
    if size % 16:
        raise ValueError(f"{path} holds {size} bytes, not whole 16-byte MBIDs")
    if size == 0:
        return 0
    rows = np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, 16)
    passes = min(256, max(1, -(-size * 3 // memory_budget)))  # a range, its copy and the sort
    chunk = max(4096, memory_budget // 16 // 4)
    total = 0
    for index in range(passes):
        low, high = 256 * index // passes, 256 * (index + 1) // passes
        parts = []
        for start in range(0, len(rows), chunk):
            block = rows[start : start + chunk]
            first = block[:, 0]
            parts.append(np.asarray(block[(first >= low) & (first < high)]))
        total += count_distinct(np.concatenate(parts))
    return total


def parse_batch(documents: PackedDocuments | Sequence[Document]) -> BatchResult:
    """Parse and clean documents; keep the preferred submission per MBID within the batch."""
    started = time.perf_counter()
    if not isinstance(documents, PackedDocuments):
        documents = PackedDocuments.pack(documents)
    counts = IngestCounts()
    skipped: list[Skipped] = []
    chosen: dict[str, tuple[Track, int]] = {}  # MBID -> (track, its row in `parsed`)
    valid: list[str] = []
    valid_rows: list[int] = []

    def skip(source: str, reason: str, detail: str) -> None:
        count_problem(counts, reason)
        if len(skipped) < MAX_SKIPPED_LISTED:
            skipped.append(Skipped(source, reason, detail))

    # The fast path gives exactly parse_document_detailed's results (tested), a batch at a time.
    parsed = parse_documents_fast(documents.inputs())
    row = 0
    for source, outcome in zip(documents.sources, parsed.results, strict=True):
        counts.documents_read += 1
        if isinstance(outcome, DocumentError):
            skip(source, outcome.reason, str(outcome))
            continue
        track, date_status = outcome
        track_row = row
        row += 1
        counts.documents_parsed += 1
        if track.title is None:
            skip(source, "missing_title", "no title tag")
            continue
        if track.artist is None:
            skip(source, "missing_artist", "no artist tag")
            continue
        if date_status is DateStatus.MISSING:
            counts.missing_release_date += 1
        elif date_status is DateStatus.INVALID:
            counts.invalid_release_date += 1
        counts.placeholder_titles += track.is_placeholder_title
        valid.append(track.mbid)
        valid_rows.append(track_row)
        current = chosen.get(track.mbid)
        if current is None or track.preference_key() > current[0].preference_key():
            chosen[track.mbid] = (track, track_row)
    ordered = [chosen[mbid] for mbid in sorted(chosen)]
    rows = [r for _, r in ordered]
    features = parsed.features[rows] if ordered else np.zeros((0, FEATURE_DIM), dtype=np.float32)
    traits = parsed.traits[rows].tolist() if ordered else []
    tracks = [t for t, _ in ordered]
    request = catalog_pb2.UpsertTracksRequest(tracks=[track_to_proto(t) for t in tracks])
    return BatchResult(
        ids=[t.mbid for t in tracks],
        catalog_request=request.SerializeToString(),
        features=features,
        payloads=[payload_for(t, trait_row) for t, trait_row in zip(tracks, traits, strict=True)],
        mbids=mbid_keys(valid),
        document_features=parsed.features[valid_rows],
        counts=counts,
        skipped=skipped,
        parse_seconds=time.perf_counter() - started,
    )


def vector_winners(
    ids: Sequence[str],
    payloads: Sequence[Mapping[str, PayloadValue]],
    stored: Mapping[str, Mapping[str, object]],
) -> list[int]:
    """Indexes of the points whose vector should replace what the index holds: the MBID is not
    stored yet, or the stored point came from a less preferred submission (the catalog's rule,
    `Track.preference_key()`, read from the `completeness` and `submission` payload keys). An equal
    key means the same submission: nothing to write."""
    winners = []
    for i, (mbid, payload) in enumerate(zip(ids, payloads, strict=True)):
        held = stored.get(mbid)
        if held is None:
            winners.append(i)
            continue
        completeness, submission = held.get("completeness"), held.get("submission")
        if not isinstance(completeness, int) or not isinstance(submission, int):
            winners.append(i)  # written by an older version without the key: replace it
        elif _preference(payload) > (completeness, -submission):
            winners.append(i)
    return winners


def _preference(payload: Mapping[str, PayloadValue]) -> tuple[int, int]:
    completeness, submission = payload["completeness"], payload["submission"]
    if not isinstance(completeness, int) or not isinstance(submission, int):
        raise TypeError(f"a payload without integer completeness and submission: {payload!r}")
    return completeness, -submission
