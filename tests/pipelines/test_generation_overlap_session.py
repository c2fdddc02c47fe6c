"""Session runs of generation and overlap into a temporary data root (tiny profile)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from session import run_session

from fly64_kedro.datasets import NPZDataset
from fly64_kedro.study import DERIVED_VIEWS, DOSES, SPLITS, VIEWS, ParameterError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("study")
    run_session(root, pipeline_names=["generation", "overlap"])
    return root


def load(root: Path, rel: str, contract: str = "ptycho"):
    return NPZDataset(filepath=str(root / rel), contract=contract).load()


def test_generation_writes_every_dose_and_split(study_root: Path) -> None:
    assert (study_root / "01_raw/synthetic_base.npz").exists()
    for dose in DOSES:
        sim = load(study_root, f"02_intermediate/{dose}/simulated.npz")
        train = load(study_root, f"03_primary/{dose}/full_train.npz")
        test = load(study_root, f"03_primary/{dose}/full_test.npz")
        assert train.meta["n_train"] + train.meta["n_test"] + train.meta["n_dropped_guard_band"] == len(sim["xcoords"])
        assert test["ycoords"].min() - train["ycoords"].max() >= sim.meta["N"]
        counts = (sim["diffraction"].astype(np.float64) * sim.meta["scale"]) ** 2
        n = len(counts)
        assert abs(counts.sum(axis=(1, 2)).mean() - sim.meta["dose"]) < 3 * np.sqrt(sim.meta["dose"] / n)


def test_overlap_views_respect_spacing_and_manifest_lists_all(study_root: Path) -> None:
    manifest = pd.read_csv(study_root / "08_reporting/overlap_manifest.csv")
    assert len(manifest) == len(DOSES) * len(VIEWS) * len(SPLITS)
    for dose in DOSES:
        for view in DERIVED_VIEWS:
            for split in SPLITS:
                rec = load(study_root, f"03_primary/{dose}/{view}_{split}.npz")
                pts = np.column_stack([rec["ycoords"], rec["xcoords"]])
                d = np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1))
                np.fill_diagonal(d, np.inf)
                assert d.min() >= rec.meta["spacing_threshold"]
                full = load(study_root, f"03_primary/{dose}/full_{split}.npz")
                assert rec.meta["n_accepted"] + rec.meta["n_rejected"] == len(full["xcoords"])
                row = manifest[(manifest.dose_label == dose) & (manifest.view == view) & (manifest.split == split)]
                assert int(row.n_positions.iloc[0]) == len(rec["xcoords"])
                assert row.status.iloc[0] == rec.meta["status"]
                for field in (
                    "selection_strategy",
                    "acceptance_rate",
                    "spacing_threshold",
                    "n_accepted",
                    "n_rejected",
                    "spacing_min",
                    "spacing_max",
                    "spacing_mean",
                    "spacing_median",
                    "acceptance_bound",
                    "image_overlap",
                    "group_overlap",
                ):
                    assert field in rec.meta, field


def test_same_seed_gives_identical_arrays(study_root: Path, tmp_path: Path) -> None:
    run_session(
        tmp_path, pipeline_names=["generation"], node_names=["make_synthetic_base", "d1e3.simulate_diffraction"]
    )
    again = load(tmp_path, "02_intermediate/d1e3/simulated.npz")
    first = load(study_root, "02_intermediate/d1e3/simulated.npz")
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])


def test_invalid_study_parameter_stops_the_run_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"study.neighbour_pool.*K must be an integer >= C = gridsize\^2 = 4"):
        run_session(tmp_path, params={"study": {"neighbour_pool": 3}}, pipeline_names=["generation"])
    assert not (tmp_path / "01_raw").exists()


def test_invalid_lsqml_setting_stops_the_run_before_any_node(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"reconstruction.lsqml.*'noise_model' must be one of"):
        run_session(
            tmp_path, params={"reconstruction": {"lsqml": {"noise_model": "laplace"}}}, pipeline_names=["generation"]
        )
    assert not (tmp_path / "01_raw").exists()


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"reconstruction": {"pinn": {"epoch": 3}}}, "reconstruction.pinn.epoch"),  # misspelt
        ({"comparison": {"pinn": {"epochs": 50}}}, "comparison.pinn"),  # misnested (was in conf/paper once)
    ],
    ids=["misspelt", "misnested"],
)
def test_parameter_the_base_does_not_define_stops_the_run_naming_it(tmp_path: Path, override, named) -> None:
    with pytest.raises(ParameterError, match=rf"'{named}'.*not defined in conf/base.*'tiny'"):
        run_session(tmp_path, params=override, pipeline_names=["generation"])
    assert not (tmp_path / "01_raw").exists()
