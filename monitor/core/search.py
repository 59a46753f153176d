"""Where values fall among fixed sorted edges, as `np.searchsorted` says, several times faster.

Every numeric value of every event is placed among its feature's bin edges and among its
synthetic-likeness knots. NumPy's binary search is bound by branch mispredictions (~40 ns a value
among 101 knots here), and no library offers a faster exact search over a fixed array. So the
edges' range is cut into a grid of equal cells: a value's cell tells how many edges lie in the
cells below it (the cell of a value is monotone in the value, so that count is exact), and the one
edge at most in its own cell is compared directly (~10 ns). The values of the rare cell that holds
several edges (a dense spike) take the binary search.

A search answers with a *key* per value: its place among the distinct edges, and whether it is one
of them. A table over the keys then reads off the answer for any subset of the edges, on either
side (`table`): one search over a feature's bin edges and its likeness knots together serves both.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

CELLS = 2048


class SortedSearch:
    """Keys of values among fixed edges (the binary search itself when they span more than float64
    holds, as an infinite edge does, or too little to scale): for a value with `d` distinct edges
    below it, `2d`, plus 1 if it equals an edge; NaN, which sorts after every edge, `2n + 1` with
    `n` distinct edges. `table(edges, side)[keys]` is then `np.searchsorted(edges, values, side)`.

    >>> edges = np.array([0.0, 1.0, 1.0, 2.5])
    >>> search = SortedSearch(edges)
    >>> values = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 2.5, 3.0, np.inf, -np.inf, np.nan])
    >>> search.keys(values).tolist()
    [0, 1, 2, 3, 4, 5, 6, 6, 0, 7]
    >>> search.table(edges, "right")[search.keys(values)].tolist()
    [0, 1, 1, 3, 3, 4, 4, 4, 0, 4]
    >>> search.table(edges, "left")[search.keys(values)].tolist() == np.searchsorted(edges, values).tolist()
    True
    """

    def __init__(self, edges: np.ndarray) -> None:
        edges = np.asarray(edges, dtype=np.float64)
        if not len(edges) or np.isnan(edges).any() or (edges[1:] < edges[:-1]).any():
            raise ValueError("edges must be sorted, without NaN, and not empty")
        self.edges = np.unique(edges)
        self._nan = 2 * len(self.edges) + 1
        low = float(self.edges[0])
        span = float(self.edges[-1]) - low
        # Any positive finite scale keeps the count exact; this one spreads the edges over the
        # cells. A span too small for it (a few subnormals wide) takes the binary search, as an
        # infinite one does.
        scale = (CELLS - 1) / span if 0 < span < np.inf else 1.0
        self._grid = bool(np.isfinite(span)) and np.isfinite(scale)
        self._low, self._scale = low, scale
        cells = self._cells(self.edges)
        # Per cell, twice the edges in the cells below, and its edge (NaN if none: it compares false).
        grid = np.arange(CELLS)
        below = np.searchsorted(cells, grid, "left")
        inside = np.searchsorted(cells, grid, "right") - below
        self._base = 2 * below
        self._candidate = np.where(inside > 0, self.edges[np.minimum(below, len(self.edges) - 1)], np.nan)
        self._crowded_cells = inside > 1
        self._crowded = bool(self._crowded_cells.any())

    def _cells(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):  # far values overflow to a cell at an end
            scaled = (values - self._low) * self._scale
            np.fmax(scaled, 0, out=scaled)  # NaN too, found apart (`keys`): fmax and fmin drop NaN
            np.fmin(scaled, CELLS - 1, out=scaled)  # then truncating is flooring
        return scaled.astype(np.intp)

    def keys(self, values: np.ndarray) -> np.ndarray:
        if not self._grid:
            return self._searched(values)
        cells = self._cells(values)
        keys = self._base[cells]
        candidate = self._candidate[cells]
        keys += candidate <= values  # twice for an edge below, once for the edge itself
        keys += candidate < values
        if self._crowded and (crowded := self._crowded_cells[cells]).any():
            keys[crowded] = self._searched(values[crowded])
        if (missing := np.isnan(values)).any():
            keys[missing] = self._nan
        return keys

    def _searched(self, values: np.ndarray) -> np.ndarray:
        """The keys by binary search."""
        position = np.searchsorted(self.edges, values)
        keys = 2 * position + (self.edges[np.minimum(position, len(self.edges) - 1)] == values)
        keys[np.isnan(values)] = self._nan
        return keys

    def table(self, edges: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
        """Per key, `np.searchsorted(edges, value, side)` for the values of that key; `edges` (sorted,
        repeats allowed) must all be edges of this search."""
        between = np.searchsorted(edges, self.edges, "left")  # a value strictly between edges, or below them all
        on = np.searchsorted(edges, self.edges, side)  # a value equal to an edge
        return np.concatenate((np.column_stack((between, on)).ravel(), [len(edges), len(edges)]))
