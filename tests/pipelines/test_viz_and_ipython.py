"""Lineage in kedro-viz (static build) and interactive use through the Kedro IPython extension."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from session import PROJECT_ROOT, run_session

from fly64_kedro.study import DOSES

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ENV = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}


def test_viz_build_graph_has_the_four_pipelines_and_dose_namespaces() -> None:
    subprocess.run([str(BIN / "kedro"), "viz", "build"], cwd=PROJECT_ROOT, env=ENV, check=True, capture_output=True)
    graph = json.loads((PROJECT_ROOT / "build/api/main").read_text())
    pipelines = {p["id"] for p in graph["pipelines"]}
    assert {"generation", "overlap", "reconstruction", "comparison", "__default__"} <= pipelines
    assert set(DOSES) <= set(graph["modular_pipelines"])
    names = {n["full_name"] for n in graph["nodes"] if n["type"] == "task"}
    for dose in DOSES:
        assert {
            f"{dose}.simulate_diffraction",
            f"{dose}.select_dense_train",
            f"{dose}.lsqml_full_test",
            f"{dose}.train_pinn_gs2_dense",
            f"{dose}.compare_full_test",
        } <= names
    assert {"raw", "intermediate", "primary", "model_output", "reporting"} <= {layer for layer in graph["layers"]}
    datasets = {n["name"]: n for n in graph["nodes"] if n["type"] == "data"}
    assert datasets["d1e3.dense.train.ptycho"]["layer"] == "primary"


def test_ipython_extension_loads_catalog_and_a_dataset(tmp_path: Path) -> None:
    run_session(tmp_path, node_names=["make_synthetic_base"])
    script = tmp_path / "poke.ipy"
    script.write_text(
        "%load_ext kedro.ipython\n"
        f"%reload_kedro {PROJECT_ROOT} --env=tiny --params=data_root={tmp_path}\n"
        "base = catalog.load('base')\n"
        "print('SHAPE', base['objectGuess'].shape, 'PIPELINES', sorted(pipelines))\n"
    )
    out = subprocess.run(
        [str(BIN / "ipython"), "--no-banner", str(script)],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "SHAPE (160, 160)" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    assert "'comparison'" in out.stdout
