"""The metric registry on the synthetic fly: wrap invariance, the floors (flat = R2 0, truth = R2 1), the
stitching ceiling, and one FRC definition for tables and figures."""

from __future__ import annotations

import numpy as np
import pytest

from fly64_kedro.metrics.alignment import align_to_truth, compared_region
from fly64_kedro.metrics.registry import METRIC_NAMES, METRICS, aligned_images, frc_curves, score
from fly64_kedro.physics.forward import extract_patches
from fly64_kedro.physics.stitching import stitch_patches
from fly64_kedro.physics.synthetic_object import focused_probe, synthetic_fly_object
from fly64_kedro.pipelines.generation.nodes import draw_scan_positions

N = 32


def half_scene(lower: bool):
    """The tiny profile's geometry: the fly (phase about [-1.2, 2.5] rad), its probe, one half of its scan (split
    in y with an N-wide guard band) and that half's compared region."""
    truth = synthetic_fly_object((160, 160), 42).astype(np.complex128)
    probe = focused_probe(N, defocus_waves=2.0)
    y, x = draw_scan_positions(truth.shape, N, 400, 42).T
    split = 0.5 * (y.min() + y.max())
    keep = (y >= split + N / 2) if lower else (y < split - N / 2)
    y, x = y[keep], x[keep]
    return truth, probe, y, x, compared_region(y, x, probe, truth.shape, 8)


@pytest.fixture(scope="module")
def scene():
    return half_scene(lower=True)


def test_the_registry_names_every_metric_once_and_leads_with_r2_and_ms_ssim() -> None:
    assert len(set(METRIC_NAMES)) == len(METRICS) and METRIC_NAMES[:2] == ("r2", "ms_ssim")


def test_the_truth_scores_perfectly(scene) -> None:
    truth, _, _, _, region = scene
    scores = score(align_to_truth(truth, truth, region))
    for part in ("amplitude", "phase"):
        assert scores["r2"][part] == pytest.approx(1.0, abs=1e-12)
        assert scores["ms_ssim"][part] == pytest.approx(1.0, abs=1e-12)
    assert scores["nrmse"]["amplitude"] == pytest.approx(0.0, abs=1e-12)


def test_a_2pi_difference_on_a_random_half_of_the_pixels_scores_like_the_truth(scene) -> None:
    truth, _, _, _, region = scene
    wraps = np.random.default_rng(1).random(truth.shape) < 0.5
    # Built from the wrapped angle so that the phase really jumps by 2 pi, not only in exact arithmetic.
    recon = np.abs(truth) * np.exp(1j * (np.angle(truth) + 2 * np.pi * wraps))
    aligned = align_to_truth(truth, recon, region)
    scores = score(aligned)
    for part in ("amplitude", "phase"):
        assert scores["r2"][part] == pytest.approx(1.0, abs=1e-9)
        assert scores["ms_ssim"][part] == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(frc_curves(aligned)["phase"][1:], 1.0, atol=1e-9)
    # Without the wrap-aware phase the same pixels would be scored as 2 pi errors.
    assert np.ptp(np.angle(recon) + 2 * np.pi * wraps - np.angle(truth)) > 6


# The upper half holds the 2.5 rad head: from the circular mean, the least-squares offset needs two steps to
# reach the arithmetic mean (one step leaves R2 = -0.009).
@pytest.mark.parametrize("lower", [True, False])
def test_a_flat_reconstruction_scores_r2_zero_on_amplitude_and_phase(lower: bool) -> None:
    truth, _, _, _, region = half_scene(lower)
    for level in (np.abs(truth[region.rows, region.cols][region.mask]).mean(), 3.0):  # the scale is fitted
        scores = score(align_to_truth(truth, np.full(truth.shape, level + 0j), region))
        assert scores["r2"]["amplitude"] == pytest.approx(0.0, abs=1e-6)
        assert scores["r2"]["phase"] == pytest.approx(0.0, abs=1e-6)
        # The SSIM family does not show it: a flat image keeps a large MS-SSIM.
        assert scores["ms_ssim"]["amplitude"] > 0.1


def test_r2_goes_negative_for_a_reconstruction_worse_than_flat(scene) -> None:
    truth, _, _, _, region = scene
    # Inverted amplitude; phase errors uniform on the circle (a wrapped residual of variance pi^2 / 3).
    noise = np.random.default_rng(3).uniform(-np.pi, np.pi, truth.shape)
    inverted = (1.2 - np.abs(truth)) * np.exp(1j * (np.angle(truth) + noise))
    scores = score(align_to_truth(truth, inverted, region))
    assert scores["r2"]["amplitude"] < 0 and scores["r2"]["phase"] < 0


def test_truth_patches_stitched_on_a_full_view_are_the_stitching_ceiling(scene) -> None:
    truth, probe, y, x, region = scene
    patches = extract_patches(truth.astype(np.complex64), y, x, N)
    stitched = stitch_patches(patches, y, x, truth.shape, probe).object
    scores = score(align_to_truth(truth, stitched, region))
    assert scores["ms_ssim"]["phase"] > 0.95 and scores["r2"]["phase"] > 0.9


def test_the_figures_phase_is_the_metrics_phase(scene) -> None:
    truth, _, _, _, region = scene
    recon = truth * np.exp(1j * (0.3 + 2 * np.pi * (np.random.default_rng(2).random(truth.shape) < 0.5)))
    aligned = align_to_truth(truth, recon, region)
    phase_truth, phase_recon = aligned_images(aligned)["phase"]
    np.testing.assert_allclose(phase_recon, phase_truth, atol=1e-9)
