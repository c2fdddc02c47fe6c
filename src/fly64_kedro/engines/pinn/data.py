"""What PINN training and inference share: the saved-model format, input checks, threads, group stacking.

Imports TensorFlow: use only inside the "tensorflow" worker.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import tensorflow as tf

from fly64_kedro.engines.pinn.settings import LEVELS

logger = logging.getLogger(__name__)

CONFIG_FORMAT = "fly64-pinn-5"  # 4: output (cartesian | polar) in the config; 5: amplitude_range


def check_data(
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


def configure_worker(threads: int | None, intra_op_threads: int | None) -> None:
    """Deterministic TensorFlow kernels (same parameters, same numbers; a few % slower), GPU memory taken as
    needed (not all of it at start, so a torch job or a second TensorFlow worker can share the GPU) and the threads
    (settable only before the worker's first TensorFlow op; None: TensorFlow's default).

    ``threads`` is how many independent ops run at once (inter-op: the two decoders and their gradients), which
    leaves every number as it is; ``intra_op_threads`` is how many threads one op uses, and any value but 1 changes
    the kernels' summation order and so the trained weights (docs/science.md "Determinism").
    """
    tf.config.experimental.enable_op_determinism()
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # the GPU is already initialised in this worker: its setting stays
            pass
    wanted = (intra_op_threads or 0, threads or 0)  # TensorFlow's 0: its default
    current = (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )
    if current == wanted:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(wanted[0])
        tf.config.threading.set_inter_op_parallelism_threads(wanted[1])
    except RuntimeError:
        logger.warning(
            "TensorFlow is already running in this worker with (intra-op, inter-op) threads %s; ignoring %s",
            current,
            wanted,
        )


def grouped(
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
