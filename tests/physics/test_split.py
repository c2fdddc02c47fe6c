"""The y-split with a guard band (docs/science.md "Generation".6)."""

from __future__ import annotations

import numpy as np
import pytest

from fly64_kedro.pipelines.generation.nodes import make_synthetic_base, simulate_diffraction, split_train_test
from fly64_kedro.study import ParameterError

N = 32
STUDY = {"N": N, "split_axis": "y", "seeds": {"simulation": 42, "grouping": 123, "subsampling": 456}}
GEN = {"n_positions": 300, "chunk_size": 100, "poisson_noise": True, "guard_band": None}


@pytest.fixture(scope="module")
def simulated():
    base = make_synthetic_base({"object_shape": [128, 128], "aperture_fraction": 0.25, "defocus_waves": 2.0}, STUDY)
    return simulate_diffraction(base, 1e3, STUDY, GEN)


def test_halves_are_separated_by_at_least_n(simulated) -> None:
    train, test = split_train_test(simulated, STUDY, GEN)
    assert test["ycoords"].min() - train["ycoords"].max() >= N
    # The two halves never illuminate the same object rows.
    assert train["ycoords"].max() + N / 2 <= test["ycoords"].min() - N / 2


def test_only_the_guard_band_is_dropped_and_counts_are_recorded(simulated) -> None:
    train, test = split_train_test(simulated, STUDY, GEN)
    meta = train.meta
    y = simulated["ycoords"]
    in_band = np.abs(y - meta["split_point"]) < N / 2
    assert meta["n_train"] == len(train["ycoords"]) and meta["n_test"] == len(test["ycoords"])
    assert meta["n_train"] + meta["n_test"] + meta["n_dropped_guard_band"] == len(y)
    assert meta["n_dropped_guard_band"] == int(in_band.sum())
    kept = np.concatenate([train["scan_index"], test["scan_index"]])
    np.testing.assert_array_equal(np.sort(kept), np.flatnonzero(~in_band))
    assert meta["split_point"] == pytest.approx(0.5 * (y.min() + y.max()))


def test_split_rows_stay_consistent(simulated) -> None:
    train, _ = split_train_test(simulated, STUDY, GEN)
    idx = train["scan_index"]
    np.testing.assert_array_equal(train["diffraction"], simulated["diffraction"][idx])
    np.testing.assert_array_equal(train["Y"], simulated["Y"][idx])


def test_guard_band_narrower_than_probe_is_rejected(simulated) -> None:
    with pytest.raises(ParameterError, match="generation.guard_band"):
        split_train_test(simulated, STUDY, {**GEN, "guard_band": N / 2})
