"""The committed stubs match the protos, and the protos pass buf's STANDARD lint."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "libs" / "contracts" / "src"


def _files(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in root.rglob("*")
        if p.is_file() and p.suffix in {".py", ".pyi"} and "__pycache__" not in p.parts
    }


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh, committed = _files(tmp_path), _files(COMMITTED)
    assert sorted(fresh) == sorted(committed), "stub files differ: run `make protos` and commit"
    drifted = [name for name in fresh if not filecmp.cmp(fresh[name], committed[name], shallow=False)]
    assert not drifted, f"stale generated stubs {drifted}: run `make protos` and commit"


def _buf() -> str | None:
    local = ROOT / ".tools" / "node_modules" / ".bin" / "buf"
    return str(local) if local.exists() else shutil.which("buf")


def test_protos_pass_buf_standard_lint() -> None:
    buf = _buf()
    if buf is None:
        pytest.skip("buf is not installed (make test installs it with npm when npm is available)")
    result = subprocess.run([buf, "lint"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_has_its_own_versioned_package() -> None:
    for service in ("catalog", "ingestor", "recommender"):
        proto = ROOT / "proto" / "musicrec" / service / "v1" / f"{service}.proto"
        assert f"package musicrec.{service}.v1;" in proto.read_text()
