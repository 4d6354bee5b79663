"""A generated dump archive with planted damage gives exactly the expected report, and keeps
everything valid before the damage."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest
import zstandard

from musicrec.catalog.v1 import catalog_pb2
from musicrec_common.convert import track_from_proto
from musicrec_common.corpus import ARCHIVE_ROOT, iter_corpus
from musicrec_common.features import FEATURE_DIM
from musicrec_common.model import Track
from musicrec_ingestor.runner import IngestOptions, Report, run_ingest
from musicrec_ingestor.sources import MAX_DOCUMENT_BYTES
from musicrec_vectorstore import EdgeVectorStore

pytestmark = pytest.mark.integration

TRACKS = 400


def _tar(members: Sequence[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w|") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _Catalog:
    """Keeps the preferred submission per MBID, like the real catalog (which has its own tests)."""

    def __init__(self) -> None:
        self.rows: dict[str, Track] = {}

    async def __call__(self, request: bytes) -> tuple[int, int, int]:
        inserted = updated = unchanged = 0
        for message in catalog_pb2.UpsertTracksRequest.FromString(request).tracks:
            track = track_from_proto(message)
            stored = self.rows.get(track.mbid)
            if stored is None:
                inserted += 1
            elif track.preference_key() > stored.preference_key():
                updated += 1
            else:
                unchanged += 1
                continue
            self.rows[track.mbid] = track
        return inserted, updated, unchanged


async def test_planted_damage_is_counted_exactly_and_valid_documents_are_kept(tmp_path: Path) -> None:
    corpus = [(f"{ARCHIVE_ROOT}/{name}", data) for name, data in iter_corpus(TRACKS, seed=11)]
    mbid = "0" * 8 + "-0000-4000-8000-" + "0" * 12
    planted = [
        (f"{ARCHIVE_ROOT}/COPYING", b"license text"),
        (f"{ARCHIVE_ROOT}/highlevel/00/0/{mbid}-0.json", b'{"highlevel": {"genre_rosamerica": '),  # cut JSON
        (f"{ARCHIVE_ROOT}/highlevel/00/0/{mbid}-1.json", b'{"highlevel": [], "metadata": 7}'),  # wrong types
        (f"{ARCHIVE_ROOT}/highlevel/00/0/{mbid}-2.json", b" " * (MAX_DOCUMENT_BYTES + 1)),  # absurdly large
    ]
    # Frame 1 holds the damage and the whole corpus; frame 2 (a second copy) is cut after a few
    # bytes, so it yields nothing and the archive ends mid-frame: a truncated download.
    compressor = zstandard.ZstdCompressor(level=3)
    members = planted + corpus
    # Where the members end: a 512-byte header plus the data padded to 512 each (names are short,
    # so no long-name headers); tar's end-of-archive marker and padding after that are cut off.
    end = sum(512 + -(-len(data) // 512) * 512 for _, data in members)
    first = compressor.compress(_tar(members)[:end])
    second = compressor.compress(_tar(corpus))
    archive = tmp_path / "damaged.tar.zst"
    archive.write_bytes(first + second[:7])

    reference = _tar(corpus)  # the same corpus, undamaged, for comparison
    clean = tmp_path / "clean.tar.zst"
    clean.write_bytes(compressor.compress(reference))

    async def ingest(path: Path, data_dir: Path) -> tuple[Report, _Catalog]:
        catalog = _Catalog()
        store = EdgeVectorStore(data_dir, FEATURE_DIM)
        try:
            events = [
                e
                async for e in run_ingest(
                    [path], catalog=catalog, vectors=store, options=IngestOptions(batch_size=97, workers=0)
                )
            ]
        finally:
            store.close()
        report = events[-1]
        assert isinstance(report, Report)
        return report, catalog

    damaged_report, damaged_catalog = await ingest(archive, tmp_path / "damaged-index")
    clean_report, clean_catalog = await ingest(clean, tmp_path / "clean-index")

    damaged, reference_counts = damaged_report.counts, clean_report.counts
    assert damaged.invalid_json == 1
    assert damaged.wrong_shape == 1
    assert damaged.oversized == 1
    assert damaged.ignored_members == reference_counts.ignored_members + 1  # COPYING
    assert damaged.corrupt_sources == 1
    assert damaged.documents_read == reference_counts.documents_read + 2
    for name in (
        "missing_title",
        "missing_artist",
        "missing_release_date",
        "invalid_release_date",
        "placeholder_titles",
        "duplicate_submissions",
        "tracks_stored",
    ):
        assert getattr(damaged, name) == getattr(reference_counts, name), name
    # Everything valid was kept, exactly as without the damage.
    assert damaged_catalog.rows == clean_catalog.rows
    reasons = {s.reason for s in damaged_report.skipped}
    assert {"invalid_json", "wrong_shape", "oversized", "corrupt_archive"} <= reasons
