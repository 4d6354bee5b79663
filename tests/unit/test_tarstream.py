"""The streaming tar reader and the zstd reader (musicrec_ingestor.tarstream)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from musicrec_ingestor.sources import Document, SourceProblem, iter_source
from musicrec_ingestor.tarstream import (
    BLOCK_SIZE,
    READ_SIZE,
    CorruptArchiveError,
    TarMember,
    TruncatedArchiveError,
    iter_tar_members,
    open_zstd,
)

pytestmark = pytest.mark.unit

LIMIT = 64 * 1024 * 1024
ROOT = "acousticbrainz-highlevel-json-20220623"
LONG_DIR = "acousticbrainz-highlevel-json-20220623/highlevel/" + "/".join(f"level{i:02d}" for i in range(12))
NAMES_AND_SIZES: list[tuple[str, int]] = [
    ("acousticbrainz-highlevel-json-20220623/COPYING", 35),
    (
        "acousticbrainz-highlevel-json-20220623/highlevel/00/0/000abf35-b0f2-4985-82c9-bd3ef80e0699-0.json",
        9876,
    ),
    ("empty.json", 0),
    ("one-block.bin", BLOCK_SIZE),
    ("one-byte-over.bin", BLOCK_SIZE + 1),
    (f"{LONG_DIR}/a-name-that-makes-the-path-longer-than-one-hundred-bytes.json", 700),  # > 100 chars
    ("musique/Motörhead – Ace of Spades.json", 1234),  # non-ASCII
    ("音楽/無題/トラック 01.json", 321),
    ("emoji/🎵 song.json", 12),
    ("big/crosses-the-read-size.bin", READ_SIZE + 3 * BLOCK_SIZE + 17),
    ("after/the-big-one.json", 4000),
]


def _payload(index: int, size: int) -> bytes:
    pattern = bytes((index * 31 + i * 7) % 251 for i in range(251))
    return (pattern * (size // len(pattern) + 1))[:size]


def _write(fmt: int, members: list[tuple[str, int]], *, with_extras: bool = True, **options: object) -> bytes:
    """An archive written by tarfile in stream mode, like the dump: files, plus a directory and a
    symlink when `with_extras`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w|", format=fmt, **options) as archive:  # type: ignore[call-overload]
        if with_extras:
            folder = tarfile.TarInfo("acousticbrainz-highlevel-json-20220623/highlevel")
            folder.type = tarfile.DIRTYPE
            archive.addfile(folder)
        for index, (name, size) in enumerate(members):
            info = tarfile.TarInfo(name)
            info.size = size
            info.mtime = 1_655_942_400
            archive.addfile(info, io.BytesIO(_payload(index, size)))
        if with_extras:
            link = tarfile.TarInfo("a-link")
            link.type = tarfile.SYMTYPE
            link.linkname = members[0][0]
            archive.addfile(link)
    return buffer.getvalue()


def _reference(data: bytes) -> list[tuple[str, bytes]]:
    """(name, bytes) of every regular file, as Python's tarfile reads them."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as archive:
        for member in archive:
            if member.isfile():
                handle = archive.extractfile(member)
                assert handle is not None
                out.append((member.name, handle.read()))
    return out


def _files(members: Iterator[TarMember]) -> list[tuple[str, bytes | None]]:
    return [(member.name, member.data) for member in members if member.kind == "file"]


def _read(data: bytes, limit: int = LIMIT) -> list[TarMember]:
    return list(iter_tar_members(io.BytesIO(data), max_member_bytes=limit))


def _until_error(data: bytes) -> tuple[list[str], BaseException | None]:
    """The names yielded before the reader raised, and what it raised (None if it did not)."""
    seen: list[str] = []
    try:
        for member in iter_tar_members(io.BytesIO(data), max_member_bytes=LIMIT):
            seen.append(member.name)
    except (TruncatedArchiveError, CorruptArchiveError) as error:
        return seen, error
    return seen, None


class _Trickle(io.RawIOBase):
    """A stream that hands out at most `step` bytes per read and has no read1: every header and
    member straddles read boundaries."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        size = min(len(buffer), self._step, len(self._data) - self._pos)
        buffer[:size] = self._data[self._pos : self._pos + size]
        self._pos += size
        return size


FORMATS = pytest.mark.parametrize(
    "fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT], ids=["gnu", "pax", "ustar"]
)


