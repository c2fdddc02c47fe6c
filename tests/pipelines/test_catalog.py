"""Every dataset of every pipeline resolves to a declared catalog entry (no silent in-memory fallback)."""

from __future__ import annotations

from pathlib import Path

from kedro.framework.project import pipelines
from session import load_catalog

from fly64_kedro.study import DOSES, SPLITS, VIEWS


def test_no_dataset_falls_back_to_memory(tmp_path: Path) -> None:
    catalog = load_catalog(tmp_path)
    names = sorted(pipelines)
    assert {"generation", "overlap", "reconstruction", "comparison", "__default__"} <= set(names)
    described = catalog.describe_datasets(pipelines=names)
    for name, groups in described.items():
        defaults = {ds for group in groups["defaults"].values() for ds in group if not ds.startswith("params:")}
        assert not defaults, f"pipeline {name}: datasets without a catalog entry: {sorted(defaults)}"


def test_dataset_paths_follow_the_data_root_and_layers(tmp_path: Path) -> None:
    catalog = load_catalog(tmp_path)
    expected = {
        "base": "01_raw/synthetic_base.npz",
        "d1e4.simulated.ptycho": "02_intermediate/d1e4/simulated.npz",
        "d1e3.dense.test.ptycho": "03_primary/d1e3/dense_test.npz",
        "d1e5.sparse.train.lsqml": "07_model_output/d1e5/sparse_train_lsqml.npz",
        "d1e3.full.pinn_gs1.model": "07_model_output/d1e3/full_pinn_gs1_model.npz",
        "study_report": "08_reporting/report.html",
    }
    for name, tail in expected.items():
        described = catalog.get(name)._describe()
        assert str(described["filepath"]) == str(tmp_path / tail), name


def test_every_dose_namespace_instantiates_the_matrix() -> None:
    default = pipelines["__default__"]
    outputs = default.all_outputs()
    for dose in DOSES:
        for view in VIEWS:
            for split in SPLITS:
                assert f"{dose}.{view}.{split}.ptycho" in outputs
                assert f"{dose}.{view}.{split}.lsqml" in outputs
            assert f"{dose}.{view}.test.pinn_gs2" in outputs
            assert f"{dose}.{view}.test.pinn_gs1" in outputs


def test_gridsize_2_training_takes_the_same_views_gridsize_1_model() -> None:
    """The warm start's edge in the graph: each gridsize-2 training reads its own dose and view's gridsize-1 model."""
    default = pipelines["__default__"]
    for dose in DOSES:
        for view in VIEWS:
            (node,) = [n for n in default.nodes if f"{dose}.{view}.pinn_gs2.model" in n.outputs]
            assert f"{dose}.{view}.pinn_gs1.model" in node.inputs
            assert f"{dose}.{view}.train.ptycho" in node.inputs
