"""The bar's independent R2 (benchmarks/bar_r2.py): 1 for the truth however it is scaled, offset or wrapped, 0 for a
flat image."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bar_r2.py"
spec = importlib.util.spec_from_file_location("bar_r2", SCRIPT)
bar_r2 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bar_r2)


@pytest.fixture
def truth() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.uniform(0.2, 1.0, (40, 40)) * np.exp(1j * rng.uniform(-1.2, 2.5, (40, 40)))).astype(np.complex64)


def test_truth_scores_one_whatever_its_scale_global_phase_or_wraps(truth: np.ndarray) -> None:
    mask = np.ones(truth.shape, bool)
    mask[:5] = False
    wrapped = truth * np.exp(1j * 2 * np.pi * np.random.default_rng(1).integers(-1, 2, truth.shape))
    for obj in (truth, 3.0 * truth, truth * np.exp(0.7j), wrapped):
        amplitude, phase = bar_r2.r2_scores(obj, truth, mask)
        assert amplitude == pytest.approx(1.0, abs=1e-5) and phase == pytest.approx(1.0, abs=1e-5)


def test_flat_image_scores_zero_and_noise_scores_less_than_one(truth: np.ndarray) -> None:
    mask = np.ones(truth.shape, bool)
    flat = np.full(truth.shape, 0.5, np.complex64)
    assert bar_r2.r2_scores(flat, truth, mask) == pytest.approx((0.0, 0.0), abs=1e-6)
    noisy = truth * np.exp(1j * np.random.default_rng(2).normal(0, 0.3, truth.shape))
    assert bar_r2.r2_scores(noisy, truth, mask)[1] < 0.99
