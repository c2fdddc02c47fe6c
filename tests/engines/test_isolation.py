"""TensorFlow and torch/pty-chi never share an interpreter: LSQML runs in the torch worker of a TF-importing process.

Control: on this stack ``import tensorflow`` followed by ``import torchvision`` (which pty-chi imports) in ONE
interpreter dies with SIGSEGV. The project therefore keeps torch in a spawned worker; the parent, which may have
imported TensorFlow first, must never import torch itself (not even to unpickle an exception from the worker).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

# Run with -c: a spawned worker re-imports a parent *script* as __mp_main__ (which would import TF there too).
_CHILD = r"""
import sys
import tensorflow  # first, as in a Kedro process that has already used the PINN engine
import numpy as np
from fly64_kedro.engines.lsqml import NonFiniteReconstruction
from fly64_kedro.engines.workers import run_in_worker, shutdown
from fly64_kedro.physics.synthetic_object import focused_probe, synthetic_fly_object
from fly64_kedro.physics.forward import extract_patches, far_field_amplitude

obj = synthetic_fly_object((96, 96), 3)
probe = focused_probe(32)
grid = np.arange(20.0, 77.0, 8.0)
y, x = (a.ravel() for a in np.meshgrid(grid, grid, indexing="ij"))
diffraction = far_field_amplitude(extract_patches(obj, y, x, 32) * probe)
settings = {"epochs": 4, "batch_size": 16, "noise_model": "gaussian", "refine_probe": False, "log_every": 2}
target = "fly64_kedro.engines.lsqml:reconstruct"
out = run_in_worker("torch", target, diffraction, y, x, probe, obj.shape, settings, job="iso")
assert np.isfinite(out["object"]).all(), "non-finite object"
try:  # a NaN result: the exception raised in the worker is unpickled here, torch-free
    run_in_worker("torch", target, diffraction, y, x, 0 * probe, obj.shape, settings, job="iso-nan")
    raise AssertionError("a zero-probe job should fail")
except NonFiniteReconstruction:
    pass
leaked = sorted(name for name in ("torch", "torchvision", "ptychi") if name in sys.modules)
assert not leaked, f"imported in the main process: {leaked}"
shutdown()
print("ISOLATION-OK")
"""


def test_lsqml_runs_in_worker_after_tensorflow_import_and_parent_never_imports_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD], check=False, capture_output=True, text=True, timeout=300, env=_ENV
    )
    assert result.returncode == 0, f"rc={result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "ISOLATION-OK" in result.stdout


def test_control_tensorflow_then_torchvision_in_one_interpreter_crashes() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import tensorflow; import torchvision"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=_ENV,
    )
    if result.returncode == 0:
        pytest.skip("control: 'import tensorflow; import torchvision' did not crash on this machine")
    assert result.returncode < 0, f"expected death by a signal (SIGSEGV), got rc={result.returncode}\n{result.stderr}"