class TestSameAsTarfile:
    @FORMATS
    def test_every_file_with_the_same_name_and_bytes(self, fmt: int) -> None:
        data = _write(fmt, NAMES_AND_SIZES)
        expected = _reference(data)
        assert [name for name, _ in expected] == [name for name, _ in NAMES_AND_SIZES]
        assert _files(iter(_read(data))) == expected

    @FORMATS
    def test_straddling_reads_and_zstd_give_the_same(self, fmt: int) -> None:
        data = _write(fmt, NAMES_AND_SIZES[:9])
        expected = _reference(data)
        for step in (1, 100, 511, 4099):
            stream = io.BufferedReader(_Trickle(data, step), buffer_size=step)
            assert _files(iter_tar_members(stream, max_member_bytes=LIMIT)) == expected, step
        compressed = zstandard.ZstdCompressor(level=3).compress(data)
        assert _files(iter_tar_members(open_zstd(io.BytesIO(compressed)), max_member_bytes=LIMIT)) == expected

    def test_directories_and_links_are_other_entries(self) -> None:
        members = _read(_write(tarfile.PAX_FORMAT, NAMES_AND_SIZES[:2]))
        assert [(m.name, m.kind, m.data) for m in members if m.kind == "other"] == [
            ("acousticbrainz-highlevel-json-20220623/highlevel", "other", None),
            ("a-link", "other", None),
        ]
        assert [m.size for m in members if m.kind == "file"] == [size for _, size in NAMES_AND_SIZES[:2]]

    def test_pax_global_headers_and_long_pax_values(self) -> None:
        data = _write(tarfile.PAX_FORMAT, NAMES_AND_SIZES, pax_headers={"comment": "synthetic " * 60})
        assert b"comment=" in data[: BLOCK_SIZE * 3]
        assert _files(iter(_read(data))) == _reference(data)

    def test_base256_size_field(self) -> None:
        data = bytearray(_write(tarfile.GNU_FORMAT, [("small.json", 1000)], with_extras=False))
        data[124:136] = b"\x80" + (1000).to_bytes(11, "big")
        data[148:156] = b"        "
        data[148:156] = b"%06o\0 " % sum(data[:BLOCK_SIZE])
        assert _files(iter(_read(bytes(data)))) == _reference(bytes(data))

    def test_an_empty_archive(self) -> None:
        data = _write(tarfile.PAX_FORMAT, [], with_extras=False)
        assert data == bytes(len(data))
        assert _read(data) == []

    def test_oversized_files_are_skipped_unread(self) -> None:
        data = _write(tarfile.PAX_FORMAT, NAMES_AND_SIZES)
        members = [m for m in _read(data, limit=5000) if m.kind == "file"]
        assert [(m.name, m.size) for m in members] == NAMES_AND_SIZES
        for member, (index, (_, size)) in zip(members, enumerate(NAMES_AND_SIZES), strict=True):
            assert member.data == (None if size > 5000 else _payload(index, size))


