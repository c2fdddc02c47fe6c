"""Train the PINN on one view's diffraction and reconstruct another's (docs/science.md "Reconstruction").

Runs inside the "tensorflow" worker (imports TensorFlow), e.g.
``run_in_worker("tensorflow", "fly64_kedro.engines.pinn.training:train", diffraction, ..., settings, job=name)``.
Counts are recovered exactly from the stored amplitudes: counts = rint((diffraction * s)^2), s the exposure scale.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fly64_kedro.engines.accelerators import tensorflow_device
from fly64_kedro.engines.pinn import symmetry
from fly64_kedro.engines.pinn.model import PinnModels, build_models
from fly64_kedro.engines.pinn.physics import poisson_nll
from fly64_kedro.engines.pinn.settings import LEVELS, validate_settings
from fly64_kedro.geometry.grouping import draw_groups
from fly64_kedro.physics.stitching import stitch_patches

logger = logging.getLogger(__name__)

CONFIG_FORMAT = "fly64-pinn-3"  # 3: trainable_scale in the config


def _check_data(
    diffraction: np.ndarray, ycoords: np.ndarray, xcoords: np.ndarray, probe: np.ndarray, scale: float
) -> None:
    """Shapes and values the PINN relies on; ValueError naming the input otherwise."""
    if diffraction.ndim != 3 or diffraction.shape[1] != diffraction.shape[2]:
        raise ValueError(f"diffraction must have shape (n, N, N), got {diffraction.shape}")
    n, n_pix = diffraction.shape[:2]
    if n_pix % 2**LEVELS:
        raise ValueError(f"the PINN encoder pools {LEVELS} times: N must be a multiple of {2**LEVELS}, got {n_pix}")
    if not (len(ycoords) == len(xcoords) == n):
        raise ValueError(f"{n} diffraction patterns but {len(ycoords)} ycoords and {len(xcoords)} xcoords")
    if probe.shape != (n_pix, n_pix):
        raise ValueError(f"probe must have shape ({n_pix}, {n_pix}), got {probe.shape}")
    if not (np.all(np.isfinite(probe)) and np.any(probe)):
        raise ValueError("probe must be finite and not all zero")
    if not np.all(np.isfinite(diffraction)) or diffraction.min(initial=0) < 0:
        raise ValueError("diffraction must be finite and >= 0")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"exposure scale must be finite and > 0, got {scale}")


def _configure_threads(threads: int | None) -> None:
    """Set TensorFlow's intra/inter-op threads; possible only before the worker's first TensorFlow op."""
    if threads is None:
        return
    current = (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )
    if current == (threads, threads):
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        logger.warning(
            "TensorFlow is already running in this worker with threads %s; ignoring threads=%d", current, threads
        )


def _grouped(
    diffraction: np.ndarray, ycoords: np.ndarray, xcoords: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(g, N, N, C) float32 diffraction per group and (g, C, 2) float32 offsets (dy, dx) in pixels.

    Offsets are relative to the group centroid rounded to whole pixels: the canvas grid then coincides with the
    object grid, so members at integer positions merge without interpolation blur.
    """
    stack = np.transpose(diffraction[groups], (0, 2, 3, 1)).astype(np.float32)
    positions = np.stack([ycoords[groups], xcoords[groups]], axis=-1)
    offsets = positions - np.round(positions.mean(axis=1, keepdims=True))
    return stack, offsets.astype(np.float32)


