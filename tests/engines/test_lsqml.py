"""pty-chi LSQML through the torch worker: convergence in the project's frame and units, failures, settings.

Data are simulated with the project's physics (physics/synthetic_object.py, physics/forward.py) at a high dose, so
a correct mapping of units and positions gives a reconstruction close to the truth, in place, at the true amplitude
scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from skimage.registration import phase_cross_correlation

from fly64_kedro.engines.lsqml import NonFiniteReconstruction, plateaued
from fly64_kedro.engines.workers import run_in_worker
from fly64_kedro.physics.forward import extract_patches, simulate_patterns
from fly64_kedro.physics.synthetic_object import focused_probe, synthetic_fly_object

pytestmark = pytest.mark.slow

TARGET = "fly64_kedro.engines.lsqml:reconstruct"
SHAPE = (128, 128)
N = 32
SETTINGS = {"epochs": 40, "batch_size": 32, "noise_model": "gaussian", "refine_probe": False, "log_every": 20}


def _simulate(seed: int = 7, dose: float = 1e7) -> dict[str, Any]:
    """144 positions on an 8-px grid jittered by up to 1.5 px; Poisson counts; stored amplitude sqrt(counts)/s."""
    rng = np.random.default_rng(seed)
    obj = synthetic_fly_object(SHAPE, seed)
    probe = focused_probe(N)
    grid = np.arange(N / 2 + 2, SHAPE[0] - N / 2 - 2 + 1e-9, 8.0)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    y = yy.ravel() + rng.uniform(-1.5, 1.5, yy.size)
    x = xx.ravel() + rng.uniform(-1.5, 1.5, xx.size)
    diffraction, _ = simulate_patterns(extract_patches(obj, y, x, N), probe, dose, rng)
    return {"obj": obj, "probe": probe, "y": y, "x": x, "diffraction": diffraction}


def _scanned(data: dict[str, Any]) -> tuple[slice, slice]:
    """The box spanned by the scan centres: every pixel in it is well inside the illuminated area."""
    y, x = data["y"], data["x"]
    return (
        slice(int(np.ceil(y.min())), int(np.floor(y.max())) + 1),
        slice(int(np.ceil(x.min())), int(np.floor(x.max())) + 1),
    )


def _fit(rec: np.ndarray, truth: np.ndarray) -> tuple[float, complex]:
    """Complex NRMSE after the least-squares complex scale c (global phase offset and amplitude), and c."""
    c = np.vdot(rec, truth) / np.vdot(rec, rec)
    return float(np.linalg.norm(c * rec - truth) / np.linalg.norm(truth)), complex(c)


def _reconstruct(data: dict[str, Any], settings: dict[str, Any], job: str = "test") -> dict[str, Any]:
    return run_in_worker(
        "torch", TARGET, data["diffraction"], data["y"], data["x"], data["probe"], SHAPE, settings, job=job
    )


def _in_worker(expression: str) -> Any:
    """Evaluate a torch expression in the torch worker; only plain Python values come back (torch stays out)."""
    return run_in_worker("torch", "builtins:eval", expression)


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return _simulate()


def test_reconstruction_lands_in_project_frame_and_units(data: dict[str, Any]) -> None:
    out = _reconstruct(data, SETTINGS)
    box = _scanned(data)
    truth = data["obj"][box]
    err, c = _fit(out["object"][box], truth)
    flat_err, _ = _fit(np.ones_like(truth), truth)
    assert err < 0.3 * flat_err, (err, flat_err)
    # Units: with the known probe fixed, pty-chi's N^2 FFT factor must be undone exactly (|c| would be ~1/N or ~N).
    assert abs(abs(c) - 1) < 0.05, abs(c)
    # Frame: a half-pixel convention error shows up as a ~0.35 px shift here, so the bound is tighter than 0.5 px.
    shift = phase_cross_correlation(truth, c * out["object"][box], upsample_factor=50)[0]
    assert np.all(np.abs(shift) < 0.2), shift
    assert out["object"].shape == SHAPE and out["object"].dtype == np.complex64
    assert out["probe"].shape == (N, N) and out["probe"].dtype == np.complex64
    np.testing.assert_array_equal(out["probe"], data["probe"])  # refine_probe=False keeps it
    assert out["loss"].shape == (SETTINGS["epochs"],) and out["loss"].dtype == np.float64
    assert out["loss"][-1] < 0.05 * out["loss"][0]
    np.testing.assert_array_equal(out["ycoords"], data["y"])
    np.testing.assert_array_equal(out["xcoords"], data["x"])
    assert out["device"] == "cpu" and out["wall_time_s"] > 0


def test_a_loss_plateau_stops_the_run_before_its_budget(data: dict[str, Any]) -> None:
    settings = {**SETTINGS, "epochs": 400, "log_every": 10, "plateau_epochs": 10, "plateau_tolerance": 0.05}
    out = _reconstruct(data, settings)
    assert out["epochs_run"] == len(out["loss"]) < 400 and out["stop_reason"].startswith("converged")
    assert not plateaued(out["loss"][:-10], 10, 0.05)  # it stopped at the first check that saw the plateau
    budget = _reconstruct(data, {**settings, "epochs": 20})
    assert budget["epochs_run"] == 20 and budget["stop_reason"] == "epoch budget (20) spent"


def test_plateau_rule_compares_window_means() -> None:
    falling = 1.0 / np.arange(1, 101)
    assert not plateaued(falling[:30], 20, 0.01)  # fewer than two windows
    assert not plateaued(falling[:40], 20, 0.01)  # the mean fell by ~50 %
    jitter = 1 + 0.05 * np.random.default_rng(0).standard_normal(60)  # flat but noisy: end points lie
    assert plateaued(jitter, 20, 0.05)
    assert not plateaued(jitter, None, 0.05)


def test_poisson_with_probe_refinement_converges(data: dict[str, Any]) -> None:
    settings = {**SETTINGS, "noise_model": "poisson", "refine_probe": True, "probe_update_start": 5}
    out = _reconstruct(data, settings)
    box = _scanned(data)
    truth = data["obj"][box]
    err, _ = _fit(out["object"][box], truth)
    flat_err, _ = _fit(np.ones_like(truth), truth)
    assert err < 0.5 * flat_err, (err, flat_err)
    assert not np.array_equal(out["probe"], data["probe"])


def test_failed_jobs_raise_and_leave_the_worker_clean(data: dict[str, Any]) -> None:
    one = {key: data[key] if key in ("obj", "probe") else data[key][:1] for key in data}
    with pytest.raises(ValueError, match="at least 2 scan positions"):
        _reconstruct(one, SETTINGS, job="one-position")
    # A float64 default before the job must survive it (pty-chi sets float32 when it builds a task).
    _in_worker("__import__('torch').set_default_dtype(__import__('torch').float64)")
    try:
        # A zero probe drives pty-chi's step sizes to 0/0: NaN without an error from pty-chi itself.
        with pytest.raises(NonFiniteReconstruction, match="job zero-probe"):
            _reconstruct({**data, "probe": np.zeros_like(data["probe"])}, SETTINGS, job="zero-probe")
        assert _in_worker("str(__import__('torch').get_default_dtype())") == "torch.float64"
    finally:
        _in_worker("__import__('torch').set_default_dtype(__import__('torch').float32)")
    assert _in_worker("str(__import__('torch').get_default_device())") == "cpu"
    out = _reconstruct(data, {**SETTINGS, "epochs": 20})
    box = _scanned(data)
    err, _ = _fit(out["object"][box], data["obj"][box])
    flat_err, _ = _fit(np.ones_like(data["obj"][box]), data["obj"][box])
    assert np.isfinite(out["object"]).all() and err < 0.5 * flat_err


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"noise_model": "l2"}, "noise_model"),
        ({"refine_probe": "yes"}, "refine_probe"),
        ({"probe_update_start": -1}, "probe_update_start"),
        ({"device": "tpu"}, "device"),
        ({"torch_threads": 0}, "torch_threads"),
        ({"log_every": 0}, "log_every"),
        ({"plateau_epochs": 0}, "plateau_epochs"),
        ({"plateau_tolerance": 1.5}, "plateau_tolerance"),
        ({"epoch": 10}, "epoch"),
    ],
)
def test_bad_settings_raise_value_error_naming_the_setting(
    data: dict[str, Any], change: dict[str, Any], name: str
) -> None:
    with pytest.raises(ValueError, match=f"'{name}'"):
        _reconstruct(data, {**SETTINGS, **change})


def test_missing_setting_and_positions_outside_object_raise(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="'epochs'"):
        _reconstruct(data, {key: value for key, value in SETTINGS.items() if key != "epochs"})
    with pytest.raises(ValueError, match="ycoords"):
        _reconstruct({**data, "y": data["y"] + SHAPE[0]}, SETTINGS)
