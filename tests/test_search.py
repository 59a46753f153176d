"""SortedSearch's keys and tables find what np.searchsorted finds, for any sorted edges and any values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.search import SortedSearch

finite = st.floats(allow_nan=False, allow_infinity=False)
# Spread edges, edges in a tiny span, ties (spikes), and infinite ends (the binary search's case).
edges = st.one_of(st.lists(finite, min_size=1, max_size=120),
                  st.lists(st.floats(1.0, 1.0 + 1e-12), min_size=1, max_size=40),
                  st.lists(st.sampled_from([0.0, 0.5, 3.0]), min_size=1, max_size=60),
                  st.lists(st.floats(allow_nan=False), min_size=1, max_size=20))


@settings(max_examples=400, deadline=None)
@given(edges=edges, other=edges, values=st.lists(st.floats(), max_size=60), data=st.data())
def test_it_finds_what_the_binary_search_finds(edges: list[float], other: list[float], values: list[float],
                                               data: st.DataObject) -> None:
    """One search over two sets of edges (a feature's bin bounds and likeness knots) answers for each, on each side."""
    sets = [np.sort(np.array(edges)), np.sort(np.array(other))]
    # Values on the edges and a float away from them, where a grid's rounding would show.
    with np.errstate(over="ignore"):
        near = [v for e in data.draw(st.lists(st.sampled_from(edges + other), max_size=10))
                for v in (e, np.nextafter(e, -np.inf), np.nextafter(e, np.inf))]
    asked = np.array(values + near, dtype=np.float64)
    for searched in (sets[0], np.sort(np.concatenate(sets))):
        search = SortedSearch(searched)
        keys = search.keys(asked)
        for found_among in sets[:1] if searched is sets[0] else sets:
            for side in ("left", "right"):
                found = search.table(found_among, side)[keys]  # type: ignore[arg-type]
                assert found.tolist() == np.searchsorted(found_among, asked, side).tolist()  # type: ignore[call-overload]


@pytest.mark.parametrize("edges", [[], [2.0, 1.0], [0.0, np.nan]])
def test_edges_it_cannot_search_fail_at_construction(edges: list[float]) -> None:
    with pytest.raises(ValueError, match="sorted"):
        SortedSearch(np.array(edges))


def test_edges_too_close_to_scale_take_the_binary_search() -> None:
    # A span of a few subnormals: (cells - 1) / span overflows to infinity (found by the test above).
    edges = np.array([-8.25755775647857e-308, 0.0])
    values = np.array([-1.0, edges[0], -1e-310, 0.0, 1.0])
    search = SortedSearch(edges)
    for side in ("left", "right"):
        assert search.table(edges, side)[search.keys(values)].tolist() == np.searchsorted(edges, values, side).tolist()
