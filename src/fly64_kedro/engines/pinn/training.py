"""Train the PINN without labels on one view's diffraction (docs/science.md "Reconstruction: PtychoPINN").

Runs inside the "tensorflow" worker (imports TensorFlow), e.g.
``run_in_worker("tensorflow", "fly64_kedro.engines.pinn.training:train", diffraction, ..., settings, job=name)``.
Counts are recovered exactly from the stored amplitudes: counts = rint((diffraction * s)^2), s the exposure scale.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from fly64_kedro.engines.accelerators import tensorflow_device
from fly64_kedro.engines.pinn import symmetry
from fly64_kedro.engines.pinn.data import CONFIG_FORMAT, check_data, configure_worker, grouped
from fly64_kedro.engines.pinn.inference import load_models, set_weights
from fly64_kedro.engines.pinn.model import PinnModels, build_models
from fly64_kedro.engines.pinn.physics import amplitude_mse, poisson_nll
from fly64_kedro.engines.pinn.settings import BATCH_AUTO, OUTPUT_AUTO, validate_settings
from fly64_kedro.geometry.grouping import draw_groups

logger = logging.getLogger(__name__)


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


class _Warmup(keras.callbacks.Callback):
    """Ramp the learning rate linearly from rate / steps to rate over the first ``steps`` steps.

    Adam's first steps move every weight by about the rate, whatever its gradient's size; at the full rate they
    pushed the deep layers of a gridsize-2 network into a constant output within two epochs (docs/science.md).
    """

    def __init__(self, rate: float, steps: int) -> None:
        super().__init__()
        self.rate, self.steps, self.step = rate, steps, 0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self.step < self.steps:
            self.model.optimizer.learning_rate.assign(self.rate * (self.step + 1) / self.steps)
            self.step += 1


class _Rollback(keras.callbacks.Callback):
    """Undo a fall-back: when the val loss ends an epoch more than ``fraction`` of its improvement so far (first epoch
    to best) above its best, restore the best epoch's weights and halve the learning rate (not below ``min_lr``).

    A dying network jumps in one or two steps, and its ReLUs then stay off (docs/science.md "Warmup"); early stopping
    alone waits 10 epochs and then keeps an epoch from before the phase was learnt. ``epochs`` lists the rollbacks.
    """

    def __init__(self, fraction: float, min_lr: float, job: str) -> None:
        super().__init__()
        self.fraction, self.min_lr, self.job = fraction, min_lr, job
        self.first, self.best, self.weights = math.inf, math.inf, None
        self.epochs: list[int] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        val = float((logs or {})["val_loss"])
        self.first = val if epoch == 0 else self.first
        if val < self.best:
            self.best, self.weights = val, self.model.get_weights()
        elif self.weights is not None and val - self.best > self.fraction * (self.first - self.best) > 0:
            self.model.set_weights(self.weights)
            rate = self.model.optimizer.learning_rate
            rate.assign(max(float(rate.numpy()) / 2, self.min_lr))
            self.epochs.append(epoch + 1)
            logger.info(
                "PINN %s: epoch %d val_loss %.6g jumped back from its best %.6g; restored the best weights, lr %.3g",
                self.job,
                epoch + 1,
                val,
                self.best,
                float(rate.numpy()),
            )


class _AveragedWeights(keras.callbacks.Callback):
    """Validate and keep the optimizer's moving average of the weights (Adam ``use_ema``), not the last step's.

    The average is swapped in before each validation and the training weights back at the next epoch's start, so
    the val loss, the early-stopping choice and the restored weights are all the average's. Why: the last step's
    weights scored test phase R2 values 0.1-0.4 apart on adjacent epochs while the val loss moved < 0.5 %
    (docs/science.md "What did not help").
    """

    def __init__(self) -> None:
        super().__init__()
        self.training_values: list[np.ndarray] | None = None

    def on_test_begin(self, logs: dict | None = None) -> None:
        if self.training_values is None:
            optimizer = self.model.optimizer
            self.training_values = [v.numpy() for v in optimizer._trainable_variables]
            for variable, average in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average):
                variable.assign(average)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.training_values is not None:
            for variable, value in zip(self.model.optimizer._trainable_variables, self.training_values):
                variable.assign(value)
            self.training_values = None


class _EpochLogger(keras.callbacks.Callback):
    """Log epoch, loss, val_loss, learning rate, elapsed time and ETA at INFO, and keep the per-epoch history
    (loss, val_loss, lr of the epoch's last step, and epoch_s, the epoch's wall seconds including its validation)."""

    def __init__(self, job: str, epochs: int) -> None:
        super().__init__()
        self.job, self.epochs = job, epochs
        self.history: dict[str, list[float]] = {"loss": [], "val_loss": [], "lr": [], "epoch_s": []}
        self.start = self.epoch_start = time.perf_counter()

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.start = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        # The rate of the epoch's last step: this callback runs before ReduceLROnPlateau's cut (list order).
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.history["loss"].append(float(logs["loss"]))
        self.history["val_loss"].append(float(logs["val_loss"]))
        self.history["lr"].append(lr)
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
            lr,
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
    observers: Callable[[PinnModels], Sequence[keras.callbacks.Callback]] | None = None,
    initial: Mapping[str, Any] | None = None,
    teacher: Mapping[str, Any] | None = None,
) -> tuple[PinnModels, dict[str, Any]]:
    """``train``, also returning the trained Keras models (for callers inside the worker).

    ``observers`` builds extra callbacks from the models (e.g. benchmarks/pinn_trace.py's per-epoch test score); they
    run after the project's own, so at an epoch's end they see the weights early stopping would keep.
    ``initial`` ({"weights", "config"} of a trained model, as ``train`` returns them) starts from that model, its
    architecture, input normalisation and canvas (test-time refinement, ``refine``); ``gridsize`` must be its own.
    ``teacher`` ({"weights", "config"} of a trained gridsize-1 model of the same N), with ``warm_start`` at gridsize 2:
    the teacher's network, shared by every group member, is fine-tuned through the group's canvas for
    ``warm_start_epochs`` at ``warm_start_learning_rate`` (docs/science.md "Warm start").
    """
    started = time.perf_counter()
    opts = validate_settings(settings)
    diffraction, probe = np.asarray(diffraction), np.asarray(probe)
    ycoords, xcoords = np.asarray(ycoords, dtype=np.float64), np.asarray(xcoords, dtype=np.float64)
    check_data(diffraction, ycoords, xcoords, probe, scale)
    if gridsize not in (1, 2):
        raise ValueError(f"gridsize must be 1 or 2, got {gridsize}")
    channels, n_pix = gridsize**2, diffraction.shape[1]
    if gridsize > 1 and opts["neighbour_pool"] < channels:
        raise ValueError(f"PINN setting neighbour_pool K={opts['neighbour_pool']} must be >= C={channels} (gridsize^2)")
    configure_worker(opts["threads"], opts["intra_op_threads"])
    keras.utils.set_random_seed(opts["training_seed"])  # seeded weights and shuffles

    pool = opts["neighbour_pool"] if gridsize > 1 else 1
    groups = draw_groups(
        ycoords, xcoords, channels, pool, opts["grouping_seed"], opts["n_groups"], opts["subsampling_seed"]
    )
    inputs, offsets = grouped(diffraction, ycoords, xcoords, groups)
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

    if initial is not None:
        config = dict(initial["config"])
        if (config.get("gridsize"), config.get("N")) != (gridsize, n_pix):
            raise ValueError(
                f"the initial PINN model is gridsize {config.get('gridsize')} at N={config.get('N')}; the data need "
                f"gridsize {gridsize} at N={n_pix}"
            )
    else:
        config = {
            "format": CONFIG_FORMAT,
            "N": n_pix,
            "gridsize": gridsize,
            "filters": opts["filters"],
            "input_scale": 1.0 / rms,  # normalised input has unit RMS over the training set
            "intensity_scale": float(scale),
            "trainable_scale": opts["trainable_scale"],
            "output": OUTPUT_AUTO[gridsize] if opts["output"] == "auto" else opts["output"],
            "amplitude_range": opts["amplitude_range"],
            # Canvas half-width: the largest member offset, capped at N so the canvas never exceeds 3N + 2 pixels.
            "canvas_radius": int(min(math.ceil(float(np.abs(offsets).max())), n_pix)) if gridsize > 1 else 0,
            "keras_version": keras.__version__,
            "tensorflow_version": tf.__version__,
        }
    warm = gridsize > 1 and opts["warm_start"] and initial is None  # a refinement starts from its own model
    if warm and teacher is None:
        raise ValueError("PINN setting warm_start needs the view's trained gridsize-1 model (teacher)")
    if warm:
        config = _warm_config(teacher["config"], config)
        models = build_models(config, probe)
        set_weights(models, teacher["weights"], complete=False)
        epochs, rate = opts["warm_start_epochs"], opts["warm_start_learning_rate"]
        floor = min(opts["min_learning_rate"], rate)
    else:
        epochs, rate, floor = opts["epochs"], opts["learning_rate"], opts["min_learning_rate"]
        models = build_models(config, probe) if initial is None else load_models(initial["weights"], config)
    device = tensorflow_device()
    # XLA pays off on a GPU; on CPU it compiled slower and ran ~2x slower per epoch for this model.
    jit = device == "gpu" if opts["jit_compile"] == "auto" else opts["jit_compile"]
    # The loss gradient grows with the counts, so the clip is given per mean count per pixel (dose-free).
    clip = None if opts["gradient_clip"] is None else opts["gradient_clip"] * float(counts[trn].mean())

    def features(idx: np.ndarray) -> dict[str, np.ndarray]:
        return {"diffraction": inputs[idx], **({"offsets": offsets[idx]} if gridsize > 1 else {})}

    symmetries = symmetry.probe_symmetries(probe) if opts["augment"] else symmetry.ALL[:1]
    batch_size = BATCH_AUTO[gridsize] if opts["batch_size"] == "auto" else opts["batch_size"]
    batches = _SymmetricBatches(features(trn), counts[trn], batch_size, symmetries, opts["training_seed"])
    # Time constant of average_epochs epochs: momentum 1 - 1 / steps averaged over (0 when that is under one step).
    averaging = opts["average_epochs"] > 0
    momentum = max(0.0, 1.0 - 1.0 / (opts["average_epochs"] * len(batches))) if averaging else None
    ema = {"use_ema": True, "ema_momentum": momentum} if averaging else {}
    optimizer = keras.optimizers.Adam(rate, beta_2=opts["adam_beta_2"], global_clipnorm=clip, **ema)
    # Creating Adam's slots now lets fit trace its step once, not twice (saves ~2.5 s per training on 2 CPU cores).
    optimizer.build(models.training.trainable_variables)
    loss = {"poisson": poisson_nll, "amplitude": amplitude_mse}[opts["loss"]]
    models.training.compile(optimizer=optimizer, loss=loss, jit_compile=jit)
    epoch_log = _EpochLogger(job, epochs)
    rollback = None if opts["rollback"] is None else _Rollback(opts["rollback"], floor, job)
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=opts["early_stopping_patience"], restore_best_weights=True
    )
    logger.info(
        "PINN %s: training gridsize %d %s on %d groups (%d validation, %d probe symmetries) on the %s, N=%d, "
        "filters %d, canvas radius %d px",
        job,
        gridsize,
        "from the gridsize-1 model (warm start)" if warm else "from scratch",
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
        epochs=epochs,
        validation_data=(features(val), counts[val]),
        callbacks=[
            _Warmup(rate, opts["warmup_epochs"] * len(batches)),
            *([_AveragedWeights()] if averaging else []),
            epoch_log,
            *([rollback] if rollback else []),
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.5, patience=opts["plateau_patience"], min_lr=floor
            ),
            stopper,
            keras.callbacks.TerminateOnNaN(),
            *(observers(models) if observers else []),
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
        "stop_reason": _stop_reason(stopper, epoch_log.history, opts["early_stopping_patience"], epochs),
        "n_symmetries": len(symmetries),
        "n_train_groups": len(trn),
        "n_val_groups": n_val,
        "gradient_clip_norm": clip,
        "batch_size": batch_size,
        "average_momentum": momentum,
        "rollback_epochs": rollback.epochs if rollback else [],
        "warm_start": warm,
        # In effect, not as asked (a worker keeps its first job's; 0: TensorFlow's default)
        "tf_threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
    }
    logger.info("PINN %s: trained %d epochs in %.1f s", job, len(epoch_log.history["loss"]), result["wall_time_s"])
    return models, result


def _warm_config(teacher: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """The gridsize-2 ``config`` of a network that starts from the gridsize-1 ``teacher``: the teacher's layers,
    output and input normalisation, shared by every group member."""
    if (teacher.get("gridsize"), teacher.get("N")) != (1, config["N"]):
        raise ValueError(
            f"the PINN teacher must be a gridsize-1 model at N={config['N']}, got gridsize {teacher.get('gridsize')} "
            f"at N={teacher.get('N')}"
        )
    return {**teacher, **{k: config[k] for k in ("gridsize", "canvas_radius")}, "members": "shared"}


def _stop_reason(
    stopper: keras.callbacks.EarlyStopping, history: dict[str, list[float]], patience: int, epochs: int
) -> str:
    best = int(np.argmin(history["val_loss"])) + 1
    if stopper.stopped_epoch > 0:
        return f"converged: val_loss did not improve for {patience} epochs (best epoch {best}, restored)"
    if len(history["loss"]) < epochs:
        return "stopped: non-finite loss"
    return f"epoch budget ({epochs}) spent (best epoch {best}, restored)"


def train(
    diffraction: np.ndarray,
    ycoords: np.ndarray,
    xcoords: np.ndarray,
    probe: np.ndarray,
    scale: float,
    gridsize: int,
    settings: Mapping[str, Any],
    job: str = "",
    teacher: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the PINN unsupervised on (n, N, N) diffraction amplitudes with scan positions (pixels).

    ``scale`` is the exposure scale s from the data's metadata (counts = (diffraction * s)^2). Returns
    {"weights": {name: float32 array}, "config": JSON-serialisable dict, "history": {"loss", "val_loss", "lr",
    "epoch_s"} per epoch, "wall_time_s": seconds, "device" ("gpu" or "cpu"), "best_epoch", "epochs_run",
    "stop_reason", "n_symmetries", "n_train_groups", "n_val_groups", "gradient_clip_norm" (the global-norm clip applied,
    or None), "batch_size" (groups per step), "average_momentum" (the weight average's per-step momentum, or None),
    "rollback_epochs" (1-based epochs after which the best weights were restored; empty unless rollback is set),
    "tf_threads" ({"intra_op", "inter_op"}: the TensorFlow threads the training ran with; 0 = TensorFlow's default)};
    the weights are those of the epoch with the lowest validation loss (its weight average when average_epochs > 0).
    """
    return fit(diffraction, ycoords, xcoords, probe, scale, gridsize, settings, job, teacher=teacher)[1]


def refine(
    weights: Mapping[str, np.ndarray],
    config: Mapping[str, Any],
    diffraction: np.ndarray,
    ycoords: np.ndarray,
    xcoords: np.ndarray,
    probe: np.ndarray,
    scale: float,
    settings: Mapping[str, Any],
    job: str = "",
) -> dict[str, Any]:
    """Test-time refinement: train a trained model (``weights``, ``config``) on, e.g., the test view's own diffraction,
    without labels, as ``train`` does from scratch; returns what ``train`` returns. The model's probe and input
    normalisation are kept; ``probe`` and ``scale`` only describe the data (checked, and the counts' scale)."""
    initial = {"weights": weights, "config": config}
    return fit(diffraction, ycoords, xcoords, probe, scale, config["gridsize"], settings, job, initial=initial)[1]