class _SymmetricBatches(keras.utils.PyDataset):
    """Training batches, reshuffled every epoch, each group mapped by a random symmetry of the probe (seeded).

    ``symmetries`` holding only the identity gives plain shuffled batches.
    """

    def __init__(
        self,
        features: dict[str, np.ndarray],
        counts: np.ndarray,
        batch_size: int,
        symmetries: tuple[symmetry.Symmetry, ...],
        seed: int,
    ) -> None:
        super().__init__()
        self.features, self.counts, self.batch_size = features, counts, batch_size
        self.symmetries, self.seed, self.epoch = symmetries, seed, 0
        self._draw()

    def _draw(self) -> None:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.order = rng.permutation(len(self.counts))
        self.choice = rng.integers(len(self.symmetries), size=len(self.counts))

    def __len__(self) -> int:
        return math.ceil(len(self.counts) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        features = {name: value[rows].copy() for name, value in self.features.items()}
        counts = self.counts[rows].copy()
        for i, pick in enumerate(self.choice[rows]):
            sym = self.symmetries[pick]
            features["diffraction"][i] = symmetry.apply(sym, features["diffraction"][i], axes=(0, 1))
            counts[i] = symmetry.apply(sym, counts[i], axes=(0, 1))
            if "offsets" in features:
                features["offsets"][i] = symmetry.apply_offsets(sym, features["offsets"][i])
        return features, counts

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._draw()


class _EpochLogger(keras.callbacks.Callback):
    """Log epoch, loss, val_loss, learning rate, elapsed time and ETA at INFO, and keep the per-epoch history
    (loss, val_loss, lr and epoch_s, the epoch's wall seconds including its validation)."""

    def __init__(self, job: str, epochs: int) -> None:
        super().__init__()
        self.job, self.epochs = job, epochs
        self.history: dict[str, list[float]] = {"loss": [], "val_loss": [], "lr": [], "epoch_s": []}
        self.start = self.epoch_start = time.perf_counter()
        self.lr = math.nan

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.start = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))  # before any plateau cut
        self.epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        self.history["loss"].append(float(logs["loss"]))
        self.history["val_loss"].append(float(logs["val_loss"]))
        self.history["lr"].append(self.lr)
        self.history["epoch_s"].append(time.perf_counter() - self.epoch_start)
        elapsed = time.perf_counter() - self.start
        # From the last epoch (the first one also pays for tracing); an upper bound, early stopping may end sooner.
        eta = self.history["epoch_s"][-1] * (self.epochs - epoch - 1)
        logger.info(
            "PINN %s epoch %d/%d loss %.6g val_loss %.6g lr %.3g elapsed %.1f s ETA <= %.1f s",
            self.job,
            epoch + 1,
            self.epochs,
            logs["loss"],
            logs["val_loss"],
            self.lr,
            elapsed,
            eta,
        )


