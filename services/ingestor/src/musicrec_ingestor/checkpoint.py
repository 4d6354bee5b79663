"""Checkpoints of a running ingest, so that a stopped run resumes where it left off.

A checkpoint is written after each batch is committed to both the catalog and the vector index.
Because every write is idempotent and the same preference rule decides between submissions
everywhere, redoing the work after the last checkpoint yields exactly what an uninterrupted run
yields. Files, under the ingestor's checkpoint folder, keyed by the sources (paths, sizes and
modification times — a changed file starts afresh):

- `<key>.json`: position (source index, items consumed in it), counts, skipped list, timings;
- `<key>.mbids`: the 16-byte MBID of every valid document so far (for counting distinct
  recordings without holding them in memory); only its first `mbid_bytes` bytes are committed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from musicrec_ingestor.pipeline import IngestCounts, Skipped, count_distinct_in_file

__all__ = ["CHECKPOINT_VERSION", "Checkpoint", "CheckpointStore", "sources_key"]

CHECKPOINT_VERSION = 1


def sources_key(paths: Sequence[Path]) -> str:
    """Identifies one set of inputs: resolved paths, sizes and modification times."""
    parts = []
    for path in paths:
        stat = path.stat()
        parts.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


@dataclass
class Checkpoint:
    source_index: int = 0
    items_done: int = 0
    counts: IngestCounts = field(default_factory=IngestCounts)
    skipped: list[Skipped] = field(default_factory=list)
    mbid_bytes: int = 0
    elapsed_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": CHECKPOINT_VERSION,
                "source_index": self.source_index,
                "items_done": self.items_done,
                "counts": self.counts.as_dict(),
                "skipped": [asdict(s) for s in self.skipped],
                "mbid_bytes": self.mbid_bytes,
                "elapsed_seconds": self.elapsed_seconds,
                "stage_seconds": self.stage_seconds,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Checkpoint | None:
        data = json.loads(text)
        if data.get("version") != CHECKPOINT_VERSION:
            return None
        return cls(
            source_index=int(data["source_index"]),
            items_done=int(data["items_done"]),
            counts=IngestCounts.from_dict(data["counts"]),
            skipped=[Skipped(**s) for s in data["skipped"]],
            mbid_bytes=int(data["mbid_bytes"]),
            elapsed_seconds=float(data["elapsed_seconds"]),
            stage_seconds={str(k): float(v) for k, v in data["stage_seconds"].items()},
        )


class CheckpointStore:
    """The checkpoint files of one set of sources."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = folder
        self.state_file = folder / f"{key}.json"
        self.mbids_file = folder / f"{key}.mbids"

    def load(self) -> Checkpoint | None:
        """The last committed checkpoint, or None (no checkpoint, or an unreadable one)."""
        try:
            checkpoint = Checkpoint.from_json(self.state_file.read_text())
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if checkpoint is None:
            return None
        # MBIDs appended after the last committed checkpoint belong to work that will be redone.
        try:
            with self.mbids_file.open("r+b") as handle:
                handle.truncate(checkpoint.mbid_bytes)
        except OSError:
            return None
        return checkpoint

    def start(self) -> None:
        """Begin a fresh run: forget any earlier state."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.mbids_file.write_bytes(b"")
        self.state_file.unlink(missing_ok=True)

    def append_mbids(self, keys: npt.NDArray[np.uint8]) -> int:
        """Append MBIDs; returns the file's new length (what the next checkpoint commits)."""
        with self.mbids_file.open("ab") as handle:
            handle.write(keys.tobytes())
            handle.flush()
            os.fsync(handle.fileno())
            return handle.tell()

    def save(self, checkpoint: Checkpoint) -> None:
        temporary = self.state_file.with_suffix(".json.tmp")
        with temporary.open("w") as handle:
            handle.write(checkpoint.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.state_file)

    def distinct_mbids(self) -> int:
        """Distinct recordings among the MBIDs so far, in bounded memory (see count_distinct_in_file)."""
        return count_distinct_in_file(self.mbids_file)

    def finish(self) -> None:
        """The run completed: a later run of the same sources starts afresh (and changes nothing)."""
        self.state_file.unlink(missing_ok=True)
        self.mbids_file.unlink(missing_ok=True)
