"""Properties of overlap-view selection (docs/science.md "Overlap views"), checked against brute-force distance
matrices."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy.spatial import cKDTree

from fly64_kedro.geometry.selection import (
    geometric_acceptance_bound,
    nearest_neighbour_distances,
    scan_area,
    select_direct,
    select_greedy,
    select_view,
    spacing_statistics,
)


def random_scan(n: int, seed: int, height: float = 336.0, width: float = 168.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, height, n), rng.uniform(0, width, n)


def grid_scan(rows: int, cols: int, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.meshgrid(np.arange(rows) * spacing, np.arange(cols) * spacing, indexing="ij")
    return y.ravel(), x.ravel()


def distance_matrix(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.sqrt((y[:, None] - y[None, :]) ** 2 + (x[:, None] - x[None, :]) ** 2)


def brute_greedy(y: np.ndarray, x: np.ndarray, threshold: float) -> np.ndarray:
    """O(n^2) reference: visit by (y, x), keep if >= threshold from every kept position."""
    dist = distance_matrix(y, x)
    mask = np.zeros(len(y), dtype=bool)
    for i in np.lexsort((x, y)):
        if not np.any(dist[i, mask] < threshold):
            mask[i] = True
    return mask


# Integer grid spacings make the distances exact, so thresholds equal to a grid distance test the ">=" boundary.
SCANS = {
    "random": random_scan(300, seed=7),
    "grid": grid_scan(9, 6, 20.0),
    "random_dense": random_scan(800, seed=11),
}
THRESHOLDS = [0.0, 5.0, 12.0, 20.0, 28.0, 40.0, 102.4]


@pytest.mark.parametrize("name", sorted(SCANS))
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_direct_keeps_exactly_positions_with_far_nearest_neighbour(name: str, threshold: float) -> None:
    y, x = SCANS[name]
    dist = distance_matrix(y, x)
    np.fill_diagonal(dist, np.inf)
    np.testing.assert_array_equal(select_direct(y, x, threshold), dist.min(axis=1) >= threshold)


@pytest.mark.parametrize("name", sorted(SCANS))
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_greedy_matches_brute_force_and_is_spaced_and_maximal(name: str, threshold: float) -> None:
    y, x = SCANS[name]
    mask = select_greedy(y, x, threshold)
    np.testing.assert_array_equal(mask, brute_greedy(y, x, threshold))
    dist = distance_matrix(y, x)
    kept = dist[np.ix_(mask, mask)]
    np.fill_diagonal(kept, np.inf)
    assert np.all(kept >= threshold)
    # Maximal: a rejected position is rejected only because a kept one is closer than the threshold.
    assert np.all((dist[np.ix_(~mask, mask)] < threshold).any(axis=1))


@pytest.mark.parametrize("threshold", [20.0, 28.0, 40.0])
def test_direct_kept_positions_are_spaced(threshold: float) -> None:
    for y, x in SCANS.values():
        mask = select_direct(y, x, threshold)
        kept = distance_matrix(y[mask], x[mask])
        np.fill_diagonal(kept, np.inf)
        assert np.all(kept >= threshold)


def test_grid_boundary_is_inclusive() -> None:
    y, x = grid_scan(5, 4, 20.0)
    assert select_direct(y, x, 20.0).all()
    assert not select_direct(y, x, 20.0 + 1e-9).any()
    assert select_greedy(y, x, 20.0).all()
    # Just above the spacing, greedy keeps a checkerboard: diagonal neighbours are 28.3 px apart.
    expected = (np.round(y / 20.0) + np.round(x / 20.0)) % 2 == 0
    np.testing.assert_array_equal(select_greedy(y, x, 20.0 + 1e-9), expected)


def test_greedy_is_permutation_equivariant() -> None:
    y, x = SCANS["random"]
    perm = np.random.default_rng(3).permutation(len(y))
    np.testing.assert_array_equal(select_greedy(y[perm], x[perm], 30.0), select_greedy(y, x, 30.0)[perm])


def test_greedy_keeps_first_visited_position() -> None:
    y, x = SCANS["random"]
    assert select_greedy(y, x, 1e6)[np.lexsort((x, y))[0]]
    assert select_greedy(y, x, 1e6).sum() == 1


def test_nearest_neighbour_distances_single_and_pair() -> None:
    assert np.array_equal(nearest_neighbour_distances(np.array([1.0]), np.array([2.0])), [np.inf])
    np.testing.assert_allclose(nearest_neighbour_distances(np.array([0.0, 3.0]), np.array([0.0, 4.0])), [5.0, 5.0])


@pytest.mark.parametrize("threshold", [38.4, 102.4])
def test_greedy_on_5000_random_positions_is_fast_spaced_and_maximal(threshold: float) -> None:
    y, x = random_scan(5000, seed=2024)
    start = time.perf_counter()
    mask = select_greedy(y, x, threshold)
    elapsed = time.perf_counter() - start
    kept = np.column_stack([y[mask], x[mask]])
    rejected = np.column_stack([y[~mask], x[~mask]])
    nn_kept = nearest_neighbour_distances(kept[:, 0], kept[:, 1])
    assert np.all(nn_kept >= threshold)
    nearest_kept, _ = cKDTree(kept).query(rejected, k=1)
    assert np.all(nearest_kept < threshold)
    # Generous bound for slow CI machines; typical runs take a few tens of milliseconds.
    assert elapsed < 1.0


@pytest.mark.parametrize("threshold", [10.0, 38.4, 102.4])
def test_select_view_bookkeeping_and_determinism(threshold: float) -> None:
    y, x = SCANS["random_dense"]
    first, second = select_view(y, x, threshold), select_view(y, x, threshold)
    np.testing.assert_array_equal(first.mask, second.mask)
    assert (first.strategy, first.acceptance_rate, first.direct_rate) == (
        second.strategy,
        second.acceptance_rate,
        second.direct_rate,
    )
    assert first.n_accepted + first.n_rejected == len(y)
    assert first.n_accepted == first.mask.sum()
    assert first.acceptance_rate == pytest.approx(first.n_accepted / len(y))
    assert first.direct_rate == pytest.approx(select_direct(y, x, threshold).mean())
    assert first.spacing_threshold == threshold


def test_select_view_switches_to_greedy_below_min_direct_rate() -> None:
    y, x = SCANS["random_dense"]
    view = select_view(y, x, 38.4)
    assert view.direct_rate < 0.10
    assert view.strategy == "greedy"
    np.testing.assert_array_equal(view.mask, select_greedy(y, x, 38.4))


def test_select_view_stays_direct_at_or_above_min_direct_rate() -> None:
    y, x = SCANS["random"]
    rate = select_direct(y, x, 12.0).mean()
    assert 0.10 <= rate < 1.0
    view = select_view(y, x, 12.0)
    assert view.strategy == "direct"
    np.testing.assert_array_equal(view.mask, select_direct(y, x, 12.0))
    # The floor is strict: a rate equal to the floor stays direct, just above it switches.
    assert select_view(y, x, 12.0, min_direct_rate=rate).strategy == "direct"
    assert select_view(y, x, 12.0, min_direct_rate=np.nextafter(rate, 1.0)).strategy == "greedy"


def test_select_view_rejects_empty_scan() -> None:
    with pytest.raises(ValueError, match="zero positions"):
        select_view(np.array([]), np.array([]), 10.0)


@pytest.mark.parametrize("name", sorted(SCANS))
def test_spacing_statistics_match_brute_force(name: str) -> None:
    y, x = SCANS[name]
    dist = distance_matrix(y, x)[np.triu_indices(len(y), k=1)]
    stats = spacing_statistics(y, x)
    assert stats["spacing_min"] == pytest.approx(dist.min())
    assert stats["spacing_max"] == pytest.approx(dist.max())
    assert stats["spacing_mean"] == pytest.approx(dist.mean())
    assert stats["spacing_median"] == pytest.approx(np.median(dist))


def test_spacing_statistics_subsampled_keeps_exact_extremes_and_estimates_centre() -> None:
    y, x = SCANS["random_dense"]
    dist = distance_matrix(y, x)[np.triu_indices(len(y), k=1)]
    stats = spacing_statistics(y, x, max_pairs=50_000, seed=5)
    assert stats["spacing_min"] == pytest.approx(dist.min())
    assert stats["spacing_max"] == pytest.approx(dist.max())
    assert stats["spacing_mean"] == pytest.approx(dist.mean(), rel=0.02)
    assert stats["spacing_median"] == pytest.approx(np.median(dist), rel=0.02)
    assert stats == spacing_statistics(y, x, max_pairs=50_000, seed=5)
    assert stats != spacing_statistics(y, x, max_pairs=50_000, seed=6)


def test_spacing_statistics_subsampled_on_collinear_positions() -> None:
    y = np.arange(400, dtype=float) * 3.0
    stats = spacing_statistics(y, 2.0 * y, max_pairs=1000, seed=1)
    assert stats["spacing_min"] == pytest.approx(3.0 * math.sqrt(5))
    assert stats["spacing_max"] == pytest.approx(399 * 3.0 * math.sqrt(5))


@pytest.mark.parametrize("n", [0, 1])
def test_spacing_statistics_nan_below_two_positions(n: int) -> None:
    stats = spacing_statistics(np.zeros(n), np.zeros(n))
    assert set(stats) == {"spacing_min", "spacing_max", "spacing_mean", "spacing_median"}
    assert all(math.isnan(v) for v in stats.values())


def test_geometric_acceptance_bound() -> None:
    area, n = 336.0 * 168.0, 5088
    uncapped = area / (n * math.pi * (38.4 / 2) ** 2)
    assert uncapped < 0.10
    assert geometric_acceptance_bound(area, n, 38.4) == pytest.approx(uncapped)
    assert geometric_acceptance_bound(area, n, 1.0) == 0.10
    assert geometric_acceptance_bound(area, n, 1.0, cap=math.inf) == pytest.approx(area / (n * math.pi * 0.25))
    bounds = [geometric_acceptance_bound(area, n, s, cap=math.inf) for s in (5.0, 10.0, 20.0, 40.0)]
    assert np.all(np.diff(bounds) < 0)
    with pytest.raises(ValueError):
        geometric_acceptance_bound(area, 0, 38.4)


def test_scan_area_is_bounding_box_and_translation_invariant() -> None:
    y, x = SCANS["random"]
    assert scan_area(y, x) == pytest.approx((y.max() - y.min()) * (x.max() - x.min()))
    assert scan_area(y + 17.0, x - 4.0) == pytest.approx(scan_area(y, x))
    assert scan_area(*grid_scan(9, 6, 20.0)) == pytest.approx(160.0 * 100.0)
