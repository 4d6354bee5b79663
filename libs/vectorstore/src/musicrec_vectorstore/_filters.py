"""`SearchFilter` -> each engine's filter (private).

The rules are the same for both engines:
- every key of `equals` must hold exactly that value (str -> keyword match, int -> integer match,
  bool -> bool match);
- `exclude_ids` become a must-not has-id condition (ids that are not UUIDs cannot be stored, so
  they are dropped);
- `exclude_placeholders` becomes must-not placeholder == true (points without the key stay).

qdrant-client is imported only when its filter is asked for: it takes seconds to import, and the
Edge adapter does not need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import qdrant_edge as edge

from musicrec_vectorstore._common import try_normalise_id
from musicrec_vectorstore.port import SearchFilter, VectorStoreError

if TYPE_CHECKING:
    from uuid import UUID

    from qdrant_client import models
    from qdrant_edge import ConditionType

PLACEHOLDER_FIELD = "placeholder"


@dataclass(frozen=True, slots=True)
class _Conditions:
    """A SearchFilter reduced to engine-neutral terms."""

    equals: list[tuple[str, str | int | bool]]
    excluded_ids: list[str]
    exclude_placeholders: bool

    @property
    def empty(self) -> bool:
        return not self.equals and not self.excluded_ids and not self.exclude_placeholders


def _conditions(search_filter: SearchFilter) -> _Conditions:
    equals: list[tuple[str, str | int | bool]] = []
    for key, value in search_filter.equals.items():
        if not isinstance(key, str) or not key:
            raise VectorStoreError(f"filter field names must be non-empty strings, not {key!r}")
        if not isinstance(value, str | int):
            raise VectorStoreError(
                f"filter value for {key!r} must be a string or an integer, not {type(value).__name__}"
            )
        equals.append((key, value))
    if isinstance(search_filter.exclude_ids, str):
        raise VectorStoreError("exclude_ids must be a sequence of ids, not a single string")
    excluded: list[str] = []
    seen: set[str] = set()
    for raw in search_filter.exclude_ids:
        normalised = try_normalise_id(raw)
        if normalised is not None and normalised not in seen:
            seen.add(normalised)
            excluded.append(normalised)
    return _Conditions(equals, excluded, bool(search_filter.exclude_placeholders))


def _edge_match(value: str | int | bool) -> edge.MatchValue:
    """An Edge MatchValue of the value's own type.

    qdrant-edge-py 0.9.0 reads a Python bool as the integer 0/1 (bool is an int subclass), and an
    integer never matches a bool field, so `placeholder == True` would silently match nothing.
    numpy's bool is not an int subclass and arrives as a real bool.
    """
    if isinstance(value, bool):
        flag: Any = np.bool_(value)
        return edge.MatchValue(flag)
    return edge.MatchValue(value)


def edge_filter(search_filter: SearchFilter) -> edge.Filter | None:
    """The Qdrant Edge filter for `search_filter`, or None when it constrains nothing."""
    conditions = _conditions(search_filter)
    if conditions.empty:
        return None
    must: list[ConditionType] = [
        edge.FieldCondition(key, match=_edge_match(value)) for key, value in conditions.equals
    ]
    must_not: list[ConditionType] = []
    if conditions.excluded_ids:
        point_ids: set[int | UUID | str] = set(conditions.excluded_ids)
        must_not.append(edge.HasIdCondition(point_ids))
    if conditions.exclude_placeholders:
        must_not.append(edge.FieldCondition(PLACEHOLDER_FIELD, match=_edge_match(True)))
    return edge.Filter(must=must or None, must_not=must_not or None)


def client_filter(search_filter: SearchFilter) -> models.Filter | None:
    """The qdrant-client filter for `search_filter`, or None when it constrains nothing."""
    from qdrant_client import models

    conditions = _conditions(search_filter)
    if conditions.empty:
        return None
    must: list[models.Condition] = [
        models.FieldCondition(key=key, match=models.MatchValue(value=value))
        for key, value in conditions.equals
    ]
    must_not: list[models.Condition] = []
    if conditions.excluded_ids:
        has_id: list[models.ExtendedPointId] = list(conditions.excluded_ids)
        must_not.append(models.HasIdCondition(has_id=has_id))
    if conditions.exclude_placeholders:
        must_not.append(models.FieldCondition(key=PLACEHOLDER_FIELD, match=models.MatchValue(value=True)))
    return models.Filter(must=must or None, must_not=must_not or None)
