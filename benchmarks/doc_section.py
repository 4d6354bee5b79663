"""Writing one benchmark's section of docs/benchmarks.md (shared by the benchmark scripts)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["BENCHMARKS_DOC", "write_section"]

BENCHMARKS_DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(heading: str, text: str, path: Path = BENCHMARKS_DOC) -> None:
    """Replace the part of `path` that starts with the line `heading` (up to the next "## " heading)
    with `text`, which starts with that heading itself; append it when the file has no such part."""
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    lines = current.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\n") == heading), None)
    section = text.strip() + "\n"
    if start is None:
        updated = current.rstrip() + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        updated = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(updated, encoding="utf-8")
