"""Reconstruction (docs/science.md "Reconstruction"): pty-chi LSQML on every view and split, PtychoPINN trained on
each train view
and applied to its test split. Engines run in their own worker processes (fly64_kedro.engines.workers); a job
that raises or returns non-finite values is recorded as failed, a skipped view as skipped, and neither stops
the study. Invalid settings are a configuration error, not a job failure: they raise before the job starts, so the
run stops and no good record is overwritten by a failed one."""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from fly64_kedro.contract import weights_digest
from fly64_kedro.engines.workers import run_in_worker
from fly64_kedro.record import VIEW_FIELDS, Record, view_meta
from fly64_kedro.study import ENGINES_BY_LABEL, Engine, ParameterError

logger = logging.getLogger(__name__)


def _job_name(view: Record, method: str) -> str:
    return f"dose={view.meta.get('dose', 0):g} {view.meta.get('view')}/{view.meta.get('split')} {method}"


def _not_run(status: str, reason: str, job: str, method: str, view: Record, started: float) -> Record:
    log = logger.warning if status == "skipped" else logger.error
    log("job %s: %s: %s", job, status, reason)
    meta = {"status": status, "reason": reason, "job": job, "method": method, **view_meta(view)}
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


def checked_settings(engine: Engine, settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` checked by the engine's own rules (no torch or TensorFlow import); raises ``ParameterError``."""
    module, function = engine.validate.split(":")
    try:
        getattr(importlib.import_module(module), function)(settings)
    except ValueError as exc:
        raise ParameterError(f"reconstruction.{engine.settings}", str(exc)) from exc
    return settings


def reconstruct_direct(view: Record, settings: dict[str, Any], label: str) -> Record:
    """A direct engine (e.g. pty-chi LSQML) on one view: object (H x W, object pixels), probe, positions used,
    per-epoch loss, epochs run and why it stopped."""
    engine = ENGINES_BY_LABEL[label]
    job = _job_name(view, label)
    checked_settings(engine, settings)

    def call() -> Record:
        result = run_in_worker(
            engine.worker,
            engine.target,
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
            "method": label,
            "model": engine.name,
            "N": view.meta.get("N"),
            "wall_time_s": result["wall_time_s"],
            "device": result["device"],
            "settings": dict(settings),
            "epochs_run": result["epochs_run"],
            "stop_reason": result["stop_reason"],
            "final_loss": float(arrays["loss"][-1]) if len(arrays["loss"]) else float("nan"),
            **view_meta(view),
        }
        return Record(arrays, meta)

    return _run_job(job, label, (view,), call)


def trained_settings(engine: Engine, settings: dict[str, Any], study: dict[str, Any]) -> dict[str, Any]:
    """The settings a trained engine's job runs with (its parameters plus the study's K and seeds), checked
    without TensorFlow; raises ``ParameterError``."""
    seeds = study["seeds"]
    merged = {
        **settings,
        "neighbour_pool": study["neighbour_pool"],
        "grouping_seed": seeds["grouping"],
        "subsampling_seed": seeds["subsampling"],
    }
    return checked_settings(engine, merged)


def train_model(
    train_view: Record, settings: dict[str, Any], study: dict[str, Any], label: str, teacher: Record | None = None
) -> Record:
    """Train one trained engine (a PtychoPINN variant) without labels on a train view; weights (float32) with
    SHA-256 and size, the per-epoch history, epochs run and why training stopped. ``teacher``: the same view's
    gridsize-1 model, which a gridsize-2 ``warm_start`` begins from (a teacher that is not ok skips the job);
    ignored otherwise."""
    engine = ENGINES_BY_LABEL[label]
    job = _job_name(train_view, f"{label} training")
    job_settings = trained_settings(engine, settings, study)
    gridsize = engine.gridsize
    if not (gridsize > 1 and job_settings.get("warm_start")):
        teacher = None

    def call() -> Record:
        scale = float(train_view.meta["scale"])
        result = run_in_worker(
            engine.worker,
            engine.train,
            train_view["diffraction"],
            train_view["ycoords"],
            train_view["xcoords"],
            train_view["probeGuess"],
            scale,
            gridsize,
            job_settings,
            job=job,
            teacher=None if teacher is None else {"weights": model_weights(teacher), "config": teacher.meta["config"]},
        )
        names = list(result["weights"])
        arrays = {f"weight_{i:03d}": np.asarray(result["weights"][k], np.float32) for i, k in enumerate(names)}
        history = {k: [float(v) for v in vals] for k, vals in result["history"].items()}
        meta = {
            "status": "ok",
            "job": job,
            "method": label,
            "model": engine.name,
            "gridsize": gridsize,
            "config": result["config"],
            "weight_names": names,
            "history": history,
            "epochs_run": result["epochs_run"],
            "stop_reason": result["stop_reason"],
            "best_epoch": result["best_epoch"],
            "n_symmetries": result["n_symmetries"],
            "gradient_clip_norm": result["gradient_clip_norm"],
            "batch_size": result["batch_size"],
            "rollback_epochs": result["rollback_epochs"],
            "warm_start": result["warm_start"],
            "tf_threads": result["tf_threads"],
            "final_loss": history["loss"][-1] if history.get("loss") else None,
            "wall_time_s": result["wall_time_s"],
            "device": result["device"],
            "weights_sha256": weights_digest(arrays),
            "weights_bytes": int(sum(a.nbytes for a in arrays.values())),
            "scale": scale,
            **view_meta(train_view),
        }
        return Record(arrays, meta)

    return _run_job(job, label, (train_view,) if teacher is None else (teacher, train_view), call)


def model_weights(model: Record) -> dict[str, np.ndarray]:
    """A model record's weights by name, as training returned them (``train_model`` stores them as weight_000, ...)."""
    return {name: model[f"weight_{i:03d}"] for i, name in enumerate(model.meta["weight_names"])}


def apply_model(
    model: Record, test_view: Record, settings: dict[str, Any], study: dict[str, Any], label: str
) -> Record:
    """Apply a trained model to a test view and stitch the object in the ground truth's pixel frame."""
    engine = ENGINES_BY_LABEL[label]
    job = _job_name(test_view, label)
    job_settings = trained_settings(engine, settings, study)

    def call() -> Record:
        result = run_in_worker(
            engine.worker,
            engine.target,
            model_weights(model),
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
            "model": engine.name,
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
            **view_meta(test_view),
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
                "model": ENGINES_BY_LABEL[meta["method"]].name if meta.get("method") in ENGINES_BY_LABEL else "",
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
