"""Properties of gridsize-2 grouping (docs/science.md "Reconstruction"), checked against brute-force nearest
neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from fly64_kedro.geometry.grouping import draw_groups, neighbour_pools

C, K = 4, 7


def random_scan(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 336, n), rng.uniform(0, 168, n)


def brute_pools(y: np.ndarray, x: np.ndarray, pool_size: int) -> np.ndarray:
    dist = np.hypot(y[:, None] - y[None, :], x[:, None] - x[None, :])
    return np.argsort(dist, axis=1, kind="stable")[:, :pool_size]


def test_neighbour_pools_match_brute_force() -> None:
    y, x = random_scan(200, seed=1)
    np.testing.assert_array_equal(neighbour_pools(y, x, K), brute_pools(y, x, K))


def test_each_group_is_c_distinct_members_of_its_seeds_k_nearest() -> None:
    y, x = random_scan(300, seed=2)
    groups = draw_groups(y, x, group_size=C, pool_size=K, seed=123)
    pools = brute_pools(y, x, K)
    assert groups.shape == (len(y), C)
    np.testing.assert_array_equal(groups[:, 0], np.arange(len(y)))
    for seed_index, row in enumerate(groups):
        assert len(set(row.tolist())) == C
        assert set(row.tolist()) <= set(pools[seed_index].tolist())


def test_groups_draw_from_the_whole_pool() -> None:
    y, x = random_scan(300, seed=3)
    groups = draw_groups(y, x, group_size=C, pool_size=K, seed=123)
    pools = brute_pools(y, x, K)
    ranks = {int(np.flatnonzero(pools[i] == m)[0]) for i, row in enumerate(groups) for m in row[1:]}
    assert ranks == set(range(1, K))


def test_groups_are_deterministic_under_the_seed_and_change_with_it() -> None:
    y, x = random_scan(150, seed=4)
    first = draw_groups(y, x, group_size=C, pool_size=K, seed=123)
    np.testing.assert_array_equal(first, draw_groups(y, x, group_size=C, pool_size=K, seed=123))
    assert not np.array_equal(first, draw_groups(y, x, group_size=C, pool_size=K, seed=124))


def test_pool_smaller_than_group_raises_naming_both() -> None:
    y, x = random_scan(20, seed=5)
    with pytest.raises(ValueError) as err:
        draw_groups(y, x, group_size=4, pool_size=3, seed=123)
    assert "K=3" in str(err.value) and "C=4" in str(err.value)


def test_pool_larger_than_view_raises() -> None:
    y, x = random_scan(5, seed=6)
    with pytest.raises(ValueError, match="K=7"):
        draw_groups(y, x, group_size=C, pool_size=K, seed=123)


def test_n_groups_subsampling_uses_subsample_seed() -> None:
    y, x = random_scan(200, seed=7)
    sub = draw_groups(y, x, group_size=C, pool_size=K, seed=123, n_groups=50, subsample_seed=1)
    assert sub.shape == (50, C)
    seeds = sub[:, 0]
    assert len(np.unique(seeds)) == 50 and np.all(np.diff(seeds) > 0)
    # The seed positions depend on subsample_seed only, not on the group-drawing seed.
    again = draw_groups(y, x, group_size=C, pool_size=K, seed=999, n_groups=50, subsample_seed=1)
    np.testing.assert_array_equal(again[:, 0], seeds)
    other = draw_groups(y, x, group_size=C, pool_size=K, seed=123, n_groups=50, subsample_seed=2)
    assert not np.array_equal(other[:, 0], seeds)
    pools = brute_pools(y, x, K)
    for row in sub:
        assert set(row.tolist()) <= set(pools[row[0]].tolist())


def test_n_groups_at_least_n_keeps_every_position_as_a_seed() -> None:
    y, x = random_scan(60, seed=8)
    full = draw_groups(y, x, group_size=C, pool_size=K, seed=123, n_groups=60, subsample_seed=1)
    np.testing.assert_array_equal(full, draw_groups(y, x, group_size=C, pool_size=K, seed=123))
