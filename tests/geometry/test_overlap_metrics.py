"""Properties of the measured-overlap metrics (docs/science.md "Overlap views")."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from fly64_kedro.geometry.grouping import draw_groups
from fly64_kedro.geometry.overlap_metrics import disc_overlap, group_overlap, image_overlap

D = 64.0
R = D / 2


def lens_fraction_by_quadrature(d: float, diameter: float) -> float:
    """Independent reference: the lens of two radius-r discs at distance d is 4 * int_{d/2}^{r} sqrt(r^2 - t^2) dt."""
    r = diameter / 2
    if d >= diameter:
        return 0.0
    area, _ = quad(lambda t: math.sqrt(max(r * r - t * t, 0.0)), d / 2, r)
    return 4 * area / (math.pi * r * r)


def test_disc_overlap_reference_points() -> None:
    assert disc_overlap(0.0, D) == pytest.approx(1.0)
    assert disc_overlap(R, D) == pytest.approx(0.391, abs=1e-3)
    assert disc_overlap(D, D) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_array_equal(disc_overlap(np.array([D + 1e-9, 1.5 * D, 10 * D]), D), 0.0)


@pytest.mark.parametrize("d", [0.0, 3.0, 17.5, 32.0, 50.0, 63.9, 64.0, 80.0])
def test_disc_overlap_matches_quadrature(d: float) -> None:
    assert float(disc_overlap(d, D)) == pytest.approx(lens_fraction_by_quadrature(d, D), abs=1e-7)


def test_disc_overlap_is_vectorised_monotone_and_scale_free() -> None:
    d = np.linspace(0.0, D, 257)
    f = disc_overlap(d, D)
    assert f.shape == d.shape
    assert np.all(np.diff(f) < 0)
    assert np.all((f >= 0) & (f <= 1))
    np.testing.assert_allclose(disc_overlap(3.0 * d, 3.0 * D), f, atol=1e-12)
    grid = np.random.default_rng(0).uniform(0, 2 * D, (4, 5))
    assert disc_overlap(grid, D).shape == (4, 5)


def test_disc_overlap_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        disc_overlap(1.0, 0.0)
    with pytest.raises(ValueError):
        disc_overlap(np.array([-1.0, 2.0]), D)


@pytest.mark.parametrize("d", [0.0, 10.0, R, 60.0, D, 90.0])
def test_image_overlap_of_two_positions_is_the_disc_overlap(d: float) -> None:
    assert image_overlap(np.array([5.0, 5.0 + d * 0.6]), np.array([1.0, 1.0 + d * 0.8]), D) == pytest.approx(
        float(disc_overlap(d, D)), abs=1e-12
    )


@pytest.mark.parametrize("k", [1, 3, 7, 50])
def test_image_overlap_matches_brute_force(k: int) -> None:
    rng = np.random.default_rng(4)
    y, x = rng.uniform(0, 200, 40), rng.uniform(0, 100, 40)
    dist = np.hypot(y[:, None] - y[None, :], x[:, None] - x[None, :])
    np.fill_diagonal(dist, np.inf)
    nearest = np.sort(dist, axis=1)[:, : min(k, len(y) - 1)]
    expected = np.mean([disc_overlap(row, D).mean() for row in nearest])
    assert image_overlap(y, x, D, k=k) == pytest.approx(expected, abs=1e-12)


def test_image_overlap_of_a_regular_grid_with_k1_is_the_disc_overlap_at_the_spacing() -> None:
    # Every grid position, edge or interior, has its nearest neighbour exactly one spacing away.
    y, x = np.meshgrid(np.arange(6) * 20.0, np.arange(4) * 20.0, indexing="ij")
    assert image_overlap(y.ravel(), x.ravel(), D, k=1) == pytest.approx(float(disc_overlap(20.0, D)))


@pytest.mark.parametrize("n", [0, 1])
def test_image_overlap_below_two_positions_is_zero(n: int) -> None:
    assert image_overlap(np.zeros(n), np.zeros(n), D) == 0.0


def test_group_overlap_of_one_square_group() -> None:
    s = 20.0
    y, x = np.array([0.0, 0.0, s, s]), np.array([0.0, s, 0.0, s])
    expected = (4 * disc_overlap(s, D) + 2 * disc_overlap(s * math.sqrt(2), D)) / 6
    assert group_overlap(y, x, D, group_size=4, pool_size=4) == pytest.approx(float(expected))


@pytest.mark.parametrize("seed", [123, 9])
def test_group_overlap_matches_brute_force_over_drawn_groups(seed: int) -> None:
    rng = np.random.default_rng(8)
    y, x = rng.uniform(0, 300, 120), rng.uniform(0, 150, 120)
    groups = draw_groups(y, x, group_size=4, pool_size=7, seed=seed)
    per_group = [
        np.mean([disc_overlap(math.hypot(y[a] - y[b], x[a] - x[b]), D) for i, a in enumerate(g) for b in g[i + 1 :]])
        for g in groups
    ]
    assert group_overlap(y, x, D, seed=seed) == pytest.approx(float(np.mean(per_group)), abs=1e-12)
    assert group_overlap(y, x, D, seed=seed) == group_overlap(y, x, D, seed=seed)


def test_group_overlap_is_nan_below_pool_size() -> None:
    assert math.isnan(group_overlap(np.arange(6.0), np.zeros(6), D, pool_size=7))
    assert not math.isnan(group_overlap(np.arange(7.0), np.zeros(7), D, pool_size=7))


def test_group_overlap_rejects_groups_without_pairs() -> None:
    with pytest.raises(ValueError, match="C=1"):
        group_overlap(np.arange(10.0), np.zeros(10), D, group_size=1)
