"""Measured overlap of a view (docs/science.md "Overlap views"): disc overlap, image-based and group-based (gridsize
2) overlap.

Distances and the probe diameter D are in pixels; overlaps are fractions of one disc's area (0..1).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree

from fly64_kedro.geometry.grouping import draw_groups


def disc_overlap(d: np.ndarray | float, diameter: float) -> np.ndarray:
    """Overlap fraction A(d) / (pi R^2) of two discs of ``diameter`` D (px) at centre distance ``d`` (px); 0 for d >= D.

    With u = d / D this is (2 / pi) (acos(u) - u sqrt(1 - u^2)): f(0) = 1, f(R) = 0.391, f(D) = 0.
    """
    if diameter <= 0:
        raise ValueError(f"disc diameter must be > 0 px, got {diameter}")
    d = np.asarray(d, dtype=np.float64)
    if np.any(d < 0):
        raise ValueError("centre distances must be >= 0 px")
    u = np.minimum(d / diameter, 1.0)
    return (2.0 / math.pi) * (np.arccos(u) - u * np.sqrt(1.0 - u * u))


def image_overlap(ycoords: np.ndarray, xcoords: np.ndarray, diameter: float, k: int = 7) -> float:
    """Mean over positions of the mean disc overlap with its ``k`` nearest other positions (all others if fewer).

    Probe ``diameter`` in px; 0.0 for fewer than two positions.
    """
    pts = np.column_stack([np.asarray(ycoords, dtype=np.float64), np.asarray(xcoords, dtype=np.float64)])
    n = len(pts)
    if n < 2:
        return 0.0
    k_eff = min(k, n - 1)
    dist, _ = cKDTree(pts).query(pts, k=k_eff + 1)
    # Drop column 0, the position itself (a duplicate position would tie at 0 px, giving the same distances).
    return float(disc_overlap(dist.reshape(n, k_eff + 1)[:, 1:], diameter).mean())


def group_overlap(
    ycoords: np.ndarray,
    xcoords: np.ndarray,
    diameter: float,
    group_size: int = 4,
    pool_size: int = 7,
    seed: int = 123,
) -> float:
    """Mean over gridsize-2 groups (``draw_groups``) of the mean pairwise disc overlap between group members.

    Probe ``diameter`` in px. NaN when the view has fewer than ``pool_size`` positions: no groups can be drawn.
    """
    if group_size < 2:
        raise ValueError(f"group overlap needs group size C >= 2 (pairs within a group), got C={group_size}")
    if len(ycoords) < pool_size:
        return math.nan
    groups = draw_groups(ycoords, xcoords, group_size=group_size, pool_size=pool_size, seed=seed)
    pts = np.column_stack([np.asarray(ycoords, dtype=np.float64), np.asarray(xcoords, dtype=np.float64)])
    a, b = np.triu_indices(group_size, k=1)
    members = pts[groups]  # (g, C, 2)
    dist = np.linalg.norm(members[:, a] - members[:, b], axis=-1)  # (g, C(C-1)/2)
    return float(disc_overlap(dist, diameter).mean(axis=1).mean())