def fit(
    diffraction: np.ndarray,
    ycoords: np.ndarray,
    xcoords: np.ndarray,
    probe: np.ndarray,
    scale: float,
    gridsize: int,
    settings: Mapping[str, Any],
    job: str = "",
) -> tuple[PinnModels, dict[str, Any]]:
    """``train``, also returning the trained Keras models (for callers inside the worker)."""
    started = time.perf_counter()
    opts = validate_settings(settings)
    diffraction, probe = np.asarray(diffraction), np.asarray(probe)
    ycoords, xcoords = np.asarray(ycoords, dtype=np.float64), np.asarray(xcoords, dtype=np.float64)
    _check_data(diffraction, ycoords, xcoords, probe, scale)
    if gridsize not in (1, 2):
        raise ValueError(f"gridsize must be 1 or 2, got {gridsize}")
    channels, n_pix = gridsize**2, diffraction.shape[1]
    if gridsize > 1 and opts["neighbour_pool"] < channels:
        raise ValueError(f"PINN setting neighbour_pool K={opts['neighbour_pool']} must be >= C={channels} (gridsize^2)")
    _configure_threads(opts["threads"])
    # Same parameters, same numbers: seeded weights and shuffles, and deterministic kernels (a few % slower).
    keras.utils.set_random_seed(opts["training_seed"])
    tf.config.experimental.enable_op_determinism()

    pool = opts["neighbour_pool"] if gridsize > 1 else 1
    groups = draw_groups(
        ycoords, xcoords, channels, pool, opts["grouping_seed"], opts["n_groups"], opts["subsampling_seed"]
    )
    inputs, offsets = _grouped(diffraction, ycoords, xcoords, groups)
    counts = np.rint((inputs.astype(np.float64) * scale) ** 2).astype(np.float32)
    order = np.random.default_rng(opts["training_seed"]).permutation(len(groups))
    n_val = max(1, round(opts["validation_fraction"] * len(groups)))
    if n_val >= len(groups):
        raise ValueError(
            f"PINN setting validation_fraction={opts['validation_fraction']} leaves no training group "
            f"out of {len(groups)}"
        )
    val, trn = order[:n_val], order[n_val:]
    rms = float(np.sqrt(np.mean(inputs[trn].astype(np.float64) ** 2)))
    if rms == 0:
        raise ValueError("the training diffraction is all zero")

    config = {
        "format": CONFIG_FORMAT,
        "N": n_pix,
        "gridsize": gridsize,
        "filters": opts["filters"],
        "input_scale": 1.0 / rms,  # normalised input has unit RMS over the training set
        "intensity_scale": float(scale),
        "trainable_scale": opts["trainable_scale"],
        # Canvas half-width: the largest member offset, capped at N so the canvas never exceeds 3N + 2 pixels.
        "canvas_radius": int(min(math.ceil(float(np.abs(offsets).max())), n_pix)) if gridsize > 1 else 0,
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
    }
    models = build_models(config, probe)
    device = tensorflow_device()
    # XLA pays off on a GPU; on CPU it compiled slower and ran ~2x slower per epoch for this model.
    jit = device == "gpu" if opts["jit_compile"] == "auto" else opts["jit_compile"]
    optimizer = keras.optimizers.Adam(opts["learning_rate"])
    # Creating Adam's slots now lets fit trace its step once, not twice (saves ~2.5 s per training on 2 CPU cores).
    optimizer.build(models.training.trainable_variables)
    models.training.compile(optimizer=optimizer, loss=poisson_nll, jit_compile=jit)

    def features(idx: np.ndarray) -> dict[str, np.ndarray]:
        return {"diffraction": inputs[idx], **({"offsets": offsets[idx]} if gridsize > 1 else {})}

    symmetries = symmetry.probe_symmetries(probe) if opts["augment"] else symmetry.ALL[:1]
    batches = _SymmetricBatches(features(trn), counts[trn], opts["batch_size"], symmetries, opts["training_seed"])
    epoch_log = _EpochLogger(job, opts["epochs"])
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=opts["early_stopping_patience"], restore_best_weights=True
    )
    logger.info(
        "PINN %s: training gridsize %d on %d groups (%d validation, %d probe symmetries) on the %s, N=%d, "
        "filters %d, canvas radius %d px",
        job,
        gridsize,
        len(trn),
        n_val,
        len(symmetries),
        device.upper(),
        n_pix,
        opts["filters"],
        config["canvas_radius"],
    )
    models.training.fit(
        batches,
        epochs=opts["epochs"],
        validation_data=(features(val), counts[val]),
        callbacks=[
            epoch_log,
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.5, patience=opts["plateau_patience"], min_lr=opts["min_learning_rate"]
            ),
            stopper,
            keras.callbacks.TerminateOnNaN(),
        ],
        verbose=0,
    )
    weights = {v.path: np.asarray(v.numpy(), dtype=np.float32) for v in models.training.weights}
    if not all(np.all(np.isfinite(value)) for value in weights.values()):
        raise FloatingPointError(f"PINN {job}: training diverged (non-finite weights); history {epoch_log.history}")
    result = {
        "weights": weights,
        "config": config,
        "history": epoch_log.history,
        "wall_time_s": time.perf_counter() - started,
        "device": device,
        "best_epoch": int(np.argmin(epoch_log.history["val_loss"])),  # the returned weights are this epoch's
        "epochs_run": len(epoch_log.history["loss"]),
        "stop_reason": _stop_reason(stopper, epoch_log.history, opts),
        "n_symmetries": len(symmetries),
        "n_train_groups": len(trn),
        "n_val_groups": n_val,
    }
    logger.info("PINN %s: trained %d epochs in %.1f s", job, len(epoch_log.history["loss"]), result["wall_time_s"])
    return models, result


def _stop_reason(stopper: keras.callbacks.EarlyStopping, history: dict[str, list[float]], opts: dict) -> str:
    best = int(np.argmin(history["val_loss"])) + 1
    if stopper.stopped_epoch > 0:
        return (
            f"converged: val_loss did not improve for {opts['early_stopping_patience']} epochs "
            f"(best epoch {best}, restored)"
        )
    if len(history["loss"]) < opts["epochs"]:
        return "stopped: non-finite loss"
    return f"epoch budget ({opts['epochs']}) spent (best epoch {best}, restored)"


def train(
    diffraction: np.ndarray,
    ycoords: np.ndarray,
    xcoords: np.ndarray,
    probe: np.ndarray,
    scale: float,
    gridsize: int,
    settings: Mapping[str, Any],
    job: str = "",
) -> dict[str, Any]:
    """Train the PINN unsupervised on (n, N, N) diffraction amplitudes with scan positions (pixels).

    ``scale`` is the exposure scale s from the data's metadata (counts = (diffraction * s)^2). Returns
    {"weights": {name: float32 array}, "config": JSON-serialisable dict, "history": {"loss", "val_loss", "lr",
    "epoch_s"} per epoch, "wall_time_s": seconds, "device" ("gpu" or "cpu"), "best_epoch", "epochs_run",
    "stop_reason", "n_symmetries", "n_train_groups", "n_val_groups"}; the weights
    are those of the epoch with the lowest validation loss.
    """
    return fit(diffraction, ycoords, xcoords, probe, scale, gridsize, settings, job)[1]


