"""Reconstruction (docs/science.md "Reconstruction"): pty-chi LSQML on every view and split, PtychoPINN trained on
each train view
and applied to its test split. Engines run in their own worker processes (fly64_kedro.engines.workers); a job
that raises or returns non-finite values is recorded as failed, a skipped view as skipped, and neither stops
the study. Invalid settings are a configuration error, not a job failure: they raise before the job starts, so the
run stops and no good record is overwritten by a failed one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from fly64_kedro.contract import weights_digest
from fly64_kedro.engines.lsqml import validate_settings as validate_lsqml_settings
from fly64_kedro.engines.pinn.settings import validate_settings as validate_pinn_settings
from fly64_kedro.engines.workers import run_in_worker
from fly64_kedro.record import Record
from fly64_kedro.study import MODEL_NAMES, ParameterError

logger = logging.getLogger(__name__)

LSQML_TARGET = "fly64_kedro.engines.lsqml:reconstruct"
PINN_TRAIN_TARGET = "fly64_kedro.engines.pinn.training:train"
PINN_RECONSTRUCT_TARGET = "fly64_kedro.engines.pinn.training:reconstruct"

# View metadata every job record and manifest row carries (docs/science.md "Overlap views" fields).
VIEW_FIELDS = (
    "dose",
    "view",
    "split",
    "selection_strategy",
    "acceptance_rate",
    "spacing_threshold",
    "n_accepted",
    "n_rejected",
    "image_overlap",
    "group_overlap",
)


def _job_name(view: Record, method: str) -> str:
    return f"dose={view.meta.get('dose', 0):g} {view.meta.get('view')}/{view.meta.get('split')} {method}"


def _view_meta(view: Record) -> dict[str, Any]:
    return {k: view.meta[k] for k in VIEW_FIELDS if k in view.meta}


def _not_run(status: str, reason: str, job: str, method: str, view: Record, started: float) -> Record:
    log = logger.warning if status == "skipped" else logger.error
    log("job %s: %s: %s", job, status, reason)
    meta = {"status": status, "reason": reason, "job": job, "method": method, **_view_meta(view)}
    return Record({}, {**meta, "duration_s": time.perf_counter() - started})


def _run_job(job: str, method: str, views: tuple[Record, ...], call: Callable[[], Record]) -> Record:
    """Run ``call`` unless a view is skipped; turn any exception into a failed record with its reason."""
    started = time.perf_counter()
    for view in views:
        if view.status != "ok":
            reason = view.meta.get("reason")
            if "job" not in view.meta:  # a job record's reason already names its input view
                reason = f"input {view.meta.get('view')}/{view.meta.get('split')} is {view.status}: {reason}"
            return _not_run("skipped", reason, job, method, views[-1], started)
    try:
        record = call()
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, never raised (docs/science.md "Reconstruction")
        return _not_run("failed", f"{type(exc).__name__}: {exc}", job, method, views[-1], started)
    logger.info("job %s: ok in %.1f s", job, time.perf_counter() - started)
    return record.with_meta(duration_s=time.perf_counter() - started)


def reconstruct_lsqml(view: Record, settings: dict[str, Any]) -> Record:
    """pty-chi LSQML of one view: object (H x W, object pixels), probe, positions used, per-epoch loss."""
    job = _job_name(view, "lsqml")
    try:
        validate_lsqml_settings(settings)
    except ValueError as exc:
        raise ParameterError("reconstruction.lsqml", str(exc)) from exc

    def call() -> Record:
        result = run_in_worker(
            "torch",
            LSQML_TARGET,
            view["diffraction"],
            view["ycoords"],
            view["xcoords"],
            view["probeGuess"],
            view["objectGuess"].shape,
            settings,
            job=job,
        )
        _require_finite(result["object"], job)
        arrays = {
            "object": result["object"].astype(np.complex64),
            "probe": result["probe"].astype(np.complex64),
            "ycoords": np.asarray(result["ycoords"], np.float64),
            "xcoords": np.asarray(result["xcoords"], np.float64),
            "loss": np.asarray(result["loss"], np.float64),
        }
        meta = {
            "status": "ok",
            "job": job,
            "method": "lsqml",
            "model": MODEL_NAMES["lsqml"],
            "N": view.meta.get("N"),
            "wall_time_s": result["wall_time_s"],
            "device": result["device"],
            "settings": dict(settings),
            "epochs_run": result["epochs_run"],
            "stop_reason": result["stop_reason"],
            "final_loss": float(arrays["loss"][-1]) if len(arrays["loss"]) else float("nan"),
            **_view_meta(view),
        }
        return Record(arrays, meta)

    return _run_job(job, "lsqml", (view,), call)


def pinn_settings(settings: dict[str, Any], study: dict[str, Any]) -> dict[str, Any]:
    """The settings a PINN job runs with (``reconstruction.pinn`` plus the study's K and seeds), checked without
    TensorFlow; raises ``ParameterError``."""
    seeds = study["seeds"]
    merged = {
        **settings,
        "neighbour_pool": study["neighbour_pool"],
        "grouping_seed": seeds["grouping"],
        "subsampling_seed": seeds["subsampling"],
    }
    try:
        validate_pinn_settings(merged)
    except ValueError as exc:
        raise ParameterError("reconstruction.pinn", str(exc)) from exc
    return merged


def train_pinn(
    train_view: Record, settings: dict[str, Any], study: dict[str, Any], label: str, gridsize: int
) -> Record:
    """Train one PtychoPINN variant without labels on a train view; weights (float32) with SHA-256 and size."""
    job = _job_name(train_view, f"{label} training")
    job_settings = pinn_settings(settings, study)

    def call() -> Record:
        scale = float(train_view.meta["scale"])
        result = run_in_worker(
            "tensorflow",
            PINN_TRAIN_TARGET,
            train_view["diffraction"],
            train_view["ycoords"],
            train_view["xcoords"],
            train_view["probeGuess"],
            scale,
            gridsize,
            job_settings,
            job=job,
        )
        names = list(result["weights"])
        arrays = {f"weight_{i:03d}": np.asarray(result["weights"][k], np.float32) for i, k in enumerate(names)}
        history = {k: [float(v) for v in vals] for k, vals in result["history"].items()}
        meta = {
            "status": "ok",
            "job": job,
            "method": label,
            "model": MODEL_NAMES[label],
            "gridsize": gridsize,
            "config": result["config"],
            "weight_names": names,
            "history": history,
            "epochs_run": result["epochs_run"],
            "stop_reason": result["stop_reason"],
            "best_epoch": result["best_epoch"],
            "n_symmetries": result["n_symmetries"],
            "final_loss": history["loss"][-1] if history.get("loss") else None,
            "wall_time_s": result["wall_time_s"],
            "device": result["device"],
            "weights_sha256": weights_digest(arrays),
            "weights_bytes": int(sum(a.nbytes for a in arrays.values())),
            "scale": scale,
            **_view_meta(train_view),
        }
        return Record(arrays, meta)

    return _run_job(job, label, (train_view,), call)


def reconstruct_pinn(
    model: Record, test_view: Record, settings: dict[str, Any], study: dict[str, Any], label: str
) -> Record:
    """Apply a trained PtychoPINN to a test view and stitch the object in the ground truth's pixel frame."""
    job = _job_name(test_view, label)
    job_settings = pinn_settings(settings, study)

    def call() -> Record:
        weights = {name: model[f"weight_{i:03d}"] for i, name in enumerate(model.meta["weight_names"])}
        result = run_in_worker(
            "tensorflow",
            PINN_RECONSTRUCT_TARGET,
            weights,
            model.meta["config"],
            test_view["diffraction"],
            test_view["ycoords"],
            test_view["xcoords"],
            test_view["probeGuess"],
            float(test_view.meta["scale"]),
            test_view["objectGuess"].shape,
            job_settings,
            job=job,
        )
        _require_finite(result["object"], job)
        arrays = {
            "object": result["object"].astype(np.complex64),
            "probe": test_view["probeGuess"],
            "ycoords": test_view["ycoords"],
            "xcoords": test_view["xcoords"],
        }
        meta = {
            "status": "ok",
            "job": job,
            "method": label,
            "model": MODEL_NAMES[label],
            "N": test_view.meta.get("N"),
            "wall_time_s": result["wall_time_s"],
            "inference_s": result["inference_s"],
            "patterns_per_s": result["patterns_per_s"],
            "device": result["device"],
            "training_wall_time_s": model.meta.get("wall_time_s"),
            "training_device": model.meta.get("device"),
            # the training's convergence travels with the reconstruction, so the report can plot it per job
            **{key: model.meta.get(key) for key in ("history", "epochs_run", "stop_reason", "best_epoch")},
            "weights_sha256": model.meta.get("weights_sha256"),
            **_view_meta(test_view),
        }
        return Record(arrays, meta)

    return _run_job(job, label, (model, test_view), call)


def _require_finite(obj: np.ndarray, job: str) -> None:
    if not np.all(np.isfinite(obj)):
        raise FloatingPointError(f"job {job}: the reconstructed object contains NaN/Inf")


def build_reconstruction_manifest(*results: Record) -> pd.DataFrame:
    """One row per reconstruction job: status (ok / failed / skipped), reason, duration and the view fields."""
    rows = []
    for result in results:
        meta = result.meta
        rows.append(
            {
                "job": meta.get("job"),
                "method": meta.get("method"),
                "model": MODEL_NAMES.get(meta.get("method", ""), ""),
                "status": result.status,
                "reason": meta.get("reason", ""),
                "duration_s": meta.get("duration_s"),
                "wall_time_s": meta.get("wall_time_s"),
                "device": meta.get("device"),
                **{k: meta.get(k) for k in VIEW_FIELDS},
            }
        )
    frame = pd.DataFrame(rows)
    counts = frame["status"].value_counts().to_dict()
    logger.info("reconstruction manifest: %d jobs, %s", len(frame), counts)
    return frame
