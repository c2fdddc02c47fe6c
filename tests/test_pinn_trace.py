"""The per-epoch trace (benchmarks/pinn_trace.py) on tiny data: one score per epoch, moving as the network trains,
the best epoch's score is what the study's own inference gives for the restored weights, and scoring every epoch
leaves the training as the study's nodes run it (pinn_spread.py: same losses, same score)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from session import PROJECT_ROOT, run_session


def benchmark(script: str, root: Path, out: Path, *args: str) -> tuple[dict, str]:
    command = [sys.executable, str(PROJECT_ROOT / "benchmarks" / script), str(root), "--env", "tiny", "--dose", "d1e5"]
    command += ["--label", "pinn_gs2", "--set", "epochs=3", *args, "--out", str(out)]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(out.read_text()), done.stdout


@pytest.mark.slow
def test_trace_scores_every_epoch_and_its_best_epoch_matches_the_applied_model(tmp_path: Path) -> None:
    run_session(tmp_path, pipeline_names=["generation", "overlap"])
    args = ("--seed", "7", "--set", "threads=1", "--set", "warm_start_epochs=3")  # traced: the fine-tuning
    result, stdout = benchmark("pinn_trace.py", tmp_path, tmp_path / "trace.json", *args)
    rows = result["rows"]
    assert [row["epoch"] for row in rows] == [1, 2, 3] and len({row["phase_r2"] for row in rows}) == 3
    # epoch, loss, val_loss, lr, epoch_s, two scores, two health checks, two symmetry-averaged scores (off: NaN)
    assert all(len(row) == 11 and np.isnan(row["averaged_phase_r2"]) for row in rows)
    assert all(row["amplitude_spread"] >= 0 and 0 <= row["saturated"] <= 1 for row in rows)
    best = rows[result["best_epoch"]]
    assert best["phase_r2"] == pytest.approx(result["final_phase_r2"], abs=1e-6)
    assert best["amplitude_r2"] == pytest.approx(result["final_amplitude_r2"], abs=1e-6)
    assert "weights" not in result and "phase R2" in stdout
    args = ("--seeds", "7", "--threads", "1", "--set", "warm_start_epochs=3")
    spread, _ = benchmark("pinn_spread.py", tmp_path, tmp_path / "spread.json", *args)
    assert spread["rows"][0]["history"]["loss"] == [row["loss"] for row in rows]
    assert spread["rows"][0]["phase_r2"] == pytest.approx(result["final_phase_r2"], abs=1e-6)


def test_health_tells_a_constant_or_saturated_output_from_a_live_one() -> None:
    """The trace's two health numbers: spread 0 for a constant object, saturated 1 at an activation's bound."""
    spec = importlib.util.spec_from_file_location("pinn_trace", PROJECT_ROOT / "benchmarks" / "pinn_trace.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    health = module.health
    rng = np.random.default_rng(0)
    live = 0.5 * rng.uniform(0.2, 1.0, (6, 8, 8)) * np.exp(1j * rng.uniform(-1, 1, (6, 8, 8)))
    spread, saturated = health(live, "polar")
    assert spread == pytest.approx(np.std(np.abs(live), axis=0).mean()) and spread > 0.05 and saturated == 0
    assert health(np.broadcast_to(live[0], live.shape), "cartesian")[0] == pytest.approx(0, abs=1e-7)
    assert health(np.full((4, 8, 8), 0.995 + 0j), "polar")[1] == 1  # sigmoid amplitude at 1
    assert health(np.full((4, 8, 8), 0.005j), "polar")[1] == 1  # ... and at 0
    assert health(np.full((4, 8, 8), 0.995 + 0j), "polar", 2.0)[1] == 0  # mid-range when amplitude_range is 2
    assert health(np.full((4, 8, 8), 1.99 + 0j), "polar", 2.0)[1] == 1  # ... whose bound is 2
    assert health(np.full((4, 8, 8), 0.3 - 0.995j), "cartesian")[1] == 1  # tanh imaginary part at -1
    assert health(np.full((4, 8, 8), 0.3 - 0.995j), "cartesian", 2.0)[1] == 0  # ... mid-range at range 2
    assert health(np.full((4, 8, 8), 0.995 + 0.0j), "cartesian")[1] == 1 and health(live, "cartesian")[1] == 0