def _layout(data: bytes) -> tuple[list[tuple[str, int]], int]:
    """Per regular file: (name, offset where its padded data ends); and where the end marker ends."""
    ends = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for member in archive.getmembers():
            if member.isfile():
                padded = -(-member.size // BLOCK_SIZE) * BLOCK_SIZE
                ends.append((member.name, member.offset_data + padded))
        marker_end = archive.offset + 2 * BLOCK_SIZE
    return ends, marker_end


class TestDamage:
    @pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
    def test_every_cut_raises_after_yielding_everything_before_it(self, fmt: int) -> None:
        members = [NAMES_AND_SIZES[1], ("b.json", 700), NAMES_AND_SIZES[5], NAMES_AND_SIZES[6], ("e.json", 0)]
        data = _write(fmt, members, with_extras=False)
        ends, marker_end = _layout(data)
        assert marker_end < len(data)  # the record padding after the marker
        for cut in range(marker_end):
            seen, error = _until_error(data[:cut])
            assert isinstance(error, TruncatedArchiveError), cut
            assert seen == [name for name, end in ends if end <= cut], cut
        # Once both zero blocks are there, the rest of the record padding is not needed.
        for cut in (marker_end, marker_end + 1, len(data)):
            assert len(_read(data[:cut])) == len(members)

    def test_a_bad_checksum_is_corruption_at_that_header(self) -> None:
        data = bytearray(
            _write(tarfile.PAX_FORMAT, [("a.json", 600), ("b.json", 10), ("c.json", 5)], with_extras=False)
        )
        second = 2 * BLOCK_SIZE + BLOCK_SIZE  # header, two data blocks, then the second header
        assert data[second : second + 6] == b"b.json"
        data[second] = ord("x")
        seen, error = _until_error(bytes(data))
        assert isinstance(error, CorruptArchiveError)
        assert seen == ["a.json"]
        assert error.offset == second
        assert f"byte {second}" in str(error)

    def test_a_garbled_size_field_is_corruption(self) -> None:
        data = bytearray(_write(tarfile.USTAR_FORMAT, [("a.json", 10)], with_extras=False))
        data[124:136] = b"12345678zz1\0"
        with pytest.raises(CorruptArchiveError):
            _read(bytes(data))

    def test_a_lone_zero_block_at_the_end_is_truncation(self) -> None:
        data = _write(tarfile.PAX_FORMAT, [("a.json", 10)], with_extras=False)
        _, marker_end = _layout(data)
        with pytest.raises(TruncatedArchiveError):
            _read(data[: marker_end - BLOCK_SIZE])

    def test_sources_report_a_cut_on_a_member_boundary(self, tmp_path: Path) -> None:
        mbid = "000abf35-b0f2-4985-82c9-bd3ef80e0699"
        members = [(f"root/highlevel/00/0/{mbid}-{n}.json", 100) for n in range(3)]
        data = _write(tarfile.PAX_FORMAT, members, with_extras=False)
        ends, _ = _layout(data)
        path = tmp_path / "cut.tar.zst"
        path.write_bytes(zstandard.ZstdCompressor().compress(data[: ends[1][1]]))
        items = list(iter_source(path))
        assert [type(item) for item in items] == [Document, Document, SourceProblem]
        assert [item.source for item in items[:2]] == [f"cut.tar.zst:{name}" for name, _ in members[:2]]
        problem = items[2]
        assert isinstance(problem, SourceProblem)
        assert (problem.source, problem.reason) == ("cut.tar.zst", "corrupt_archive")
        assert problem.detail.startswith("TruncatedArchiveError:")


class TestZstd:
    DATA = b"".join(_payload(i, 50_000) + b"%d" % i for i in range(40))

    def test_multi_frame_files_read_whole(self) -> None:
        compressor = zstandard.ZstdCompressor(level=3)
        thirds = [
            self.DATA[i : i + len(self.DATA) // 3 + 1]
            for i in range(0, len(self.DATA), len(self.DATA) // 3 + 1)
        ]
        framed = b"".join(compressor.compress(part) for part in thirds)
        assert open_zstd(io.BytesIO(framed)).read() == self.DATA
        stream = open_zstd(io.BytesIO(framed))
        pieces = []
        while piece := stream.read(70_001):
            assert len(piece) <= 70_001
            pieces.append(piece)
        assert b"".join(pieces) == self.DATA

    def test_zstandard_itself_reports_a_clean_end_for_a_cut_stream(self) -> None:
        # Why open_zstd exists: the library's reader cannot tell a truncated download from the end.
        compressed = zstandard.ZstdCompressor(level=3).compress(self.DATA)
        cut = compressed[: len(compressed) // 2]
        partial = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(cut)).read()
        assert 0 < len(partial) < len(self.DATA)

    def test_a_cut_mid_frame_raises(self) -> None:
        compressor = zstandard.ZstdCompressor(level=3)
        first, second = compressor.compress(self.DATA[:300_000]), compressor.compress(self.DATA[300_000:])
        framed = first + second
        for cut in (1, 4, 17, len(first) // 2, len(first) - 1, len(first) + 3, len(framed) - 1):
            with pytest.raises(TruncatedArchiveError):
                open_zstd(io.BytesIO(framed[:cut])).read()
        # A cut exactly between frames is not detectable at this level (the tar reader notices it).
        assert open_zstd(io.BytesIO(first)).read() == self.DATA[:300_000]
        assert open_zstd(io.BytesIO(b"")).read() == b""

    def test_corrupt_data_is_a_zstd_error(self) -> None:
        with pytest.raises(zstandard.ZstdError):
            open_zstd(io.BytesIO(b"\x28\xb5\x2f\xfd" + b"garbage" * 100)).read()

    def test_readinto_and_read1(self) -> None:
        compressed = zstandard.ZstdCompressor(level=3).compress(self.DATA)
        stream: Any = open_zstd(io.BytesIO(compressed))  # an io.RawIOBase with read1
        buffer = bytearray(1000)
        assert stream.readinto(buffer) == 1000
        assert bytes(buffer) == self.DATA[:1000]
        rest = b""
        while chunk := stream.read1(READ_SIZE):
            rest += chunk
        assert rest == self.DATA[1000:]
