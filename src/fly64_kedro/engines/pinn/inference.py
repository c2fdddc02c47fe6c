"""Apply a trained PINN to a test view and stitch its patches (docs/science.md "Reconstruction: PtychoPINN").

Runs inside the "tensorflow" worker (imports TensorFlow), e.g.
``run_in_worker("tensorflow", "fly64_kedro.engines.pinn.inference:reconstruct", weights, config, ...)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from fly64_kedro.engines.accelerators import tensorflow_device
from fly64_kedro.engines.pinn import symmetry
from fly64_kedro.engines.pinn.data import CONFIG_FORMAT, check_data, configure_worker, grouped
from fly64_kedro.engines.pinn.model import PinnModels, build_models
from fly64_kedro.engines.pinn.settings import validate_settings
from fly64_kedro.geometry.grouping import draw_groups
from fly64_kedro.physics.stitching import phase_offsets, stitch_patches

logger = logging.getLogger(__name__)


def load_models(weights: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> PinnModels:
    """Rebuild both models from ``config`` and set every weight; ValueError if the names or shapes disagree."""
    if config.get("format") != CONFIG_FORMAT:
        raise ValueError(f"PINN config format must be {CONFIG_FORMAT!r}, got {config.get('format')!r}")
    models = build_models(dict(config))
    set_weights(models, weights)
    return models


def set_weights(models: PinnModels, weights: Mapping[str, np.ndarray], complete: bool = True) -> None:
    """Set the models' variables from ``weights`` by name; ValueError if a weight has no variable of its name and
    shape or, with ``complete``, if a variable has no weight (a warm start leaves the canvas's own to the model)."""
    variables = {v.path: v for v in models.training.weights}
    missing, unexpected = sorted(set(variables) - set(weights)), sorted(set(weights) - set(variables))
    if unexpected or (complete and missing):
        raise ValueError(
            f"PINN weights do not match the config: missing {missing if complete else []}, unexpected {unexpected}"
        )
    for name, value in weights.items():
        value = np.asarray(value, dtype=np.float32)
        if value.shape != tuple(variables[name].shape):
            raise ValueError(
                f"PINN weight {name} has shape {value.shape}, the model needs {tuple(variables[name].shape)}"
            )
        variables[name].assign(value)


def reconstruct(
    weights: Mapping[str, np.ndarray],
    config: Mapping[str, Any],
    diffraction: np.ndarray,
    ycoords: np.ndarray,
    xcoords: np.ndarray,
    probe: np.ndarray,
    scale: float,
    object_shape: tuple[int, int],
    settings: Mapping[str, Any],
    job: str = "",
) -> dict[str, Any]:
    """Predict every pattern's object patch with a trained model and stitch them into the (H, W) object.

    At gridsize 2 every position seeds a group drawn (grouping_seed, neighbour_pool) from these positions
    (``predict_patches``; docs/science.md compares its two ``stitch`` choices). Stitching is the
    |P|^2-weighted mean after phase synchronisation (physics/stitching.py).
    ``scale`` is checked only: the stored amplitudes are already exposure-independent, and the model carries its
    probe. Returns {"object": complex64 (H, W), "coverage": float32 (H, W) stitching weights (|P|^2 units),
    "wall_time_s", "inference_s" (prediction only, after one warm-up batch), "patterns_per_s", "device"}.
    """
    started = time.perf_counter()
    opts = validate_settings(settings)
    diffraction, probe = np.asarray(diffraction), np.asarray(probe)
    ycoords, xcoords = np.asarray(ycoords, dtype=np.float64), np.asarray(xcoords, dtype=np.float64)
    check_data(diffraction, ycoords, xcoords, probe, scale)
    if diffraction.shape[1] != config["N"]:
        raise ValueError(f"the model was trained at N={config['N']}, the diffraction has N={diffraction.shape[1]}")
    configure_worker(opts["threads"], opts["intra_op_threads"])
    models = load_models(weights, config)
    device = tensorflow_device()
    n = len(diffraction)
    patches, inference_s = predict_patches(models, config, diffraction, ycoords, xcoords, probe, opts)
    stitched = stitch_patches(patches, ycoords, xcoords, object_shape, probe)
    result = {
        "object": stitched.object,
        "coverage": stitched.coverage,
        "wall_time_s": time.perf_counter() - started,
        "inference_s": inference_s,
        "patterns_per_s": n / inference_s,
        "device": device,
    }
    logger.info(
        "PINN %s: reconstructed %d patterns, inference %.2f s (%.0f patterns/s), total %.1f s",
        job,
        n,
        inference_s,
        result["patterns_per_s"],
        result["wall_time_s"],
    )
    return result


def predict_patches(
    models: PinnModels,
    config: Mapping[str, Any],
    diffraction: np.ndarray,
    ycoords: np.ndarray,
    xcoords: np.ndarray,
    probe: np.ndarray,
    opts: Mapping[str, Any],
) -> tuple[np.ndarray, float]:
    """Each position's object patch, complex64 (n, N, N), and the seconds the prediction took after one warm-up
    batch. ``opts``: validated settings (stitch, neighbour_pool, grouping_seed, inference_batch_size,
    average_symmetries).

    At gridsize 2 every position seeds a group; its patch is channel 0, the decoders' own prediction (``stitch:
    raw``) or the group's canvas average, the patch the physics layer saw in training (``stitch: merged``).
    With ``average_symmetries`` the patch is the mean over the probe's symmetries T of the prediction from the
    patterns (and offsets) mapped by T, mapped back by T's inverse, each first turned to the plain prediction's global
    phase (|P|^2-weighted): the same measurement seen as each of its exact equivalents, as in training.
    """
    merged = opts["stitch"] == "merged"
    gridsize, n = config["gridsize"], len(diffraction)
    groups = np.arange(n)[:, None]
    if gridsize > 1:
        groups = draw_groups(ycoords, xcoords, gridsize**2, opts["neighbour_pool"], opts["grouping_seed"])
    symmetries = symmetry.probe_symmetries(probe) if opts["average_symmetries"] else symmetry.ALL[:1]
    weight = np.abs(probe) ** 2
    # Batch by batch, keeping only each group's seed channel: memory stays O(batch), not O(n * C) (at paper scale
    # the whole grouped stack and the model's outputs would be several GB). Whole batches only (the last one is
    # zero-padded), so every batch has one shape and the timed loop never retraces.
    batch = min(opts["inference_batch_size"], n)

    def batch_inputs(start: int, sym: symmetry.Symmetry) -> list[np.ndarray] | np.ndarray:
        inputs, offsets = grouped(diffraction, ycoords, xcoords, groups[start : start + batch])
        pad = batch - len(inputs)
        inputs = np.concatenate([inputs, np.zeros((pad, *inputs.shape[1:]), np.float32)])
        offsets = np.concatenate([offsets, np.zeros((pad, *offsets.shape[1:]), np.float32)])
        inputs, offsets = symmetry.apply(sym, inputs, axes=(1, 2)), symmetry.apply_offsets(sym, offsets)
        if merged:  # the merged model was built with a list of inputs, the inference model with one
            return [inputs, offsets] if gridsize > 1 else [inputs]
        return inputs

    def seed_patches(start: int, sym: symmetry.Symmetry) -> np.ndarray:
        if merged:
            real, imag = (np.asarray(t)[..., 0] for t in models.merged.predict_on_batch(batch_inputs(start, sym)))
            return symmetry.invert(sym, real + 1j * imag)
        outputs = models.inference.predict_on_batch(batch_inputs(start, sym))
        amplitude, phase = (np.asarray(t)[..., 0] for t in outputs)
        return symmetry.invert(sym, amplitude * np.exp(1j * phase))

    def averaged(start: int) -> np.ndarray:
        plain = seed_patches(start, symmetries[0])
        total = plain.copy()
        for sym in symmetries[1:]:
            other = seed_patches(start, sym)
            total += other * np.exp(-1j * phase_offsets(other, plain, weight))[:, None, None]
        return total / len(symmetries)

    seed_patches(0, symmetries[0])  # warm-up: traces the graph outside the timed loop
    patches = np.empty((n, config["N"], config["N"]), np.complex64)
    tick = time.perf_counter()
    for start in range(0, n, batch):
        count = min(batch, n - start)
        patches[start : start + count] = averaged(start)[:count]
    return patches, time.perf_counter() - tick
