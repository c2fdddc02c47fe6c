"""Properties of the alignment to the ground truth (docs/science.md "Comparison") on seeded smooth random objects."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from fly64_kedro.metrics.alignment import (
    Region,
    align_to_truth,
    apply_shift,
    compared_region,
    fit_amplitude_scale,
    fit_phase_offset,
    fit_phase_plane,
    register_subpixel,
    scanned_region,
    trusted_registration,
)
from fly64_kedro.metrics.registry import score
from fly64_kedro.physics.synthetic_object import focused_probe, synthetic_fly_object

H = W = 192
N = 64


def smooth_field(seed: int, shape: tuple[int, int] = (H, W), sigma: float = 3.0) -> np.ndarray:
    """Periodic Gaussian-filtered white noise with unit standard deviation (so Fourier shifts are exact)."""
    field = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma, mode="wrap")
    return field / field.std()


def complex_object(seed: int = 0) -> np.ndarray:
    """Amplitude 0.6 +- 0.15 and phase spanning several radians, both smooth."""
    return (0.6 + 0.15 * smooth_field(seed)) * np.exp(1.2j * smooth_field(seed + 1))


def grid_scan(start: float, stop: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.meshgrid(np.arange(start, stop + 1e-9, step), np.arange(start, stop + 1e-9, step), indexing="ij")
    return y.ravel(), x.ravel()


def phase_plane(a: float, b: float, c: float, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    rows, cols = np.indices(shape)
    return a + b * rows + c * cols


def grid_region(margin: int = 4, shape: tuple[int, int] = (H, W), n_pix: int = N) -> Region:
    """The compared region of a regular scan with a flat probe (every pixel of the box is lit)."""
    y, x = grid_scan(50, 142, 8)
    return compared_region(y, x, np.ones((n_pix, n_pix)), shape, margin)


def test_scanned_region_is_the_bounding_box_of_the_illuminated_pixels() -> None:
    rng = np.random.default_rng(0)
    y, x = rng.uniform(40, 150, 30), rng.uniform(35, 120, 30)
    lit = np.zeros((H, W), dtype=bool)
    for cy, cx in zip(y, x):
        # Bilinear taps of the patch sampling y - N/2 .. y + N/2 - 1 (forward-model convention).
        r0, c0 = int(np.floor(cy - N / 2)), int(np.floor(cx - N / 2))
        lit[r0 : r0 + N + 1, c0 : c0 + N + 1] = True
    rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    assert scanned_region(y, x, N, (H, W), 0) == (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    assert scanned_region(y, x, N, (H, W), 5) == (slice(rows[0] + 5, rows[-1] - 4), slice(cols[0] + 5, cols[-1] - 4))


def test_scanned_region_is_clipped_to_the_object_and_rejects_an_empty_box() -> None:
    # Rows: the patches reach 22 px above and 20 px below the object, more than the 2 px margin: clipped.
    rows, cols = scanned_region(np.array([10.0, 180.0]), np.array([96.0, 96.0]), N, (H, W), 2)
    assert (rows, cols) == (slice(0, H), slice(96 - 32 + 2, 96 + 32 - 2))
    with pytest.raises(ValueError, match="empty"):
        scanned_region(np.array([96.0]), np.array([96.0]), N, (H, W), N // 2)
    with pytest.raises(ValueError, match="margin"):
        scanned_region(np.array([96.0]), np.array([96.0]), N, (H, W), -1)


def test_apply_shift_is_invertible_and_matches_an_integer_roll() -> None:
    obj = complex_object()
    np.testing.assert_allclose(apply_shift(apply_shift(obj, (1.3, -2.7)), (-1.3, 2.7)), obj, atol=1e-12)
    np.testing.assert_allclose(apply_shift(obj, (3, -5)), np.roll(obj, (3, -5), axis=(0, 1)), atol=1e-12)


@pytest.mark.parametrize("shift", [(1.3, -2.7), (-0.45, 0.2), (4.05, 3.61)])
def test_registration_recovers_a_subpixel_shift_of_a_smooth_real_image(shift: tuple[float, float]) -> None:
    image = smooth_field(2)
    moved = apply_shift(image, shift).real
    crop = (slice(20, 170), slice(30, 180))  # a non-periodic crop, like the scanned region
    found, peak = register_subpixel(image[crop], moved[crop], "amplitude")
    np.testing.assert_allclose(found, (-shift[0], -shift[1]), atol=0.05)
    assert peak > 0.95


def test_registration_of_a_complex_object_ignores_offset_ramp_scale_and_noise() -> None:
    obj = complex_object()
    rng = np.random.default_rng(3)
    moved = apply_shift(obj, (1.3, -2.7)) * 0.3 * np.exp(1j * phase_plane(2.0, 0.05, -0.04))
    moved = moved + 0.02 * (rng.standard_normal(obj.shape) + 1j * rng.standard_normal(obj.shape))
    crop = (slice(20, 170), slice(30, 180))
    registration = trusted_registration(obj[crop], moved[crop])
    assert registration.decision == "applied"
    np.testing.assert_allclose(registration.shift, (-1.3, 2.7), atol=0.05)


def test_registration_works_on_a_phase_only_object() -> None:
    # The truth has no amplitude structure: the phase channel alone decides.
    obj = np.exp(1.5j * smooth_field(5))
    moved = apply_shift(obj, (-2.2, 0.7)) * np.exp(1j * phase_plane(-1.0, -0.03, 0.05))
    crop = (slice(20, 170), slice(30, 180))
    registration = trusted_registration(obj[crop], moved[crop])
    assert registration.amplitude_shift is None and registration.decision == "applied"
    np.testing.assert_allclose(registration.shift, (2.2, -0.7), atol=0.05)


def fly_truth_and_region() -> tuple[np.ndarray, Region]:
    """The synthetic fly (phase spans about [-1.3, 2.5] rad) and the region of a random test-half scan."""
    obj = synthetic_fly_object((256, 256), 42).astype(np.complex128)
    rng = np.random.default_rng(1)
    y, x = rng.uniform(32, 224, (2, 400))
    keep = y >= 128
    return obj, compared_region(y[keep], x[keep], focused_probe(64), obj.shape, 8)


@pytest.mark.parametrize("kind", ["blurred", "noisy", "zero phase", "flat"])
def test_a_smooth_noisy_or_structureless_image_is_not_shifted(kind: str) -> None:
    """The issue's spurious shifts: the truth blurred by 2 px registered at (-1.57, +0.64) px, the true amplitude
    with zero phase at (0.99, 0.89) px. Only a sharp peak on which amplitude and phase agree may move a model."""
    truth, region = fly_truth_and_region()
    rng = np.random.default_rng(2)
    recon = {
        "blurred": ndimage.gaussian_filter(truth.real, 2) + 1j * ndimage.gaussian_filter(truth.imag, 2),
        "noisy": truth + 0.1 * (rng.standard_normal(truth.shape) + 1j * rng.standard_normal(truth.shape)),
        "zero phase": np.abs(truth).astype(np.complex128),
        "flat": np.full(truth.shape, 0.5 + 0j),
    }[kind]
    aligned = align_to_truth(truth, recon, region, max_shift=4)
    assert np.abs(aligned.shift).max() <= 0.1, aligned.registration


def test_a_clear_shift_of_the_fly_is_found_on_both_channels_and_applied() -> None:
    truth, region = fly_truth_and_region()
    aligned = align_to_truth(truth, apply_shift(truth, (1.3, -0.7)) * np.exp(0.4j), region, max_shift=4)
    assert aligned.registration.decision == "applied"
    # The lit mask tapers the correlation's support, which pulls the estimate slightly towards 0.
    assert aligned.shift == pytest.approx((-1.3, 0.7), abs=0.05)


@pytest.mark.parametrize("plane", [(0.7, 0.0, 0.0), (-2.5, 0.03, -0.02), (3.0, 0.2, 0.15)])  # last one wraps often
def test_phase_offset_and_plane_are_recovered_and_removed(plane: tuple[float, float, float]) -> None:
    obj = complex_object()[:96, :128]
    moving = obj * np.exp(1j * phase_plane(*plane, shape=obj.shape))
    a, b, c = fit_phase_plane(obj, moving)
    assert np.angle(np.exp(1j * (a - plane[0]))) == pytest.approx(0.0, abs=1e-9)
    assert (b, c) == pytest.approx(plane[1:], abs=1e-9)


@pytest.mark.parametrize("offset", [0.7, -3.0, 3.1])  # the last two put the residual across the +-pi cut
def test_phase_offset_is_the_least_squares_mean_of_the_wrapped_residual(offset: float) -> None:
    obj = complex_object()[:96, :128]
    noise = 0.3 * smooth_field(9, obj.shape)
    mask = np.abs(noise) < 0.5
    found = fit_phase_offset(obj, obj * np.exp(1j * (offset + noise)), mask)
    assert np.angle(np.exp(1j * (found - offset - noise[mask].mean()))) == pytest.approx(0.0, abs=1e-12)


def test_amplitude_scale_is_the_least_squares_minimiser() -> None:
    ref = np.abs(complex_object())
    assert fit_amplitude_scale(ref, ref / 2.5) == pytest.approx(2.5, rel=1e-12)
    moving = ref * 0.4 + 0.05 * np.random.default_rng(4).standard_normal(ref.shape)
    k = fit_amplitude_scale(ref, moving)
    cost = [np.sum((ref - kk * moving) ** 2) for kk in (k * 0.999, k, k * 1.001)]
    assert cost[1] < cost[0] and cost[1] < cost[2]


@pytest.mark.parametrize(
    "scale, plane",
    [(1.0, (2.0, 0.0, 0.0)), (0.4, (0.0, 0.0, 0.0)), (0.4, (-2.0, 0.03, -0.02)), (3.0, (1.0, -0.1, 0.2))],
)
def test_metrics_after_alignment_ignore_phase_offset_plane_and_amplitude_scale(
    scale: float, plane: tuple[float, float, float]
) -> None:
    truth = complex_object()
    reference = score(align_to_truth(truth, truth, grid_region(), phase_plane=True))
    aligned = align_to_truth(truth, truth * scale * np.exp(1j * phase_plane(*plane)), grid_region(), phase_plane=True)
    assert aligned.amplitude_scale == pytest.approx(1 / scale, rel=1e-9)
    assert np.angle(np.exp(1j * (aligned.phase_plane[0] - plane[0]))) == pytest.approx(0.0, abs=1e-9)
    assert aligned.phase_plane[1:] == pytest.approx(plane[1:], abs=1e-9)
    metrics = score(aligned)
    assert metrics["nrmse"]["amplitude"] < 1e-9
    for part in ("amplitude", "phase"):
        assert metrics["rmse"][part] < 1e-9
        for name in ("r2", "ssim", "ms_ssim", "frc50", "frc_half_bit"):
            assert metrics[name][part] == pytest.approx(reference[name][part], abs=1e-9), (part, name)


def test_metrics_after_alignment_also_ignore_a_subpixel_shift() -> None:
    truth = complex_object()
    y, x = grid_scan(50, 142, 8)
    recon = apply_shift(truth, (1.3, -2.7)) * 0.4 * np.exp(1j * phase_plane(2.0, 0.03, -0.02))
    aligned = align_to_truth(truth, recon, grid_region(), phase_plane=True)
    assert aligned.shift == pytest.approx((-1.3, 2.7), abs=0.01)
    assert aligned.amplitude_scale == pytest.approx(2.5, rel=1e-3)
    assert aligned.phase_plane[1:] == pytest.approx((0.03, -0.02), abs=1e-5)
    assert aligned.truth.shape == aligned.recon.shape
    metrics = score(aligned)
    for part in ("amplitude", "phase"):
        # Not exact: re-shifting a crop by a sub-pixel amount cannot reproduce the periodic full-frame shift.
        assert metrics["rmse"][part] < 1e-3 and metrics["psnr"][part] > 50
        assert metrics["ssim"][part] > 0.999 and metrics["ms_ssim"][part] > 0.999


def test_alignment_improves_a_misaligned_reconstruction_beyond_a_naive_comparison() -> None:
    truth = complex_object()
    recon = apply_shift(truth, (0.6, -0.8)) * np.exp(0.5j)
    aligned = align_to_truth(truth, recon, grid_region())
    rows, cols = aligned.region.rows, aligned.region.cols
    naive = np.sqrt(np.mean(np.abs(truth[rows, cols] - recon[rows, cols]) ** 2))
    assert np.sqrt(np.mean(np.abs(aligned.truth - aligned.amplitude_scale * aligned.recon) ** 2)) < naive / 20


def test_align_to_truth_rejects_nan_and_a_shape_mismatch() -> None:
    truth = complex_object()
    bad = truth.copy()
    bad[100, 100] = np.nan
    with pytest.raises(ValueError, match="NaN/Inf"):
        align_to_truth(truth, bad, grid_region())
    with pytest.raises(ValueError, match="shape"):
        align_to_truth(truth, truth[:-1], grid_region())


def test_registration_beyond_max_shift_is_reported_but_not_applied() -> None:
    """A far correlation peak (a poor reconstruction) must not be used to flatter the reconstruction."""
    truth = complex_object()
    moved = np.roll(truth, (0, 9), axis=(0, 1))
    free = align_to_truth(truth, moved, grid_region())
    bounded = align_to_truth(truth, moved, grid_region(), max_shift=4)
    assert abs(free.shift[1]) > 8 and free.registration.decision == "applied"
    assert bounded.shift == (0.0, 0.0) and abs(bounded.registration.amplitude_shift[1]) > 8
    assert "max_shift" in bounded.registration.decision
