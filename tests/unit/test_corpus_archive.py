"""The synthetic corpus as one dump-shaped .tar.zst archive (corpus.write_corpus_archive)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import zstandard

from musicrec_common.corpus import (
    ARCHIVE_GROUND_TRUTH_SUFFIX,
    ARCHIVE_ROOT,
    GROUND_TRUTH_FILE,
    _TarWriter,
    generate_corpus,
    iter_corpus,
    write_corpus_archive,
)
from musicrec_ingestor.tarstream import iter_tar_members, open_zstd

pytestmark = pytest.mark.unit

TRACKS = 300
SEED = 3


def _members(path: Path) -> list[tuple[str, bytes]]:
    """Every member of a .tar.zst, read back with Python's own tarfile."""
    with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as stream:
        data = stream.read()
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as archive:
        for member in archive:
            assert member.isfile()
            handle = archive.extractfile(member)
            assert handle is not None
            out.append((member.name, handle.read()))
    return out


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("archive") / "corpus.tar.zst"
    write_corpus_archive(path, tracks=TRACKS, seed=SEED)
    return path


def test_members_are_copying_then_the_corpus_in_order(archive: Path) -> None:
    members = _members(archive)
    assert members[0][0] == f"{ARCHIVE_ROOT}/COPYING"
    assert b"synthetic" in members[0][1]
    expected = [(f"{ARCHIVE_ROOT}/{name}", data) for name, data in iter_corpus(TRACKS, seed=SEED)]
    assert members[1:] == expected
    assert all(name.startswith(f"{ARCHIVE_ROOT}/highlevel/") for name, _ in expected)


def test_the_fast_reader_reads_it_too(archive: Path) -> None:
    with archive.open("rb") as raw:
        members = [(m.name, m.data) for m in iter_tar_members(open_zstd(raw), max_member_bytes=1 << 22)]
    assert members == _members(archive)


def test_one_zstd_frame_and_no_leftovers(archive: Path) -> None:
    data = archive.read_bytes()
    assert data[:4] == b"\x28\xb5\x2f\xfd"
    assert sorted(p.name for p in archive.parent.iterdir()) == sorted(
        [archive.name, archive.name + ARCHIVE_GROUND_TRUTH_SUFFIX]
    )


def test_ground_truth_and_summary_match_the_folder_corpus(archive: Path, tmp_path: Path) -> None:
    summary = generate_corpus(tmp_path / "folder", tracks=TRACKS, seed=SEED)
    truth = archive.with_name(archive.name + ARCHIVE_GROUND_TRUTH_SUFFIX)
    assert truth.read_bytes() == (tmp_path / "folder" / GROUND_TRUTH_FILE).read_bytes()
    lines = truth.read_text(encoding="utf-8").splitlines()
    assert len(lines) == TRACKS
    assert {json.loads(line)["mbid"] for line in lines} == {
        name.rsplit("/", 1)[1][:36] for name, _ in iter_corpus(TRACKS, seed=SEED)
    }
    again = write_corpus_archive(tmp_path / "again.tar.zst", tracks=TRACKS, seed=SEED)
    assert again == summary


def test_same_seed_same_bytes(archive: Path, tmp_path: Path) -> None:
    progress: list[tuple[int, int]] = []
    other = tmp_path / "sub" / "copy.tar.zst"
    write_corpus_archive(
        other, tracks=TRACKS, seed=SEED, progress=lambda done, total: progress.append((done, total))
    )
    assert other.read_bytes() == archive.read_bytes()
    assert progress[-1] == (TRACKS, TRACKS)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    different = tmp_path / "different.tar.zst"
    write_corpus_archive(different, tracks=TRACKS, seed=SEED + 1)
    assert different.read_bytes() != archive.read_bytes()


def test_root_and_level(tmp_path: Path) -> None:
    fast = tmp_path / "fast.tar.zst"
    write_corpus_archive(fast, tracks=50, seed=1, root="acousticbrainz-highlevel-json-20220623", level=1)
    members = _members(fast)
    assert members[0][0] == "acousticbrainz-highlevel-json-20220623/COPYING"
    assert [data for _, data in members[1:]] == [data for _, data in iter_corpus(50, seed=1)]


