"""The metric registry: every metric the comparison reports, scored the same way for every model and floor.

Adding a metric is one entry in ``METRICS``. Image metrics score the amplitude and the wrap-aligned phase
separately; a complex metric scores the complex object once and its value fills both columns of the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fly64_kedro.metrics.alignment import Alignment
from fly64_kedro.metrics.image_quality import (
    frc,
    frc_resolution,
    half_bit_threshold,
    mae,
    ms_ssim,
    nrmse_complex,
    psnr,
    r2,
    ring_pixel_counts,
    rmse,
    ssim,
)


@dataclass(frozen=True)
class Metric:
    """``score(truth, test, mask) -> float``; ``label`` (with its unit) for tables; ``complex``: scored on the
    complex object (truth, amplitude-scaled reconstruction) instead of on amplitude and phase."""

    name: str
    label: str
    score: Callable[[np.ndarray, np.ndarray, np.ndarray], float]
    complex: bool = False


def _frc50(truth: np.ndarray, test: np.ndarray, mask: np.ndarray) -> float:
    return frc_resolution(*frc(truth, test, mask), 0.5)


def _frc_half_bit(truth: np.ndarray, test: np.ndarray, mask: np.ndarray) -> float:
    freq, curve = frc(truth, test, mask)
    return frc_resolution(freq, curve, half_bit_threshold(ring_pixel_counts(np.shape(truth))))


METRICS: tuple[Metric, ...] = (
    Metric("r2", "R2", r2),
    Metric("ms_ssim", "MS-SSIM", ms_ssim),
    Metric("ssim", "SSIM", ssim),
    Metric("nrmse", "NRMSE (complex)", nrmse_complex, complex=True),
    Metric("mae", "MAE", mae),
    Metric("rmse", "RMSE", rmse),
    Metric("psnr", "PSNR (dB)", psnr),
    Metric("frc50", "FRC 0.5 (cycles/px)", _frc50),
    Metric("frc_half_bit", "FRC 1/2-bit (cycles/px)", _frc_half_bit),
)
METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)


def wrap_aligned_phase(truth: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """The reconstruction's phase on the branch nearest the truth's: angle(truth) + angle(recon * conj(truth)).

    The wrapped residual added to the truth, so a difference of 2 pi (a wrap) is no error.
    """
    return np.angle(truth) + np.angle(np.asarray(recon) * np.conj(truth))


def aligned_images(aligned: Alignment) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(truth, reconstruction) pairs that every metric and figure uses: "amplitude" (scaled), "phase"
    (wrap-aligned) and "complex" (amplitude-scaled reconstruction)."""
    truth, recon, scale = aligned.truth, aligned.recon, aligned.amplitude_scale
    return {
        "amplitude": (np.abs(truth), scale * np.abs(recon)),
        "phase": (np.angle(truth), wrap_aligned_phase(truth, recon)),
        "complex": (truth, scale * recon),
    }


def score(aligned: Alignment) -> dict[str, dict[str, float]]:
    """{metric name: {"amplitude": value, "phase": value}} of one aligned reconstruction, over its mask."""
    images = aligned_images(aligned)
    scores = {}
    for metric in METRICS:
        if metric.complex:
            value = metric.score(*images["complex"], aligned.mask)
            scores[metric.name] = {"amplitude": value, "phase": value}
        else:
            scores[metric.name] = {part: metric.score(*images[part], aligned.mask) for part in ("amplitude", "phase")}
    return scores


def frc_curves(aligned: Alignment) -> dict[str, list[float]]:
    """{"freq": cycles/px, "amplitude": FRC, "phase": FRC of the wrap-aligned phase} over the mask."""
    images = aligned_images(aligned)
    freq, amplitude = frc(*images["amplitude"], aligned.mask)
    _, phase = frc(*images["phase"], aligned.mask)
    return {"freq": freq.tolist(), "amplitude": amplitude.tolist(), "phase": phase.tolist()}
