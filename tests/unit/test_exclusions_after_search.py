"""A filter that only excludes (seed ids, placeholder titles) is applied to an unfiltered search's
hits; the answer must be exactly what the engine's filtered search gives."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from musicrec_vectorstore import Hit, PayloadValue, SearchFilter
from musicrec_vectorstore._filters import (
    EXCLUSION_AFTER_MAX_LIMIT,
    EXCLUSION_MARGIN,
    PLACEHOLDER_FIELD,
    search_excluding_after,
)


def _ids(n: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


class _Engine:
    """Points best first; applies exclusions and one `equals` key exactly, as the engines do, and
    records each query's (limit, whether it was filtered)."""

    def __init__(self, placeholders: set[int], n: int = 300) -> None:
        self.points: list[tuple[str, float, dict[str, PayloadValue]]] = [
            (pid, 1.0 - i / 1000, {"artist": f"a{i}", PLACEHOLDER_FIELD: i in placeholders, "genre": "rock"})
            for i, pid in enumerate(_ids(n))
        ]
        self.calls: list[tuple[int, bool]] = []

    def __call__(
        self, limit: int, search_filter: SearchFilter, payload_keys: Sequence[str] | None
    ) -> list[Hit]:
        filtered = search_filter != SearchFilter(exclude_placeholders=False)
        self.calls.append((limit, filtered))
        hits = []
        for pid, score, payload in self.points:
            if pid in search_filter.exclude_ids:
                continue
            if search_filter.exclude_placeholders and payload[PLACEHOLDER_FIELD]:
                continue
            if any(payload.get(k) != v for k, v in search_filter.equals.items()):
                continue
            keys = payload if payload_keys is None else payload_keys
            kept: dict[str, PayloadValue] = {k: payload[k] for k in keys if k in payload}
            hits.append(Hit(pid, score, kept))
        return hits[:limit]


def test_exclusions_run_unfiltered_and_give_the_filtered_answer() -> None:
    engine = _Engine(placeholders={1, 4, 7})
    seeds = _ids(3)[:1]
    search_filter = SearchFilter(exclude_ids=[s.upper() for s in seeds])  # any spelling of a UUID
    got = search_excluding_after(engine, 20, search_filter, ["artist"])
    reference = _Engine(placeholders={1, 4, 7})(20, SearchFilter(exclude_ids=seeds), ["artist"])
    assert got == reference
    assert all(PLACEHOLDER_FIELD not in h.payload for h in got)  # not asked for: not returned
    assert engine.calls == [(20 + 1 + EXCLUSION_MARGIN, False)]


def test_the_placeholder_flag_stays_when_the_caller_reads_it() -> None:
    engine = _Engine(placeholders={2})
    got = search_excluding_after(engine, 5, SearchFilter(), [PLACEHOLDER_FIELD, "artist"])
    assert [h.payload[PLACEHOLDER_FIELD] for h in got] == [False] * 5
    got_all = search_excluding_after(engine, 5, SearchFilter(), None)
    assert got_all[0].payload == {"artist": "a0", PLACEHOLDER_FIELD: False, "genre": "rock"}


def test_many_excluded_hits_near_the_query_fall_back_to_the_engine_filter() -> None:
    engine = _Engine(placeholders=set(range(100)))
    got = search_excluding_after(engine, 10, SearchFilter(), ["artist"])
    assert [h.payload["artist"] for h in got] == [f"a{i}" for i in range(100, 110)]
    first = 10 + EXCLUSION_MARGIN
    assert engine.calls == [(first, False), (2 * first, False), (10, True)]


@pytest.mark.parametrize(
    ("search_filter", "limit"),
    [
        (SearchFilter(equals={"genre": "rock"}), 10),  # a real condition: the engine filters
        (SearchFilter(), EXCLUSION_AFTER_MAX_LIMIT + 1),  # a deep page
    ],
)
def test_other_filters_and_deep_pages_are_left_to_the_engine(search_filter: SearchFilter, limit: int) -> None:
    engine = _Engine(placeholders={0})
    got = search_excluding_after(engine, limit, search_filter, ["artist"])
    assert engine.calls == [(limit, True)]
    assert got[0].payload["artist"] == "a1"


def test_a_small_collection_is_not_searched_twice() -> None:
    engine = _Engine(placeholders={0}, n=12)
    got = search_excluding_after(engine, 50, SearchFilter(), ["artist"])
    assert len(got) == 11
    assert engine.calls == [(50 + EXCLUSION_MARGIN, False)]
