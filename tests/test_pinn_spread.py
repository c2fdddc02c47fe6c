"""The spread benchmark (benchmarks/pinn_spread.py) on tiny data: a seed repeated gives the same R2 (seeded,
deterministic training), another seed a different one, and the summary's spread is max - min."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from session import PROJECT_ROOT, run_session

pytestmark = pytest.mark.slow


def test_same_seed_same_score_other_seed_other_score(tmp_path: Path) -> None:
    run_session(tmp_path, pipeline_names=["generation", "overlap"])
    out = tmp_path / "spread.json"
    command = [sys.executable, str(PROJECT_ROOT / "benchmarks" / "pinn_spread.py"), str(tmp_path), "--env", "tiny"]
    command += ["--dose", "d1e5", "--label", "pinn_gs1", "--seeds", "7", "7", "8", "--set", "epochs=2"]
    command += ["--out", str(out)]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    first, again, other = (row["phase_r2"] for row in result["rows"])
    assert first == again and other != first
    summary = result["summary"]["all"]
    assert summary["spread"] == pytest.approx(max(first, other) - min(first, other))
    assert result["rows"][0]["epochs_run"] == 2 and "phase R2" in done.stdout
    assert len(result["rows"][0]["history"]["loss"]) == 2 and result["rows"][0]["stop_reason"].startswith("epoch")
    assert isinstance(result["rows"][0]["rollback_epochs"], list) and "rollbacks " in done.stdout
