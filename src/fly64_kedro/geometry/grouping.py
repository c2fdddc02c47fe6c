"""gridsize-2 grouping (docs/science.md "Reconstruction"): C distinct positions from each seed's K nearest
neighbours."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def neighbour_pools(ycoords: np.ndarray, xcoords: np.ndarray, pool_size: int) -> np.ndarray:
    """(n, K) indices of each position's K nearest positions, itself first (Euclidean, pixels)."""
    n = len(ycoords)
    if pool_size > n:
        raise ValueError(f"neighbour pool K={pool_size} needs at least K positions, the view has {n}")
    tree = cKDTree(np.column_stack([ycoords, xcoords]))
    _, idx = tree.query(np.column_stack([ycoords, xcoords]), k=pool_size)
    return np.asarray(idx, dtype=np.int64).reshape(n, pool_size)


def draw_groups(
    ycoords: np.ndarray,
    xcoords: np.ndarray,
    group_size: int,
    pool_size: int,
    seed: int,
    n_groups: int | None = None,
    subsample_seed: int | None = None,
) -> np.ndarray:
    """(g, C) index groups: for each seed position, C distinct members of its K-nearest pool (seeded).

    Every position is a group seed unless ``n_groups`` is smaller than n; then ``n_groups`` seeds are drawn
    without replacement with ``subsample_seed``. Rows keep the seed position first.
    """
    if pool_size < group_size:
        raise ValueError(f"neighbour pool K={pool_size} must be >= group size C={group_size} (gridsize^2)")
    pools = neighbour_pools(ycoords, xcoords, pool_size)
    seeds = np.arange(len(ycoords))
    if n_groups is not None and n_groups < len(seeds):
        seeds = np.sort(np.random.default_rng(subsample_seed).choice(seeds, size=n_groups, replace=False))
    rng = np.random.default_rng(seed)
    picks = np.stack([1 + rng.permutation(pool_size - 1)[: group_size - 1] for _ in seeds]) if group_size > 1 else None
    first = pools[seeds, :1]
    return first if picks is None else np.concatenate([first, np.take_along_axis(pools[seeds], picks, axis=1)], axis=1)
