"""The refinement benchmark (benchmarks/pinn_refine.py) on tiny data: its "before" is the study's own inference of the
study's model, and the refinement then moves the model's score."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from session import PROJECT_ROOT, load_catalog, run_session

from fly64_kedro.engines import workers
from fly64_kedro.pipelines.reconstruction.nodes import apply_model, train_model

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
from bar_r2 import compared_region, r2_scores  # noqa: E402

pytestmark = pytest.mark.slow


def test_refinement_starts_from_the_study_model_and_moves_its_score(tmp_path: Path) -> None:
    run_session(tmp_path, pipeline_names=["generation", "overlap"])
    catalog = load_catalog(tmp_path)
    study, pinn = catalog.load("params:study"), {**catalog.load("params:reconstruction.pinn"), "epochs": 2}
    train, test = (catalog.load(f"d1e5.full.{split}.ptycho") for split in ("train", "test"))
    try:
        teacher = train_model(train, pinn, study, "pinn_gs1")  # gridsize 2 starts from it, as in the study
        model = train_model(train, pinn, study, "pinn_gs2", teacher)
        assert model.meta["warm_start"]
        catalog.save("d1e5.full.pinn_gs2.model", model)  # where the study keeps it
        applied = apply_model(model, test, pinn, study, "pinn_gs2")
    finally:
        workers.shutdown()
    truth = test["objectGuess"]
    expected = r2_scores(
        applied["object"], truth, compared_region(test["ycoords"], test["xcoords"], test["probeGuess"], truth.shape)
    )

    out = tmp_path / "refine.json"
    command = [sys.executable, str(PROJECT_ROOT / "benchmarks" / "pinn_refine.py"), str(tmp_path), "--env", "tiny"]
    command += ["--dose", "d1e5", "--label", "pinn_gs2", "--set", "epochs=2", "--out", str(out)]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["before"] == pytest.approx(list(expected), abs=1e-6)
    assert result["after"] != result["before"] and len(result["history"]["loss"]) == 2
    assert result["settings"]["learning_rate"] == 1e-4 and "before refinement phase R2" in done.stdout
    assert "weights" not in result
