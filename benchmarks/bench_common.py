"""What the benchmark scripts share: the machine's description, disk use, peak memory and CPU time
from /proc."""

from __future__ import annotations

import os
import platform
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from musicrec_vectorstore.edge import BUILD_PROCESS_NAME

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

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


def _kind(pid: int, command: bytes) -> str:
    """What an unlabelled watched process is: PostgreSQL, the vector index's build, or a worker."""
    if b"postgres" in command:
        return "postgres"
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        name = ""
    return "index-build" if name == BUILD_PROCESS_NAME else "worker"


class PeakMemory:
    """Peak RSS (VmHWM, KiB) and CPU time by kind, sampled every half second from /proc: this
    process's descendants ("worker", e.g. parse workers; "index-build", the vector index's build in
    its own process), the embedded PostgreSQL ("postgres":
    processes whose command line names the data dir) and, under their own label, the processes of
    `labels` (pid -> label).
    getrusage's RUSAGE_CHILDREN mixes in every child that ever exited (the corpus generator's workers,
    PostgreSQL's helpers) and misses the running server, which pg_ctl detaches."""

    def __init__(self, data_dir: Path, labels: Mapping[int, str] | None = None) -> None:
        self._markers = (str(data_dir).encode() + b"/", str(data_dir).encode() + b"\0")
        self.labels: dict[int, str] = dict(labels or {})
        self.peaks: dict[str, int] = {}
        # CPU seconds (user + system) by process, last seen, and by kind over time: (monotonic
        # time, {kind: seconds}) per sample. This process counts as "self"; a process that ended
        # keeps the CPU time it had at its last sample.
        self._cpu: dict[int, tuple[str, float]] = {}
        self.cpu_timeline: list[tuple[float, dict[str, float]]] = []
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
        """Read every watched process's VmHWM and CPU time now (also called by the sampling thread)."""
        parents: dict[int, int] = {}
        cpu: dict[int, float] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                # After the command's ")": state, ppid, …, utime and stime (fields 14 and 15).
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
                cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
            except (OSError, ValueError, IndexError):
                continue
        if os.getpid() in cpu:
            self._cpu[os.getpid()] = ("self", cpu[os.getpid()])
        mine: set[int] = set()
        frontier = {os.getpid()}
        while frontier:
            frontier = {pid for pid, parent in parents.items() if parent in frontier} - mine
            mine |= frontier
        commands: dict[int, bytes] = {}
        for pid in parents:
            try:
                commands[pid] = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
        # Processes naming the data dir, and their descendants (PostgreSQL's backends name none).
        named = {pid for pid, command in commands.items() if any(m in command for m in self._markers)}
        frontier = set(named)
        while frontier:
            frontier = {pid for pid, parent in parents.items() if parent in frontier} - named
            named |= frontier
        for pid, command in commands.items():
            if pid not in mine and pid not in self.labels and pid not in named:
                continue
            kib = vm_hwm_kib(pid)
            if kib is None:
                continue
            kind = self.labels.get(pid) or _kind(pid, command)
            self.peaks[kind] = max(self.peaks.get(kind, 0), kib)
            if pid in cpu:
                self._cpu[pid] = (kind, cpu[pid])
        totals: dict[str, float] = {}
        for kind, seconds in self._cpu.values():
            totals[kind] = totals.get(kind, 0.0) + seconds
        self.cpu_timeline.append((time.monotonic(), totals))

    def cpu_at(self, moment: float) -> dict[str, float]:
        """CPU seconds by kind at the last sample taken at or before `moment` (time.monotonic)."""
        seen: dict[str, float] = {}
        for sampled, totals in self.cpu_timeline:
            if sampled > moment:
                break
            seen = totals
        return dict(seen)
