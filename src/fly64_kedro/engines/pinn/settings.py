"""PINN settings: the table of rules and their check (TensorFlow-free, so the run can check them before any node
runs)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

LEVELS = 4  # encoder depth: N must be a multiple of 2**LEVELS

# Settings that must be integers >= the given minimum (None allowed where listed in NULLABLE).
INTEGER_SETTINGS = {
    "epochs": 1,
    "batch_size": 1,
    "plateau_patience": 1,
    "early_stopping_patience": 1,
    "n_groups": 1,
    "filters": 1,
    "neighbour_pool": 1,
    "grouping_seed": 0,
    "subsampling_seed": 0,
    "training_seed": 0,
    "threads": 1,
}
NULLABLE = {"n_groups", "threads", "intra_op_threads"}
OPTIONAL = {
    "intra_op_threads": 1,
    "inference_batch_size": 64,
    "jit_compile": "auto",
    "min_learning_rate": 1e-4,
    "augment": True,
    "trainable_scale": True,
    "output": "auto",
    "stitch": "raw",
    "gradient_clip": None,
    "loss": "poisson",
    "warmup_epochs": 0,
    "average_epochs": 0.0,
    "amplitude_range": 1.0,
    "adam_beta_2": 0.999,
    "average_symmetries": False,
    "rollback": None,
    "warm_start": False,
    "warm_start_epochs": 10,
    "warm_start_learning_rate": 1e-4,
}
BOOLEAN_SETTINGS = ("augment", "trainable_scale", "average_symmetries", "warm_start")
OUTPUT_AUTO = {1: "polar", 2: "cartesian"}  # per gridsize; docs/science.md "Cartesian output" has the measurements
# Groups per step, per gridsize: over four seeds 8 beat 16 at gridsize 1 and lost to it at gridsize 2 (docs/science.md
# "Seed spread").
BATCH_AUTO = {1: 8, 2: 16}
CHOICES = {
    "output": ("auto", "cartesian", "polar"),  # decoders predict (real, imag) or (amplitude, phase); auto: OUTPUT_AUTO
    "stitch": ("raw", "merged"),  # gridsize 2 inference stitches the decoders' patch or the canvas average
    "loss": ("poisson", "amplitude"),  # Poisson NLL of the counts, or squared error of their square roots
}


def _real(value: Any) -> bool:
    """A finite real number, not a bool (YAML's true would otherwise pass as 1)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def validate_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Check the PINN settings (Kedro parameters); return them with optional ones filled in.

    Required: epochs, batch_size (groups per step, or "auto": BATCH_AUTO by gridsize), learning_rate,
    plateau_patience, early_stopping_patience, validation_fraction, n_groups (null = all), filters, neighbour_pool,
    grouping_seed, subsampling_seed, training_seed, threads (TensorFlow ops run side by side, which leaves the numbers
    unchanged; null = TensorFlow's default).
    Optional: intra_op_threads (threads per TensorFlow op: any value but 1 makes the weights depend on it; null =
    TensorFlow's default; 1), inference_batch_size (64), jit_compile (XLA for training: "auto" = on a GPU only, true,
    false), min_learning_rate (floor of the plateau schedule, 1e-4), augment (random symmetries of the probe, true),
    trainable_scale (learn the intensity scale, starting from the known exposure scale, as upstream does; true),
    output (what the decoders predict: "cartesian", the object's real and imaginary parts, "polar", amplitude and
    phase as upstream, or "auto": polar at gridsize 1, cartesian at gridsize 2; docs/science.md says why), stitch
    (gridsize 2 inference: "raw", each position's own decoder patch, or "merged", its group's canvas average),
    gradient_clip (Adam's global gradient-norm clip per mean count per pixel of the training data, so one value
    serves every dose; null: none), loss ("poisson", the NLL of the counts, or "amplitude", the squared error of
    their square roots), warmup_epochs (the learning rate ramps up linearly over this many epochs' steps,
    overriding the plateau schedule meanwhile; 0), average_epochs (validate and keep an exponential
    moving average of the weights with a time constant of this many epochs; 0, off), amplitude_range (the bound of the
    decoders' outputs: polar amplitude this times a sigmoid, cartesian parts this times tanh, the object starting at
    0.5 whatever the range; a number >= 1; 1), adam_beta_2 (Adam's second-moment decay: a step can reach
    (1 - 0.9) / sqrt(1 - adam_beta_2) times the rate; 0.999, Keras's), average_symmetries (inference predicts each
    patch from the pattern under every symmetry of the probe, maps the predictions back and averages them after
    aligning their global phase; false), rollback (when an epoch's val loss ends more than this fraction of its
    improvement so far above its best, the best weights are restored and the rate halved; a number > 0 or null, off),
    warm_start (gridsize 2 starts from the view's trained gridsize-1 model, run on each group member, instead of
    from scratch; false), warm_start_epochs (its fine-tuning budget, in place of epochs; 10) and
    warm_start_learning_rate (its rate, in place of learning_rate; 1e-4).
    Unknown keys are ignored. Raises ValueError naming the setting and its rule.
    """
    required = [*INTEGER_SETTINGS, "learning_rate", "validation_fraction"]
    missing = [name for name in required if name not in settings]
    if missing:
        raise ValueError(f"PINN settings are missing {', '.join(missing)}")
    checked = {**OPTIONAL, **settings}
    integers = {
        **INTEGER_SETTINGS,
        "intra_op_threads": 1,
        "inference_batch_size": 1,
        "warmup_epochs": 0,
        "warm_start_epochs": 1,
    }
    for name, minimum in integers.items():
        value = checked[name]
        if (value is None and name in NULLABLE) or (name == "batch_size" and value == "auto"):
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            rule = f"an integer >= {minimum}" + (" or null" if name in NULLABLE else "")
            rule += " or 'auto'" if name == "batch_size" else ""
            raise ValueError(f"PINN setting {name} must be {rule}, got {value!r}")
        checked[name] = int(value)
    if not (checked["jit_compile"] == "auto" or isinstance(checked["jit_compile"], bool)):
        raise ValueError(f"PINN setting jit_compile must be 'auto', true or false, got {checked['jit_compile']!r}")
    for name, allowed in CHOICES.items():
        if checked[name] not in allowed:
            raise ValueError(f"PINN setting {name} must be one of {', '.join(allowed)}, got {checked[name]!r}")
    for name in BOOLEAN_SETTINGS:
        if not isinstance(checked[name], bool):
            raise ValueError(f"PINN setting {name} must be true or false, got {checked[name]!r}")
    for name, low, high in (
        ("learning_rate", 0.0, math.inf),
        ("min_learning_rate", 0.0, math.inf),
        ("validation_fraction", 0.0, 1.0),
        ("adam_beta_2", 0.0, 1.0),
        ("warm_start_learning_rate", 0.0, math.inf),
    ):
        value = checked[name]
        if not (_real(value) and low < value < high):
            raise ValueError(f"PINN setting {name} must be a number in ({low}, {high}), got {value!r}")
        checked[name] = float(value)
    for name, minimum in (("average_epochs", 0), ("amplitude_range", 1)):
        if not (_real(checked[name]) and checked[name] >= minimum):
            raise ValueError(f"PINN setting {name} must be a number >= {minimum}, got {checked[name]!r}")
        checked[name] = float(checked[name])
    for name in ("gradient_clip", "rollback"):
        value = checked[name]
        if value is not None:
            if not (_real(value) and value > 0):
                raise ValueError(f"PINN setting {name} must be a number > 0 or null, got {value!r}")
            checked[name] = float(value)
    if checked["min_learning_rate"] > checked["learning_rate"]:
        raise ValueError(
            f"PINN setting min_learning_rate ({checked['min_learning_rate']}) must be <= learning_rate "
            f"({checked['learning_rate']})"
        )
    return checked
