"""Overlap-view position selection (docs/science.md "Overlap views"): direct acceptance, greedy min-spacing, spacing
statistics.

All coordinates and distances are scan-centre positions in pixels; areas are in px^2. Distances are Euclidean and a
position counts as far enough when its distance is >= the threshold (exact float comparison, no tolerance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.spatial import ConvexHull, cKDTree
from scipy.spatial.distance import pdist

Strategy = Literal["direct", "greedy"]


@dataclass(frozen=True)
class Selection:
    """Result of selecting one overlap view; ``acceptance_rate`` is that of ``strategy``, thresholds in pixels."""

    mask: np.ndarray
    strategy: Strategy
    acceptance_rate: float
    direct_rate: float
    n_accepted: int
    n_rejected: int
    spacing_threshold: float


def _points(ycoords: np.ndarray, xcoords: np.ndarray) -> np.ndarray:
    y = np.asarray(ycoords, dtype=np.float64).ravel()
    x = np.asarray(xcoords, dtype=np.float64).ravel()
    if y.shape != x.shape:
        raise ValueError(f"ycoords ({y.size}) and xcoords ({x.size}) differ in length")
    return np.column_stack([y, x])


def nearest_neighbour_distances(ycoords: np.ndarray, xcoords: np.ndarray) -> np.ndarray:
    """(n,) distance (px) from each position to its nearest other position; [inf] for a single position."""
    pts = _points(ycoords, xcoords)
    if len(pts) < 2:
        return np.full(len(pts), np.inf)
    dist, _ = cKDTree(pts).query(pts, k=2)
    # Column 0 is the point itself (or a duplicate at distance 0, which is then also the true nearest distance).
    return dist[:, 1]


def select_direct(ycoords: np.ndarray, xcoords: np.ndarray, threshold: float) -> np.ndarray:
    """(n,) bool mask: keep position i iff its nearest-neighbour distance is >= ``threshold`` (px)."""
    return nearest_neighbour_distances(ycoords, xcoords) >= threshold


def select_greedy(ycoords: np.ndarray, xcoords: np.ndarray, threshold: float) -> np.ndarray:
    """(n,) bool mask of greedy min-spacing selection with ``threshold`` (px).

    Positions are visited sorted by (y, then x); one is kept if it is >= ``threshold`` from every position kept so
    far. Kept positions are hashed into square cells of side ``threshold``: any kept position closer than the
    threshold lies in the 3x3 cells around the candidate, so each check is O(1) and the whole pass O(n).
    """
    pts = _points(ycoords, xcoords)
    n = len(pts)
    if threshold <= 0:
        return np.ones(n, dtype=bool)
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    cells = np.floor(pts / threshold).astype(np.int64)
    # Plain Python floats and ints: per-element numpy scalar access would dominate the loop.
    ys, xs = pts[:, 0].tolist(), pts[:, 1].tolist()
    cys, cxs = cells[:, 0].tolist(), cells[:, 1].tolist()
    kept_in_cell: dict[tuple[int, int], list[int]] = {}

    def far_from_kept(i: int) -> bool:
        yi, xi, cy, cx = ys[i], xs[i], cys[i], cxs[i]
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                for j in kept_in_cell.get((cy + dy, cx + dx), ()):
                    ddy, ddx = ys[j] - yi, xs[j] - xi
                    if math.sqrt(ddy * ddy + ddx * ddx) < threshold:
                        return False
        return True

    mask = np.zeros(n, dtype=bool)
    for i in order.tolist():
        if far_from_kept(i):
            mask[i] = True
            kept_in_cell.setdefault((cys[i], cxs[i]), []).append(i)
    return mask


def select_view(ycoords: np.ndarray, xcoords: np.ndarray, threshold: float, min_direct_rate: float = 0.10) -> Selection:
    """Direct acceptance at ``threshold`` (px); greedy min-spacing when the direct rate is < ``min_direct_rate``."""
    mask = select_direct(ycoords, xcoords, threshold)
    n = mask.size
    if n == 0:
        raise ValueError("cannot select an overlap view from zero positions")
    direct_rate = float(mask.sum()) / n
    strategy: Strategy = "direct"
    if direct_rate < min_direct_rate:
        mask = select_greedy(ycoords, xcoords, threshold)
        strategy = "greedy"
    n_accepted = int(mask.sum())
    return Selection(
        mask=mask,
        strategy=strategy,
        acceptance_rate=n_accepted / n,
        direct_rate=direct_rate,
        n_accepted=n_accepted,
        n_rejected=n - n_accepted,
        spacing_threshold=float(threshold),
    )


def _max_pairwise(pts: np.ndarray) -> float:
    """Exact largest pairwise distance (px): it is attained between convex-hull vertices."""
    # "QJ" joggles the input so degenerate (e.g. collinear) sets still get a hull; vertices stay input points.
    hull = ConvexHull(pts, qhull_options="QJ")
    return float(pdist(pts[hull.vertices]).max())


def spacing_statistics(
    ycoords: np.ndarray, xcoords: np.ndarray, max_pairs: int = 20_000_000, seed: int = 0
) -> dict[str, float]:
    """Min, max, mean and median pairwise distance (px) between the given (kept) positions; NaNs when n < 2.

    Exact when n(n-1)/2 <= ``max_pairs``. Above that, min (nearest-neighbour tree) and max (convex hull) stay exact,
    while mean and median are estimated from ``max_pairs`` unordered pairs drawn uniformly with ``seed``.
    """
    pts = _points(ycoords, xcoords)
    n = len(pts)
    keys = ("spacing_min", "spacing_max", "spacing_mean", "spacing_median")
    if n < 2:
        return dict.fromkeys(keys, math.nan)
    if n * (n - 1) // 2 <= max_pairs:
        d = pdist(pts)
        return dict(zip(keys, (float(d.min()), float(d.max()), float(d.mean()), float(np.median(d)))))
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=max_pairs)
    # j = i + offset in 1..n-1 (mod n) is uniform over the others, so (i, j) is uniform over unordered pairs.
    j = (i + rng.integers(1, n, size=max_pairs)) % n
    d = np.hypot(*(pts[i] - pts[j]).T)
    return dict(
        zip(
            keys,
            (
                float(nearest_neighbour_distances(pts[:, 0], pts[:, 1]).min()),
                _max_pairwise(pts),
                float(d.mean()),
                float(np.median(d)),
            ),
        )
    )


def geometric_acceptance_bound(area: float, n: int, threshold: float, cap: float = 0.10) -> float:
    """min(area / (n * pi * (threshold/2)^2), cap): packing bound on the acceptance rate (area px^2, threshold px)."""
    if n <= 0:
        raise ValueError(f"the acceptance bound needs n >= 1 positions, got {n}")
    if threshold <= 0:
        return cap
    return min(area / (n * math.pi * (threshold / 2) ** 2), cap)


def scan_area(ycoords: np.ndarray, xcoords: np.ndarray) -> float:
    """Bounding-box area (px^2) of the positions."""
    pts = _points(ycoords, xcoords)
    return float(np.ptp(pts[:, 0]) * np.ptp(pts[:, 1]))
