"""The `TrackRepository` port of the catalog and its domain errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from musicrec_common.model import Track

__all__ = ["TrackRepository", "UpsertResult"]


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """What an upsert of a batch did. `unchanged` counts tracks whose stored row was preferred."""

    inserted: int
    updated: int
    unchanged: int


class TrackRepository(Protocol):
    """Where the catalog keeps tracks. One row per MBID."""

    def upsert(self, tracks: Sequence[Track]) -> UpsertResult:
        """Store tracks; for an MBID already stored, keep whichever submission has the larger
        `Track.preference_key()` so the result does not depend on arrival order."""
        ...

    def get_many(self, mbids: Sequence[str]) -> list[Track]:
        """Tracks for the given MBIDs, in the order asked; unknown MBIDs are left out."""
        ...

    def search(self, *, artist: str | None, title: str | None, limit: int) -> list[Track]:
        """Tracks whose artist and/or title match, case- and accent-insensitively. Exact matches of
        the folded text come first, then prefix matches; placeholders last."""
        ...

    def count(self) -> int: ...
