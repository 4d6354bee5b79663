"""Checkpoints: what a resumed ingest relies on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from musicrec_ingestor.checkpoint import Checkpoint, CheckpointStore, sources_key
from musicrec_ingestor.pipeline import IngestCounts, Skipped, mbid_keys

pytestmark = pytest.mark.unit

A = "564ccd5c-c4d3-4752-9abf-c33bb085d6a5"
B = "0dad432b-16cc-4bf0-8961-fd31d124b01b"


def test_a_saved_checkpoint_loads_back(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "k")
    store.start()
    committed = store.append_mbids(mbid_keys([A, B, A]))
    state = Checkpoint(
        source_index=1,
        items_done=500,
        counts=IngestCounts(documents_read=3, invalid_json=1),
        skipped=[Skipped("x.json", "invalid_json", "bad")],
        mbid_bytes=committed,
        elapsed_seconds=2.5,
        stage_seconds={"parse": 1.0},
    )
    store.save(state)
    assert store.load() == state
    assert store.distinct_mbids() == 2


def test_mbids_written_after_the_last_checkpoint_are_dropped_on_load(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "k")
    store.start()
    store.save(Checkpoint(mbid_bytes=store.append_mbids(mbid_keys([A]))))
    store.append_mbids(mbid_keys([B]))  # the process died before the next checkpoint
    assert store.load() is not None
    assert store.distinct_mbids() == 1


def test_no_checkpoint_or_a_broken_one_means_a_fresh_start(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "k")
    assert store.load() is None
    store.start()
    store.state_file.write_text("{not json")
    assert store.load() is None
    store.state_file.write_text('{"version": 99}')
    assert store.load() is None


def test_finishing_forgets_the_run(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "k")
    store.start()
    store.save(Checkpoint())
    store.finish()
    assert store.load() is None
    assert not store.mbids_file.exists()


def test_the_key_changes_when_a_source_changes(tmp_path: Path) -> None:
    source = tmp_path / "dump.tar"
    source.write_bytes(b"one")
    before = sources_key([source])
    assert sources_key([source]) == before
    source.write_bytes(b"two!")
    assert sources_key([source]) != before


@pytest.mark.parametrize("budget", [64 << 20, 50_000, 4096])
def test_distinct_mbids_in_a_file_are_counted_in_bounded_memory(tmp_path: Path, budget: int) -> None:
    from musicrec_ingestor.pipeline import count_distinct, count_distinct_in_file

    rng = np.random.default_rng(3)
    unique = rng.integers(0, 256, (5_000, 16), dtype=np.uint8)
    keys = np.concatenate([unique, unique[rng.integers(0, 5_000, 2_000)]])
    rng.shuffle(keys)
    path = tmp_path / "m.mbids"
    path.write_bytes(keys.tobytes())
    expected = count_distinct(keys)
    assert count_distinct_in_file(path, memory_budget=budget) == expected == len(np.unique(unique, axis=0))
    (tmp_path / "empty").write_bytes(b"")
    assert count_distinct_in_file(tmp_path / "empty") == 0
    assert count_distinct_in_file(tmp_path / "missing") == 0
    (tmp_path / "cut").write_bytes(keys.tobytes()[:-3])
    with pytest.raises(ValueError, match="whole 16-byte"):
        count_distinct_in_file(tmp_path / "cut")
