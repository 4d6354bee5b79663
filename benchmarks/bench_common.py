"""What the benchmark scripts share: the machine's description, disk use, peak memory from /proc."""

from __future__ import annotations

import os
import platform
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path

__all__ = ["PeakMemory", "cpu_model", "du", "machine", "vm_hwm_kib"]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown CPU" where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine() -> str:
    """CPUs, CPU model, Python and OS, for a benchmark's header line."""
    return f"{os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, {platform.system()}"


def du(path: Path) -> int:
    """Bytes used on disk under `path` (`du -sb`); 0 when it does not exist."""
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=False).stdout
    return int(out.split()[0]) if out else 0


def vm_hwm_kib(pid: int) -> int | None:
    """The peak resident set size (VmHWM) of a live process in KiB; None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


class PeakMemory:
    """Peak RSS (VmHWM, KiB) by kind, sampled every half second from /proc: this process's descendants
    ("worker", e.g. parse workers), the embedded PostgreSQL ("postgres": processes whose command line
    names the data dir) and, under their own label, the processes of `labels` (pid -> label).
    getrusage's RUSAGE_CHILDREN mixes in every child that ever exited (the corpus generator's workers,
    PostgreSQL's helpers) and misses the running server, which pg_ctl detaches."""

    def __init__(self, data_dir: Path, labels: Mapping[int, str] | None = None) -> None:
        self._markers = (str(data_dir).encode() + b"/", str(data_dir).encode() + b"\0")
        self.labels: dict[int, str] = dict(labels or {})
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def sample(self) -> None:
        """Read every watched process's VmHWM now (also called by the sampling thread)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
        mine: set[int] = set()
        frontier = {os.getpid()}
        while frontier:
            frontier = {pid for pid, parent in parents.items() if parent in frontier} - mine
            mine |= frontier
        for pid in parents:
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            named = any(marker in command for marker in self._markers)
            if pid not in mine and pid not in self.labels and not named:
                continue
            kib = vm_hwm_kib(pid)
            if kib is None:
                continue
            kind = self.labels.get(pid) or ("postgres" if b"postgres" in command else "worker")
            self.peaks[kind] = max(self.peaks.get(kind, 0), kib)
