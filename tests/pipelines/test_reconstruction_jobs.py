"""Reconstruction jobs never abort the study: skipped views are recorded as skipped, failures as failed (real
pty-chi in its worker), and the manifest lists every job with its view fields."""

from __future__ import annotations

import numpy as np
import pytest

from fly64_kedro.pipelines.generation.nodes import make_synthetic_base, simulate_diffraction
from fly64_kedro.pipelines.reconstruction.nodes import (
    apply_model,
    build_reconstruction_manifest,
    reconstruct_direct,
    train_model,
)
from fly64_kedro.record import VIEW_FIELDS, subset
from fly64_kedro.study import ParameterError

pytestmark = pytest.mark.slow
STUDY = {
    "N": 32,
    "neighbour_pool": 7,
    "split_axis": "y",
    "seeds": {"simulation": 42, "grouping": 123, "subsampling": 456},
}
LSQML = {"epochs": 3, "batch_size": 16, "noise_model": "gaussian", "refine_probe": False}
PINN = {
    "epochs": 1,
    "batch_size": 16,
    "learning_rate": 1e-3,
    "plateau_patience": 2,
    "early_stopping_patience": 3,
    "validation_fraction": 0.1,
    "n_groups": None,
    "filters": 8,
    "training_seed": 7,
    "threads": None,
}
VIEW_META = {
    "view": "dense",
    "split": "test",
    "selection_strategy": "greedy",
    "acceptance_rate": 0.1,
    "spacing_threshold": 9.6,
    "n_accepted": 1,
    "n_rejected": 9,
    "image_overlap": 0.0,
    "group_overlap": 0.0,
}


@pytest.fixture(scope="module")
def view():
    base = make_synthetic_base({"object_shape": [96, 96], "aperture_fraction": 0.25, "defocus_waves": 2.0}, STUDY)
    gen = {"n_positions": 60, "chunk_size": 64, "poisson_noise": True, "guard_band": None}
    return simulate_diffraction(base, 1e5, STUDY, gen).with_meta(**VIEW_META, status="ok")


def test_skipped_view_gives_skipped_jobs_without_running(view) -> None:
    skipped = subset(view, np.arange(1), status="skipped", reason="dense view keeps 1 position(s)")
    lsqml = reconstruct_direct(skipped, LSQML, label="lsqml")
    model = train_model(skipped, PINN, STUDY, label="pinn_gs2")
    pinn = apply_model(model, skipped, PINN, STUDY, label="pinn_gs2")
    for record in (lsqml, model, pinn):
        assert record.status == "skipped"
        assert "keeps 1 position" in record.meta["reason"]
        assert record.meta["reason"].count("is skipped") == 1  # the model's skip is not prefixed twice


def test_warm_start_skips_gridsize_2_when_its_gridsize_1_teacher_did_not_train(view) -> None:
    """Gridsize 2 starts from the same view's gridsize-1 model: without one it is skipped with the teacher's reason
    (a failed job never aborts the study), and without warm_start it ignores the teacher."""
    teacher = train_model(subset(view, np.arange(1)), PINN, STUDY, label="pinn_gs1")  # one position: no group
    assert teacher.status == "failed"
    model = train_model(view, {**PINN, "warm_start": True}, STUDY, label="pinn_gs2", teacher=teacher)
    assert model.status == "skipped" and teacher.meta["reason"] in model.meta["reason"]
    scratch = train_model(view, {**PINN, "warm_start": False}, STUDY, label="pinn_gs2", teacher=teacher)
    assert scratch.status == "ok" and not scratch.meta["warm_start"]


def test_one_position_view_fails_with_its_reason_and_next_job_still_runs(view) -> None:
    one = subset(view, np.arange(1))
    failed = reconstruct_direct(one, LSQML, label="lsqml")
    assert failed.status == "failed" and "at least 2 scan positions" in failed.meta["reason"]
    ok = reconstruct_direct(view, LSQML, label="lsqml")
    assert ok.status == "ok" and np.all(np.isfinite(ok["object"]))
    assert ok["object"].shape == view["objectGuess"].shape
    assert len(ok["loss"]) == LSQML["epochs"]
    manifest = build_reconstruction_manifest(failed, ok)
    assert list(manifest["status"]) == ["failed", "ok"]
    assert {"job", "method", "model", "status", "reason", "duration_s", "wall_time_s", *VIEW_FIELDS} <= set(manifest)
    assert (manifest["selection_strategy"] == "greedy").all() and (manifest["n_accepted"] == 1).all()
    assert manifest.loc[1, "duration_s"] > 0


def test_nan_producing_case_is_recorded_as_failed(view) -> None:
    """A zero probe drives pty-chi's step sizes to 0/0: NaN without an error from pty-chi; the job must say so."""
    dark = view.__class__({**view.arrays, "probeGuess": np.zeros_like(view["probeGuess"])}, view.meta)
    record = reconstruct_direct(dark, LSQML, label="lsqml")
    assert record.status == "failed"
    assert "NaN" in record.meta["reason"] or "non-finite" in record.meta["reason"].lower()


@pytest.mark.parametrize(
    "run",
    [
        lambda view: reconstruct_direct(view, {**LSQML, "noise_model": "laplace"}, label="lsqml"),
        lambda view: train_model(view, {**PINN, "epochs": 0}, STUDY, label="pinn_gs1"),
        lambda view: apply_model(view, view, {**PINN, "learning_rate": "fast"}, STUDY, label="pinn_gs1"),
    ],
    ids=["lsqml noise_model", "pinn epochs", "pinn learning_rate"],
)
def test_bad_engine_settings_stop_the_run_instead_of_recording_a_failed_job(view, run) -> None:
    """A failed record would overwrite a good one, and a resume would never retry it: a configuration error raises."""
    with pytest.raises(ParameterError, match=r"reconstruction\.(lsqml|pinn).*(noise_model|epochs|learning_rate)"):
        run(view)
