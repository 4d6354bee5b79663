"""`SearchFilter` -> each engine's filter (private).

The rules are the same for both engines:
- every key of `equals` must hold exactly that value (str -> keyword match, int -> integer match,
  bool -> bool match); `any_of` -> match-any; `ranges` -> an inclusive range; `exclude_values` ->
  must-not match-any;
- `exclude_ids` become a must-not has-id condition (ids that are not UUIDs cannot be stored, so
  they are dropped);
- `exclude_placeholders` becomes must-not placeholder == true (points without the key stay).

qdrant-client is imported only when its filter is asked for: it takes seconds to import, and the
Edge adapter does not need it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import qdrant_edge as edge

from musicrec_vectorstore._common import try_normalise_id
from musicrec_vectorstore.port import Hit, PayloadValue, Range, SearchFilter, VectorStoreError

if TYPE_CHECKING:
    from uuid import UUID

    from qdrant_client import models
    from qdrant_edge import ConditionType

PLACEHOLDER_FIELD = "placeholder"


Scalar = str | int


@dataclass(frozen=True, slots=True)
class _Conditions:
    """A SearchFilter reduced to engine-neutral terms."""

    equals: list[tuple[str, Scalar]]
    any_of: list[tuple[str, list[str] | list[int]]]
    ranges: list[tuple[str, int | None, int | None]]
    excluded_values: list[tuple[str, list[str] | list[int]]]
    excluded_ids: list[str]
    exclude_placeholders: bool

    @property
    def empty(self) -> bool:
        return not (
            self.equals
            or self.any_of
            or self.ranges
            or self.excluded_values
            or self.excluded_ids
            or self.exclude_placeholders
        )


def _key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise VectorStoreError(f"filter field names must be non-empty strings, not {key!r}")
    return key


def _scalar(key: str, value: object) -> Scalar:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise VectorStoreError(
            f"filter value for {key!r} must be a string or an integer, not {type(value).__name__}"
        )
    return value


def _values(key: str, values: object) -> list[str] | list[int]:
    """A non-empty list of values of one type (engines match strings and integers separately)."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise VectorStoreError(f"filter values for {key!r} must be a sequence, not {type(values).__name__}")
    checked = [_scalar(key, value) for value in dict.fromkeys(values)]
    if not checked:
        raise VectorStoreError(f"filter values for {key!r} are empty (that would match nothing)")
    if all(isinstance(v, str) for v in checked):
        return [v for v in checked if isinstance(v, str)]
    if all(isinstance(v, int) for v in checked):
        return [v for v in checked if isinstance(v, int)]
    raise VectorStoreError(f"filter values for {key!r} mix strings and integers")


def _conditions(search_filter: SearchFilter) -> _Conditions:
    equals = [(_key(k), _scalar(k, v)) for k, v in search_filter.equals.items()]
    any_of = [(_key(k), _values(k, v)) for k, v in search_filter.any_of.items()]
    excluded_values = [(_key(k), _values(k, v)) for k, v in search_filter.exclude_values.items()]
    ranges: list[tuple[str, int | None, int | None]] = []
    for key, bounds in search_filter.ranges.items():
        if not isinstance(bounds, Range):
            raise VectorStoreError(f"the range for {key!r} must be a Range, not {type(bounds).__name__}")
        for bound in (bounds.gte, bounds.lte):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
                raise VectorStoreError(f"range bounds for {key!r} must be integers, not {bound!r}")
        if bounds.gte is None and bounds.lte is None:
            continue
        ranges.append((_key(key), bounds.gte, bounds.lte))
    if isinstance(search_filter.exclude_ids, str):
        raise VectorStoreError("exclude_ids must be a sequence of ids, not a single string")
    excluded: list[str] = []
    seen: set[str] = set()
    for raw in search_filter.exclude_ids:
        normalised = try_normalise_id(raw)
        if normalised is not None and normalised not in seen:
            seen.add(normalised)
            excluded.append(normalised)
    return _Conditions(
        equals, any_of, ranges, excluded_values, excluded, bool(search_filter.exclude_placeholders)
    )


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
    must += [edge.FieldCondition(key, match=edge.MatchAny(values)) for key, values in conditions.any_of]
    must += [
        edge.FieldCondition(key, range=edge.RangeFloat(gte=low, lte=high))
        for key, low, high in conditions.ranges
    ]
    must_not: list[ConditionType] = [
        edge.FieldCondition(key, match=edge.MatchAny(values)) for key, values in conditions.excluded_values
    ]
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
    must += [
        models.FieldCondition(key=key, match=models.MatchAny(any=values)) for key, values in conditions.any_of
    ]
    must += [
        models.FieldCondition(key=key, range=models.Range(gte=low, lte=high))
        for key, low, high in conditions.ranges
    ]
    must_not: list[models.Condition] = [
        models.FieldCondition(key=key, match=models.MatchAny(any=values))
        for key, values in conditions.excluded_values
    ]
    if conditions.excluded_ids:
        has_id: list[models.ExtendedPointId] = list(conditions.excluded_ids)
        must_not.append(models.HasIdCondition(has_id=has_id))
    if conditions.exclude_placeholders:
        must_not.append(models.FieldCondition(key=PLACEHOLDER_FIELD, match=models.MatchValue(value=True)))
    return models.Filter(must=must or None, must_not=must_not or None)


