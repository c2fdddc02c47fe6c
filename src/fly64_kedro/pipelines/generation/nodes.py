"""Generation (docs/science.md "Generation"): synthetic base, scan positions, Poisson far-field data, y-split with a
guard band."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from fly64_kedro.physics.forward import (
    chunks,
    exit_wave_energy,
    exposure_scale,
    extract_patches,
    far_field_amplitude,
    poisson_amplitude,
)
from fly64_kedro.physics.synthetic_object import focused_probe, synthetic_fly_object
from fly64_kedro.record import Record, subset
from fly64_kedro.study import ParameterError

logger = logging.getLogger(__name__)

# Independent random streams derived from the simulation seed (numpy SeedSequence spawn keys).
_POSITIONS_STREAM = 0
_NOISE_STREAM = 1


def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def object_shape(value: Any) -> tuple[int, int]:
    """(H, W) in px from ``generation.base.object_shape``: [H, W], or one integer for a square object (so that
    one ``--params generation.base.object_shape=464`` can set it: Kedro splits --params at commas)."""
    shape = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (list, tuple)) else ()
    if len(shape) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise ParameterError("generation.base.object_shape", "must be [H, W] or one integer, in px > 0", value)
    return int(shape[0]), int(shape[1])


def make_synthetic_base(base: dict[str, Any], study: dict[str, Any]) -> Record:
    """Deterministic fly-like object (base.object_shape px) and focused N x N probe, as a 'base' record."""
    shape = object_shape(base["object_shape"])
    obj = synthetic_fly_object(shape, seed=int(study["seeds"]["simulation"]))
    probe = focused_probe(int(study["N"]), float(base["aperture_fraction"]), float(base["defocus_waves"]))
    meta = {"source": "synthetic_fly_object", "object_shape": list(shape), "N": int(study["N"])}
    return Record({"objectGuess": obj, "probeGuess": probe}, meta)


def draw_scan_positions(object_shape: tuple[int, int], n_pix: int, n_positions: int, seed: int) -> np.ndarray:
    """(n, 2) uniform random scan centres (y, x) in object pixels, buffer N/2 from every edge."""
    height, width = object_shape
    buffer = n_pix / 2
    rng = _stream(seed, _POSITIONS_STREAM)
    y = rng.uniform(buffer, height - buffer, n_positions)
    x = rng.uniform(buffer, width - buffer, n_positions)
    return np.column_stack([y, x])


def simulate_diffraction(
    base: Record, dose: float, study: dict[str, Any], generation: dict[str, Any], label: str = ""
) -> Record:
    """Simulate the whole scan at ``dose`` photons per pattern (DATA-001 'ptycho' record, all positions); ``label``
    is the dose's label in the study (d1e3 ...), recorded in the metadata for every record derived from it.

    Counts ~ Poisson((s |FFT2(O_i P)| / N)^2) with s = sqrt(dose / mean_i sum |O_i P|^2); stored
    diffraction = sqrt(counts) / s (float32 amplitude). Worked in chunks of ``generation.chunk_size``
    patterns so the FFT temporaries never hold the whole scan.
    """
    obj, probe = base["objectGuess"], base["probeGuess"]
    n_pix = probe.shape[0]
    if n_pix != int(study["N"]):
        raise ParameterError("study.N", f"must equal the base probe size {probe.shape}", study["N"])
    n_positions, chunk = int(generation["n_positions"]), int(generation["chunk_size"])
    seed = int(study["seeds"]["simulation"])
    positions = draw_scan_positions(obj.shape, n_pix, n_positions, seed)
    ycoords, xcoords = positions[:, 0].copy(), positions[:, 1].copy()
    noise_rng = _stream(seed, _NOISE_STREAM, round(np.log10(dose) * 1000))
    poisson = bool(generation["poisson_noise"])

    diffraction = np.empty((n_positions, n_pix, n_pix), np.float32)
    patches = np.empty((n_positions, n_pix, n_pix), np.complex64)
    energy = np.empty(n_positions)
    start = time.perf_counter()
    for sl in chunks(n_positions, chunk):
        patches[sl] = extract_patches(obj, ycoords[sl], xcoords[sl], n_pix)
        energy[sl] = exit_wave_energy(patches[sl], probe)
    scale = exposure_scale(dose, float(energy.mean()))
    for sl in chunks(n_positions, chunk):
        exit_waves = patches[sl] * probe
        diffraction[sl] = (
            poisson_amplitude(exit_waves, scale, noise_rng) if poisson else far_field_amplitude(exit_waves)
        )
    mean_counts = float(np.mean(np.sum((diffraction.astype(np.float64) * scale) ** 2, axis=(1, 2))))
    logger.info(
        "simulated %d patterns at dose %.3g in %.1f s (mean counts per pattern %.1f)",
        n_positions,
        dose,
        time.perf_counter() - start,
        mean_counts,
    )
    meta = {
        "dose": float(dose),
        "dose_label": label,
        "scale": scale,
        "N": n_pix,
        "simulation_seed": seed,
        "poisson_noise": poisson,
        "n_positions": n_positions,
        "mean_counts_per_pattern": mean_counts,
        "base": dict(base.meta),
        "counts_recovery": "counts = round((diffraction * scale)**2)",
    }
    arrays = {
        "diffraction": diffraction,
        "xcoords": xcoords,
        "ycoords": ycoords,
        "probeGuess": probe,
        "objectGuess": obj,
        "Y": patches,
        "scan_index": np.arange(n_positions, dtype=np.int64),
    }
    return Record(arrays, meta)


def split_train_test(simulated: Record, study: dict[str, Any], generation: dict[str, Any]) -> tuple[Record, Record]:
    """Split along y at the midpoint of the scan's y-range, dropping a guard band of width N (default) centred
    on the split line, so train and test never illuminate the same object pixels.
    """
    y = simulated["ycoords"]
    n_pix = int(simulated.meta["N"])
    band = float(generation.get("guard_band") or n_pix)
    if band < n_pix:
        raise ParameterError("generation.guard_band", f"must be >= N = {n_pix} px (the probe diameter)", band)
    split_point = 0.5 * (float(y.min()) + float(y.max()))
    train = y < split_point - band / 2
    test = y >= split_point + band / 2
    split_meta = {
        "split_axis": study["split_axis"],
        "split_point": split_point,
        "guard_band": band,
        "n_train": int(train.sum()),
        "n_test": int(test.sum()),
        "n_dropped_guard_band": int(len(y) - train.sum() - test.sum()),
    }
    for name, mask in (("train", train), ("test", test)):
        if mask.sum() == 0:
            raise ValueError(
                f"the {name} half of the split is empty ({split_meta}); use more positions or a larger object"
            )
    logger.info("split at y=%.1f px: %s", split_point, split_meta)
    train_view, test_view = (
        subset(simulated, mask, **split_meta, split=name, view="full")
        for name, mask in (("train", train), ("test", test))
    )
    return train_view, test_view