def test_a_failure_leaves_no_files(tmp_path: Path) -> None:
    def fail(done: int, total: int) -> None:
        raise RuntimeError("stop")

    target = tmp_path / "broken.tar.zst"
    with pytest.raises(RuntimeError, match="stop"):
        write_corpus_archive(target, tracks=1500, seed=1, progress=fail)
    assert list(tmp_path.iterdir()) == []


# --- the tar writer -------------------------------------------------------------------------------

TAR_MEMBERS = [
    ("root/COPYING", b"text\n"),
    ("root/highlevel/ab/c/abcdef01-2345-4678-9abc-def012345678-0.json", b'{"a":1}' * 300),
    ("root/empty.json", b""),
    ("root/one-block.json", b"x" * 512),
    ("root/" + "n" * 95, b"exactly 100 characters"),
    ("root/" + "n" * 96, b"101 characters: a PAX header"),
    ("root/caf\u00e9-\u65e5\u672c.json", b"not ASCII: a PAX header"),
]


def _tarfile_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """What Python's tarfile writes for `members` with the archive's fixed metadata."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_655_942_400
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _tar_writer_bytes(members: list[tuple[str, bytes]], flush_every: int) -> bytes:
    out = io.BytesIO()
    writer = _TarWriter(out)
    for i, (name, data) in enumerate(members):
        writer.add(name, data)
        if i % flush_every == 0:
            writer.flush()
    writer.close()
    return out.getvalue()


@pytest.mark.parametrize("count", [0, 1, 2, len(TAR_MEMBERS)])
def test_the_tar_writer_writes_what_tarfile_writes(count: int) -> None:
    members = TAR_MEMBERS[:count]
    data = _tar_writer_bytes(members, flush_every=2)
    assert data == _tarfile_bytes(members)
    assert len(data) % (20 * 512) == 0


def test_tarfile_and_the_fast_reader_read_the_tar_writer_back() -> None:
    data = _tar_writer_bytes(TAR_MEMBERS, flush_every=3)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as archive:
        back = []
        for member in archive:
            assert (member.mode, member.mtime, member.uid, member.gid) == (0o644, 1_655_942_400, 0, 0)
            handle = archive.extractfile(member)
            assert handle is not None
            back.append((member.name, handle.read()))
    assert back == TAR_MEMBERS
    fast = [(m.name, m.data) for m in iter_tar_members(io.BytesIO(data), max_member_bytes=1 << 20)]
    assert fast == TAR_MEMBERS


# --- worker processes -----------------------------------------------------------------------------


def test_the_bytes_do_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    """Chunks made in worker processes (here more workers than chunks, and fewer) give the same
    archive, ground truth and summary as chunks made in this process."""
    tracks = 2500  # three chunks
    reference = write_corpus_archive(tmp_path / "w0.tar.zst", tracks=tracks, seed=SEED, workers=0)
    for workers in (1, 4):
        path = tmp_path / f"w{workers}.tar.zst"
        summary = write_corpus_archive(path, tracks=tracks, seed=SEED, workers=workers)
        assert summary == reference
        assert path.read_bytes() == (tmp_path / "w0.tar.zst").read_bytes()
        truth = path.name + ARCHIVE_GROUND_TRUTH_SUFFIX
        assert (tmp_path / truth).read_bytes() == (
            tmp_path / ("w0.tar.zst" + ARCHIVE_GROUND_TRUTH_SUFFIX)
        ).read_bytes()
    folder = generate_corpus(tmp_path / "folder", tracks=tracks, seed=SEED, workers=2)
    assert folder == reference
    files = {
        p.relative_to(tmp_path / "folder").as_posix(): p.read_bytes()
        for p in (tmp_path / "folder" / "highlevel").rglob("*.json")
    }
    assert files == dict(iter_corpus(tracks, seed=SEED))
