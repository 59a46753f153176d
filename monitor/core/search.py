"""Where values fall among fixed sorted edges, as `np.searchsorted` says, several times faster.

Every numeric value of every event is placed among its feature's bin edges and among its
synthetic-likeness knots. NumPy's binary search is bound by branch mispredictions (~40 ns a value
among 101 knots here), and no library offers a faster exact search over a fixed array. So the
edges' range is cut into a grid of equal cells: a value's cell tells how many edges lie in the
cells below it (the cell of a value is monotone in the value, so that count is exact), and the one
edge at most in its own cell is compared directly (~10 ns). The values of the rare cell that holds
several edges (ties, a dense spike) take the binary search.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

CELLS = 2048


class SortedSearch:
    """`np.searchsorted(edges, values, side)` for fixed, sorted `edges` (the binary search itself
    when they span more than float64 holds, as an infinite edge does, or too little to scale).

    >>> search = SortedSearch(np.array([0.0, 1.0, 1.0, 2.5]))
    >>> values = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 2.5, 3.0, np.inf, -np.inf, np.nan])
    >>> search.find(values).tolist() == np.searchsorted(search.edges, values).tolist()
    True
    >>> SortedSearch(search.edges, "right").find(values).tolist()
    [0, 1, 1, 3, 3, 4, 4, 4, 0, 4]
    """

    def __init__(self, edges: np.ndarray, side: Literal["left", "right"] = "left") -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        if not len(self.edges) or np.isnan(self.edges).any() or (self.edges[1:] < self.edges[:-1]).any():
            raise ValueError("edges must be sorted, without NaN, and not empty")
        self.side = side
        self._low = float(self.edges[0])
        span = float(self.edges[-1]) - self._low
        # Any positive finite scale keeps the count exact; this one spreads the edges over the
        # cells. A span too small for it (a few subnormals wide) takes the binary search, as an
        # infinite one does.
        self._scale = (CELLS - 1) / span if 0 < span < np.inf else 1.0
        self._grid = bool(np.isfinite(span)) and np.isfinite(self._scale)
        cells = self._cells(self.edges)
        # Per cell, the edges in the cells below, and the first edge in it (NaN if none: it compares
        # false); one more cell, after the grid, for NaN (it sorts after every edge).
        grid = np.arange(CELLS + 1)
        self._below = np.searchsorted(cells, grid, "left")
        inside = np.searchsorted(cells, grid, "right") - self._below
        self._below[CELLS], inside[CELLS] = len(self.edges), 0
        self._candidate = np.where(inside > 0, self.edges[np.minimum(self._below, len(self.edges) - 1)], np.nan)
        self._crowded_cells = inside > 1
        self._crowded = bool(self._crowded_cells.any())

    def _cells(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):  # far values overflow to a cell at an end
            scaled = (values - self._low) * self._scale
            np.floor(scaled, out=scaled)  # in place: a pass fewer over the values for each
            np.clip(scaled, 0, CELLS - 1, out=scaled)
        return np.nan_to_num(scaled, copy=False, nan=CELLS).astype(np.intp)

    def find(self, values: np.ndarray) -> np.ndarray:
        if not self._grid:
            return np.searchsorted(self.edges, values, self.side)
        cells = self._cells(values)
        found = self._below[cells]
        candidate = self._candidate[cells]
        found += candidate < values if self.side == "left" else candidate <= values
        if self._crowded and (crowded := self._crowded_cells[cells]).any():
            found[crowded] = np.searchsorted(self.edges, values[crowded], self.side)
        return found