# -- exclusions applied after the search ------------------------------------------------------------

#: A search whose filter only excludes (the seeds' ids, placeholder titles) runs unfiltered and drops
#: the excluded hits itself: the engine checks a filter on every candidate its graph walk scores,
#: which at 1M points and ef 1600 cost ~1.5 ms of a ~6 ms search (most of it the placeholder
#: check), while placeholders are ~1 % of tracks and the excluded ids a handful. The search asks
#: for this many more hits than the caller, plus one per excluded id.
EXCLUSION_MARGIN = 8
#: Above this many hits asked for, the engine applies the exclusions (a large ask says the caller
#: pages deep; the margin would be a fraction of it anyway).
EXCLUSION_AFTER_MAX_LIMIT = 1_000

_NO_CONDITIONS = SearchFilter(exclude_placeholders=False)


class EngineSearch(Protocol):
    """One engine query: the top `limit` hits that match `search_filter`, with `payload_keys`."""

    def __call__(
        self, limit: int, search_filter: SearchFilter, payload_keys: Sequence[str] | None
    ) -> list[Hit]: ...


def search_excluding_after(
    run: EngineSearch, limit: int, search_filter: SearchFilter, payload_keys: Sequence[str] | None
) -> list[Hit]:
    """The top `limit` hits matching `search_filter`, exactly as `run` with the filter would give
    them; a filter that only excludes is applied here to an unfiltered search (see
    EXCLUSION_MARGIN). Two unfiltered tries at most, then the engine filters."""
    only_excludes = not (
        search_filter.equals or search_filter.any_of or search_filter.ranges or search_filter.exclude_values
    )
    if not only_excludes or limit > EXCLUSION_AFTER_MAX_LIMIT:
        return run(limit, search_filter, payload_keys)
    excluded = {i for i in map(try_normalise_id, search_filter.exclude_ids) if i is not None}
    drop_placeholders = search_filter.exclude_placeholders
    keys = payload_keys
    if drop_placeholders and keys is not None and PLACEHOLDER_FIELD not in keys:
        keys = [*keys, PLACEHOLDER_FIELD]
    ask = limit + len(excluded) + EXCLUSION_MARGIN
    for _ in range(2):
        hits = run(ask, _NO_CONDITIONS, keys)
        kept = [
            h
            for h in hits
            if h.id not in excluded and not (drop_placeholders and h.payload.get(PLACEHOLDER_FIELD) is True)
        ]
        if len(kept) >= limit or len(hits) < ask:
            kept = kept[:limit]
            if keys is payload_keys:
                return kept
            return [Hit(h.id, h.score, _without_placeholder(h.payload)) for h in kept]
        ask *= 2
    return run(limit, search_filter, payload_keys)  # many excluded hits near the query


def _without_placeholder(payload: Mapping[str, PayloadValue]) -> dict[str, PayloadValue]:
    return {k: v for k, v in payload.items() if k != PLACEHOLDER_FIELD}
