"""Placeholder titles: "[untitled]", "Track 01", "Intro" … — a title that says nothing about the song.

The list itself is data (`data/placeholder_titles.txt`, see its header for the format), loaded once
through importlib.resources and cached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from musicrec_common.text import fold_for_search

__all__ = ["PlaceholderList", "is_placeholder_title", "load_placeholder_list", "parse_placeholder_list"]

_DATA_FILE = "placeholder_titles.txt"
_REGEX_PREFIX = "re:"
_BRACKETS = {"[": "]", "(": ")", "<": ">"}


@dataclass(frozen=True, slots=True)
class PlaceholderList:
    """Folded literal titles plus one combined pattern of all `re:` entries (None if there are none)."""

    literals: frozenset[str]
    pattern: re.Pattern[str] | None

    def matches(self, title: str) -> bool:
        """True when `title` (any form; it is folded here) is a placeholder."""
        folded = fold_for_search(title)
        if not folded:
            return False
        if self._matches_folded(folded):
            return True
        closing = _BRACKETS.get(folded[0])
        if closing is not None and len(folded) > 2 and folded[-1] == closing:
            inner = folded[1:-1].strip()
            return bool(inner) and self._matches_folded(inner)
        return False

    def _matches_folded(self, folded: str) -> bool:
        if folded in self.literals:
            return True
        return self.pattern is not None and self.pattern.fullmatch(folded) is not None


def parse_placeholder_list(text: str) -> PlaceholderList:
    """Parse the list format. Raises `re.error` for an invalid `re:` entry (a bug in the data file)."""
    literals: set[str] = set()
    patterns: list[str] = []
    for line_number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(_REGEX_PREFIX):
            source = line[len(_REGEX_PREFIX) :].strip()
            try:
                re.compile(source)
            except re.error as exc:
                raise re.error(f"placeholder list line {line_number}: {exc.msg}", source) from exc
            patterns.append(f"(?:{source})")
        else:
            folded = fold_for_search(line)
            if folded:
                literals.add(folded)
    pattern = re.compile("|".join(patterns)) if patterns else None
    return PlaceholderList(frozenset(literals), pattern)


@lru_cache(maxsize=1)
def load_placeholder_list() -> PlaceholderList:
    """The packaged list, parsed once per process."""
    resource = resources.files("musicrec_common").joinpath("data").joinpath(_DATA_FILE)
    text = resource.read_text(encoding="utf-8")
    return parse_placeholder_list(text)


def is_placeholder_title(title: str | None) -> bool:
    """True if `title` is a known stand-in for a missing title ("[untitled]", "Track 3", "Intro", …).

    None gives False: a missing title is counted separately by the caller, it is not a placeholder.
    Comparison is case-, accent- and width-insensitive (see `fold_for_search`).
    """
    if title is None:
        return False
    return load_placeholder_list().matches(title)