def load_models(weights: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> PinnModels:
    """Rebuild both models from ``config`` and set every weight; ValueError if the names or shapes disagree."""
    if config.get("format") != CONFIG_FORMAT:
        raise ValueError(f"PINN config format must be {CONFIG_FORMAT!r}, got {config.get('format')!r}")
    models = build_models(dict(config))
    variables = {v.path: v for v in models.training.weights}
    if set(variables) != set(weights):
        missing, unexpected = sorted(set(variables) - set(weights)), sorted(set(weights) - set(variables))
        raise ValueError(f"PINN weights do not match the config: missing {missing}, unexpected {unexpected}")
    for name, variable in variables.items():
        value = np.asarray(weights[name], dtype=np.float32)
        if value.shape != tuple(variable.shape):
            raise ValueError(f"PINN weight {name} has shape {value.shape}, the model needs {tuple(variable.shape)}")
        variable.assign(value)
    return models


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

    The patches are those the physics layer saw in training: at gridsize 2 every position seeds a group drawn
    (grouping_seed, neighbour_pool) from these positions, and its patch is the group's canvas average, so
    neighbours agree. Stitching is the |P|^2-weighted mean after phase synchronisation (physics/stitching.py).
    ``scale`` is checked only: the stored amplitudes are already exposure-independent, and the model carries its
    probe. Returns {"object": complex64 (H, W), "coverage": float32 (H, W) stitching weights (|P|^2 units),
    "wall_time_s", "inference_s" (prediction only, after one warm-up batch), "patterns_per_s", "device"}.
    """
    started = time.perf_counter()
    opts = validate_settings(settings)
    diffraction, probe = np.asarray(diffraction), np.asarray(probe)
    ycoords, xcoords = np.asarray(ycoords, dtype=np.float64), np.asarray(xcoords, dtype=np.float64)
    _check_data(diffraction, ycoords, xcoords, probe, scale)
    if diffraction.shape[1] != config["N"]:
        raise ValueError(f"the model was trained at N={config['N']}, the diffraction has N={diffraction.shape[1]}")
    _configure_threads(opts["threads"])
    tf.config.experimental.enable_op_determinism()
    model = load_models(weights, config).merged
    device = tensorflow_device()

    gridsize, n = config["gridsize"], len(diffraction)
    groups = np.arange(n)[:, None]
    if gridsize > 1:
        groups = draw_groups(ycoords, xcoords, gridsize**2, opts["neighbour_pool"], opts["grouping_seed"])
    # Batch by batch, keeping only each group's seed channel: memory stays O(batch), not O(n * C) (at paper scale
    # the whole grouped stack and the model's outputs would be several GB). Whole batches only (the last one is
    # zero-padded), so every batch has one shape and the timed loop never retraces.
    batch = min(opts["inference_batch_size"], n)
    n_pix = config["N"]

    def batch_inputs(start: int) -> list[np.ndarray]:
        inputs, offsets = _grouped(diffraction, ycoords, xcoords, groups[start : start + batch])
        pad = batch - len(inputs)
        inputs = np.concatenate([inputs, np.zeros((pad, *inputs.shape[1:]), np.float32)])
        offsets = np.concatenate([offsets, np.zeros((pad, *offsets.shape[1:]), np.float32)])
        return [inputs, offsets] if gridsize > 1 else [inputs]

    model.predict_on_batch(batch_inputs(0))  # warm-up: traces the graph outside the timed loop
    patches = np.empty((n, n_pix, n_pix), np.complex64)
    tick = time.perf_counter()
    for start in range(0, n, batch):
        real, imag = (np.asarray(t) for t in model.predict_on_batch(batch_inputs(start)))
        count = min(batch, n - start)
        patches[start : start + count] = real[:count, :, :, 0] + 1j * imag[:count, :, :, 0]  # channel 0: the seed
    inference_s = time.perf_counter() - tick

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
