"""Reading dump sources as streams of (source name, document bytes).

Supported: a folder in the dump layout (any depth), a `.tar` or `.tar.zst` archive (read as a
stream, never unpacked), an NDJSON file (one document per line), a single `.json` file. Problems
with the container itself (a truncated archive, a corrupt zstd frame, an unreadable file) are
reported as `SourceProblem` items and reading goes on with what can still be read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from musicrec_common.acousticbrainz import parse_member_name
from musicrec_ingestor.tarstream import (
    CorruptArchiveError,
    TruncatedArchiveError,
    iter_tar_members,
    open_zstd,
)

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "BytesRead",
    "Document",
    "SourceProblem",
    "TruncatedArchiveError",
    "count_documents",
    "describe_unsupported",
    "iter_source",
    "source_bytes",
]

# A high-level document is ~10 KB; anything this large is not one, and is skipped unread.
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Document:
    """One document to parse. `mbid`/`submission` come from the member name when it has one."""

    source: str
    data: bytes
    mbid: str | None
    submission: int | None


@dataclass(frozen=True, slots=True)
class SourceProblem:
    """Something in a source that is not a document: `reason` is a stable code for the report."""

    source: str
    reason: str
    detail: str


Item = Document | SourceProblem


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if path.is_dir():
        return "folder"
    if name.endswith((".tar.zst", ".tar.zstd", ".tzst")):
        return "tar.zst"
    if name.endswith(".tar"):
        return "tar"
    if name.endswith((".ndjson", ".jsonl")):
        return "ndjson"
    if name.endswith(".json"):
        return "json"
    return None


def describe_unsupported(path: Path) -> str | None:
    """Why `path` cannot be ingested, or None when it can."""
    if not path.exists():
        return f"{path}: no such file or folder"
    if _kind(path) is None:
        return f"{path}: not a folder, .tar, .tar.zst, .ndjson/.jsonl or .json file"
    return None


_NOT_A_DOCUMENT_NAME = "name is not <mbid>-<n>.json"


def _named(source: str, data: bytes) -> Item:
    parsed = parse_member_name(source)
    if parsed is None:
        return SourceProblem(source, "ignored_member", _NOT_A_DOCUMENT_NAME)
    return Document(source, data, parsed[0], parsed[1])


def _walk_folder(root: Path) -> Iterator[Path]:
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            children = sorted(entries, key=lambda e: e.name)
        for entry in reversed(children):
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
        for entry in children:
            if entry.is_file() and entry.name.endswith(".json"):
                yield Path(entry.path)


@dataclass
class BytesRead:
    """How far reading has got in the source's own bytes (compressed, for archives): for an ETA."""

    done: int = 0


def _iter_folder(root: Path, position: BytesRead) -> Iterator[Item]:
    for path in _walk_folder(root):
        source = str(path.relative_to(root))
        try:
            size = path.stat().st_size
            position.done += size
            if size > MAX_DOCUMENT_BYTES:
                yield SourceProblem(source, "oversized", f"{size} bytes")
                continue
            data = path.read_bytes()
        except OSError as error:
            yield SourceProblem(source, "unreadable", str(error))
            continue
        yield _named(source, data)


def _iter_tar(path: Path, compressed: bool, position: BytesRead) -> Iterator[Item]:
    archive = path.name
    with path.open("rb") as raw:
        stream: BinaryIO = open_zstd(raw) if compressed else raw
        tell = raw.tell
        try:
            for name, data, size, kind in iter_tar_members(stream, max_member_bytes=MAX_DOCUMENT_BYTES):
                position.done = tell()
                if kind != "file":
                    continue
                source = f"{archive}:{name}"
                if not name.endswith(".json"):
                    yield SourceProblem(source, "ignored_member", "not a .json file")
                elif data is None:
                    yield SourceProblem(source, "oversized", f"{size} bytes")
                elif (parsed := parse_member_name(name)) is None:
                    yield SourceProblem(source, "ignored_member", _NOT_A_DOCUMENT_NAME)
                else:
                    yield Document(source, data, parsed[0], parsed[1])
        except (CorruptArchiveError, zstandard.ZstdError, EOFError, OSError) as error:
            # EOFError covers TruncatedArchiveError: a cut download or a stream cut mid-frame.
            yield SourceProblem(archive, "corrupt_archive", f"{type(error).__name__}: {error}")


def _iter_ndjson(path: Path, position: BytesRead) -> Iterator[Item]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            position.done += len(line)
            if not line.strip():
                continue
            yield Document(f"{path.name}:{number}", line, None, None)


def iter_source(path: Path, position: BytesRead | None = None) -> Iterator[Item]:
    """Every document (or problem) of one source, in a deterministic order. `position`, when
    given, follows how many of the source's bytes (see `source_bytes`) have been read."""
    position = position if position is not None else BytesRead()
    kind = _kind(path)
    if kind == "folder":
        yield from _iter_folder(path, position)
    elif kind in ("tar", "tar.zst"):
        yield from _iter_tar(path, compressed=kind == "tar.zst", position=position)
    elif kind == "ndjson":
        yield from _iter_ndjson(path, position)
    elif kind == "json":
        parsed = parse_member_name(path.name)
        data = path.read_bytes()
        position.done = len(data)
        yield Document(path.name, data, *(parsed if parsed else (None, None)))
    else:
        yield SourceProblem(str(path), "unsupported_source", describe_unsupported(path) or "")


def source_bytes(path: Path) -> int:
    """The size progress is measured against: the file's size, or a folder's documents' sizes."""
    if _kind(path) == "folder":
        return sum(p.stat().st_size for p in _walk_folder(path))
    return path.stat().st_size


def count_documents(path: Path) -> int | None:
    """How many documents a source holds when that is cheap to know (folders, single files)."""
    kind = _kind(path)
    if kind == "folder":
        return sum(1 for _ in _walk_folder(path))
    if kind == "json":
        return 1
    return None
