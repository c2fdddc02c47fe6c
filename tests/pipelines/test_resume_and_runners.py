"""Resume with --only-missing-outputs, and the Dask and Engine runners against SequentialRunner (tiny profile)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from session import run_session

from fly64_kedro.datasets import NPZDataset

pytestmark = pytest.mark.slow


def npz_files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*.npz"))}


def assert_same_arrays(a: Path, b: Path) -> None:
    left, right = (
        NPZDataset(filepath=str(a), contract="ptycho").load(),
        NPZDataset(filepath=str(b), contract="ptycho").load(),
    )
    assert set(left) == set(right)
    for key in left:
        np.testing.assert_array_equal(left[key], right[key], err_msg=f"{a.name}:{key}")


def test_resume_redoes_only_missing_outputs(tmp_path: Path) -> None:
    run_session(tmp_path, pipeline_names=["generation", "overlap"])
    files = npz_files(tmp_path)
    deleted = ["03_primary/d1e4/dense_train.npz", "03_primary/d1e5/full_test.npz"]
    saved = {rel: files[rel].read_bytes() for rel in deleted}
    stamps = {rel: p.stat().st_mtime_ns for rel, p in files.items() if rel not in deleted}
    for rel in deleted:
        files[rel].unlink()
    run_session(tmp_path, pipeline_names=["generation", "overlap"], only_missing_outputs=True)
    for rel, stamp in stamps.items():
        changed = files[rel].stat().st_mtime_ns != stamp
        # The d1e5 test split is re-made by its node, which also writes the train split; nothing else reruns.
        assert changed == (rel in {"03_primary/d1e5/full_train.npz"}), rel
    for rel, content in saved.items():
        reference = tmp_path / f"{Path(rel).stem}.reference.npz"
        reference.write_bytes(content)
        assert_same_arrays(reference, tmp_path / rel)


def test_dask_runner_matches_sequential_runner(tmp_path: Path) -> None:
    from fly64_kedro.runners import DaskRunner

    sequential, dask = tmp_path / "sequential", tmp_path / "dask"
    run_session(sequential, pipeline_names=["generation", "overlap"])
    run_session(dask, pipeline_names=["generation", "overlap"], runner=DaskRunner(n_workers=2))
    left, right = npz_files(sequential), npz_files(dask)
    assert set(left) == set(right) and len(left) > 10
    for rel in left:
        if "01_raw" not in rel:
            assert_same_arrays(left[rel], right[rel])


def test_parallel_runner_runs_both_engines_and_exits(tmp_path: Path, monkeypatch) -> None:
    """Spawned ParallelRunner workers each start their engine workers and still exit (no hang at shutdown)."""
    from kedro.runner import ParallelRunner

    monkeypatch.setenv("KEDRO_MP_CONTEXT", "spawn")
    run_session(tmp_path, pipeline_names=["generation", "overlap"])
    jobs = ["d1e5.lsqml_sparse_test", "d1e5.train_pinn_gs1_sparse", "d1e5.train_pinn_gs2_sparse"]
    run_session(tmp_path, runner=ParallelRunner(max_workers=2), node_names=jobs)
    lsqml = NPZDataset(filepath=str(tmp_path / "07_model_output/d1e5/sparse_test_lsqml.npz"), contract="reconstruction")
    model = NPZDataset(filepath=str(tmp_path / "07_model_output/d1e5/sparse_pinn_gs2_model.npz"), contract="model")
    assert lsqml.load().status == "ok" and model.load().status == "ok"


def test_engine_runner_matches_sequential_runner(tmp_path: Path) -> None:
    """`kedro run`'s default runner (two jobs at a time, two processes per engine) gives the sequential numbers."""
    from kedro.runner import SequentialRunner

    from fly64_kedro.runners import EngineRunner

    sequential, engine = tmp_path / "sequential", tmp_path / "engine"
    run_session(sequential, pipeline_names=["generation", "overlap"], runner=SequentialRunner())
    shutil.copytree(sequential, engine)
    jobs = ["d1e5.lsqml_sparse_test", *(f"{d}.train_pinn_gs{g}_sparse" for d in ("d1e5", "d1e4") for g in (1, 2))]
    run_session(sequential, runner=SequentialRunner(), node_names=jobs)
    run_session(engine, runner=EngineRunner(max_workers=2), node_names=jobs)
    outputs = {
        "07_model_output/d1e5/sparse_test_lsqml.npz": "reconstruction",
        "07_model_output/d1e5/sparse_pinn_gs2_model.npz": "model",
        "07_model_output/d1e4/sparse_pinn_gs2_model.npz": "model",
        "07_model_output/d1e4/sparse_pinn_gs1_model.npz": "model",
    }
    for rel, contract in outputs.items():
        left = NPZDataset(filepath=str(sequential / rel), contract=contract).load()
        right = NPZDataset(filepath=str(engine / rel), contract=contract).load()
        assert left.meta["status"] == right.meta["status"] == "ok", rel
        assert set(left) == set(right)
        for key in left:
            np.testing.assert_array_equal(left[key], right[key], err_msg=f"{rel}:{key}")


def test_kedro_run_defaults_to_the_engine_runner() -> None:
    from kedro.framework.cli.project import run as kedro_run

    from fly64_kedro.cli import DEFAULT_RUNNER, cli
    from fly64_kedro.runners import EngineRunner

    run = cli.commands["run"]
    defaults = {param.name: param.default for param in run.params}
    assert defaults["runner"] == DEFAULT_RUNNER == "fly64_kedro.runners.EngineRunner"
    assert EngineRunner().processes_per_engine == 2
    # every other option is Kedro's own, and Kedro's command is left as it was
    assert {k: v for k, v in defaults.items() if k != "runner"} == {
        param.name: param.default for param in kedro_run.params if param.name != "runner"
    }
    assert next(param for param in kedro_run.params if param.name == "runner").default is None
