"""Progress of long operations: a one-line bar with rate and ETA on a terminal, JSON-line log
events otherwise. Pure bookkeeping lives in `ProgressMeter` so it can be tested and reused by the
ingestor's gRPC progress stream."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from musicrec_common.logging import log_event

__all__ = ["ProgressMeter", "ProgressPrinter", "format_duration"]


def format_duration(seconds: float) -> str:
    if seconds < 0:
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


@dataclass
class ProgressMeter:
    """Counts done units against an optional total; rate and ETA from the elapsed wall time."""

    total: int | None = None
    done: int = 0
    started: float = field(default_factory=time.monotonic)

    def advance(self, units: int = 1) -> None:
        self.done += units

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float:
        """Seconds left, or -1 when unknown (no total or no rate yet)."""
        if self.total is None or self.rate <= 0:
            return -1.0
        return max(self.total - self.done, 0) / self.rate


class ProgressPrinter:
    """Shows a meter: redraws one line on a terminal, logs an event every `log_every` seconds otherwise."""

    def __init__(
        self,
        label: str,
        unit: str,
        *,
        stream: TextIO | None = None,
        logger: logging.Logger | None = None,
        log_every: float = 5.0,
    ) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.logger = logger or logging.getLogger("musicrec.progress")
        self.log_every = log_every
        self._tty = self.stream.isatty()
        self._last = 0.0

    def show(
        self,
        done: int,
        total: int | None,
        rate: float,
        eta: float,
        *,
        final: bool = False,
        fraction: float | None = None,
    ) -> None:
        """Draw (or log) progress. Without a `total`, `fraction` (e.g. bytes read / bytes in all)
        fills the bar."""
        now = time.monotonic()
        if total:
            fraction = done / total
        if self._tty:
            if not final and now - self._last < 0.1:
                return
            self._last = now
            eta_text = format_duration(eta)
            if fraction is not None:
                width = 28
                filled = int(width * min(max(fraction, 0.0), 1.0))
                bar = "█" * filled + "·" * (width - filled)
                counted = f"{done:,}/{total:,}" if total else f"{done:,} ({fraction:.0%})"
                text = f"\r{self.label} [{bar}] {counted} {self.unit} {rate:,.0f}/s ETA {eta_text}"
            else:
                text = f"\r{self.label} {done:,} {self.unit} {rate:,.0f}/s"
            self.stream.write(text + ("\n" if final else ""))
            self.stream.flush()
            return
        if final or now - self._last >= self.log_every:
            self._last = now
            log_event(
                self.logger,
                f"{self.label} progress" if not final else f"{self.label} done",
                done=done,
                total=total,
                fraction=None if fraction is None else round(fraction, 4),
                unit=self.unit,
                rate=round(rate, 1),
                eta_seconds=round(eta, 1),
            )
