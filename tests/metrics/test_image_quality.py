"""Properties of the image-quality metrics (docs/science.md "Comparison") on seeded smooth random images."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import structural_similarity

from fly64_kedro.metrics.image_quality import (
    MS_SSIM_WEIGHTS,
    frc,
    frc_resolution,
    half_bit_threshold,
    mae,
    ms_ssim,
    ms_ssim_scales,
    nrmse_complex,
    period_px,
    psnr,
    r2,
    ring_pixel_counts,
    rmse,
    ssim,
)


def smooth_image(shape: tuple[int, int] = (128, 128), sigma: float = 2.0, seed: int = 0) -> np.ndarray:
    """Gaussian-filtered white noise scaled to [0, 1]."""
    field = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma)
    return (field - field.min()) / (field.max() - field.min())


def noise_of_rms(shape: tuple[int, ...], sigma: float, seed: int) -> np.ndarray:
    """Zero-mean white noise rescaled so its RMS is exactly ``sigma``."""
    noise = np.random.default_rng(seed).standard_normal(shape)
    noise -= noise.mean()
    return noise * sigma / np.sqrt(np.mean(noise**2))


NOISE_LEVELS = (0.01, 0.03, 0.1, 0.3)


@pytest.mark.parametrize("metric", [ssim, ms_ssim])
def test_similarity_is_one_for_identical_images_and_falls_with_noise(metric) -> None:
    x = smooth_image()
    assert metric(x, x) == pytest.approx(1.0, abs=1e-12)
    scores = [metric(x, x + noise_of_rms(x.shape, s, seed=1)) for s in NOISE_LEVELS]
    assert all(0 < score < 1 for score in scores)
    assert np.all(np.diff(scores) < 0), scores


def test_ms_ssim_at_one_scale_is_skimage_ssim() -> None:
    x = smooth_image()
    y = x + noise_of_rms(x.shape, 0.05, seed=2)
    assert ms_ssim(x, y, weights=(1.0,)) == pytest.approx(structural_similarity(x, y, data_range=1.0), rel=1e-12)


def test_ms_ssim_low_passes_before_decimating() -> None:
    # A +-e checkerboard lives only at Nyquist: a 2x2 mean removes it, plain decimation turns it into an offset.
    x = smooth_image()
    checker = 0.2 * (-1.0) ** np.add.outer(np.arange(128), np.arange(128))
    assert ms_ssim(x, x + checker) < 0.99
    assert ms_ssim(x, x + checker, weights=(0.0, 0.5, 0.5)) == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_on_a_small_image_uses_the_scales_that_fit_with_renormalised_weights() -> None:
    x = smooth_image((40, 44), sigma=1.5)
    y = x + noise_of_rms(x.shape, 0.05, seed=3)
    assert ms_ssim_scales(x.shape) == 3  # 40, 20, 10 px >= 7; 5 px would not fit the window
    truncated = np.array(MS_SSIM_WEIGHTS[:3]) / np.sum(MS_SSIM_WEIGHTS[:3])
    assert ms_ssim(x, y) == pytest.approx(ms_ssim(x, y, weights=tuple(truncated)), rel=1e-12)
    assert ms_ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="smaller than"):
        ms_ssim(x[:6], y[:6])


def test_ms_ssim_clips_anticorrelated_structure_to_zero() -> None:
    x = smooth_image()
    assert ms_ssim(x, 1.0 - x) == 0.0


@pytest.mark.parametrize("sigma", [0.002, 0.05, 0.2])
def test_psnr_of_a_known_noise_rms_uses_the_truths_data_range(sigma: float) -> None:
    x = 3.0 * smooth_image() - 1.0  # data range 3
    y = x + noise_of_rms(x.shape, sigma, seed=4)
    assert rmse(x, y) == pytest.approx(sigma, rel=1e-12)
    assert psnr(x, y) == pytest.approx(20 * math.log10(3.0 / sigma), abs=1e-6)


@pytest.mark.parametrize("scale, offset", [(1e-3, 0.0), (1000.0, 0.0), (1.0, 5.0), (-2.0, 7.0)])
def test_psnr_is_invariant_to_a_common_affine_change_of_units(scale: float, offset: float) -> None:
    # A fixed peak of 255 would make PSNR depend on the units of the images.
    x = smooth_image()
    y = x + noise_of_rms(x.shape, 0.05, seed=5)
    assert psnr(scale * x + offset, scale * y + offset) == pytest.approx(psnr(x, y), abs=1e-9)


@pytest.mark.parametrize("metric", [ssim, ms_ssim])
@pytest.mark.parametrize("scale", [1e-3, 1000.0])
def test_similarity_is_invariant_to_a_common_scale(metric, scale: float) -> None:
    # SSIM's constants scale with the truth's data range; the luminance term is not offset-invariant by design.
    x = smooth_image()
    y = x + noise_of_rms(x.shape, 0.05, seed=5)
    assert metric(scale * x, scale * y) == pytest.approx(metric(x, y), abs=1e-9)


def test_mae_and_rmse_of_a_constant_offset_and_their_order() -> None:
    x = smooth_image()
    assert mae(x, x + 0.25) == pytest.approx(0.25)
    assert rmse(x, x + 0.25) == pytest.approx(0.25)
    y = x + noise_of_rms(x.shape, 0.1, seed=6)
    assert 0 < mae(x, y) < rmse(x, y)


def test_metrics_reject_bad_input() -> None:
    x = smooth_image((32, 32))
    with pytest.raises(ValueError, match="one shape"):
        rmse(x, x[:-1])
    with pytest.raises(ValueError, match="finite"):
        mae(x, np.where(x > 0.5, np.nan, x))
    with pytest.raises(ValueError, match="constant"):
        psnr(np.ones_like(x), x)
    with pytest.raises(ValueError, match="real images"):
        ssim(x + 0j, x)


def test_frc_of_identical_images_is_one_and_resolves_to_nyquist() -> None:
    x = smooth_image(sigma=1.0)
    freq, curve = frc(x, x)
    assert freq[0] == 0 and freq[-1] == pytest.approx(0.5) and np.all(np.diff(freq) > 0)
    np.testing.assert_allclose(curve, 1.0, atol=1e-12)
    assert frc_resolution(freq, curve, 0.5) == 0.5
    assert frc_resolution(freq, curve, half_bit_threshold(ring_pixel_counts(x.shape))) == 0.5


def test_frc_of_independent_noise_is_near_zero_and_resolves_to_almost_nothing() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((2, 128, 128))
    freq, curve = frc(a, b)
    counts = ring_pixel_counts(a.shape)
    assert np.mean(np.abs(curve[1:])) < 0.1
    assert np.all(np.abs(curve[8:]) < 5 / np.sqrt(counts[8:]))  # 5 sigma of a zero-mean ring average
    assert frc_resolution(freq, curve, half_bit_threshold(counts)) < 0.05


def test_frc_window_suppresses_the_shared_border_jump() -> None:
    # Independent noise on a common non-periodic gradient: without a window the border jump correlates everywhere.
    rng = np.random.default_rng(8)
    gradient = np.add.outer(np.linspace(0, 20, 128), np.linspace(0, 30, 128))
    freq, curve = frc(gradient + rng.standard_normal((128, 128)), gradient + rng.standard_normal((128, 128)))
    assert np.mean(np.abs(curve[freq > 0.1])) < 0.1


def test_frc_resolution_falls_as_noise_rises() -> None:
    x = smooth_image(sigma=1.5)
    resolutions = []
    for level in (0.001, 0.01, 0.1):
        freq, curve = frc(x, x + noise_of_rms(x.shape, level, seed=9))
        resolutions.append(frc_resolution(freq, curve, 0.5))
    assert np.all(np.diff(resolutions) < 0), resolutions
    assert 0 < resolutions[-1] < resolutions[0] < 0.5


def test_frc_resolution_interpolates_the_crossing_and_returns_nyquist_without_one() -> None:
    freq = np.linspace(0, 0.5, 65)
    assert frc_resolution(freq, 1 - 2 * freq, 0.5) == pytest.approx(0.25, abs=1e-12)
    assert frc_resolution(freq, 1 - 2 * freq, np.full_like(freq, 0.3)) == pytest.approx(0.35, abs=1e-12)
    assert frc_resolution(freq, np.full_like(freq, 0.9), 0.5) == 0.5
    assert frc_resolution(freq, np.where(freq == 0, -1.0, 0.9), 0.5) == 0.5  # ring 0 (the mean) is skipped
    assert period_px(0.25) == 4.0


def test_half_bit_threshold_shape() -> None:
    n = np.array([1, 4, 16, 100, 1000, 1e8])
    threshold = half_bit_threshold(n)
    assert threshold[0] == pytest.approx(1.0, abs=1e-4)
    assert np.all(np.diff(threshold) < 0)
    assert threshold[-1] == pytest.approx(0.2071 / 1.2071, abs=1e-3)


def test_ring_counts_cover_the_disc_up_to_nyquist() -> None:
    for shape in [(64, 64), (48, 80)]:
        counts = ring_pixel_counts(shape)
        assert np.all(counts >= 1)
        fy, fx = np.meshgrid(np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1]), indexing="ij")
        step = 1 / min(shape)
        assert counts.sum() == np.sum(np.rint(np.hypot(fy, fx) / step) <= 0.5 / step + 1e-9)


def test_masked_metrics_ignore_the_unmasked_pixels() -> None:
    x = smooth_image()
    y = x + noise_of_rms(x.shape, 0.05, seed=12)
    mask = np.zeros(x.shape, bool)
    mask[20:100, 10:90] = True
    garbage = np.where(mask, y, 50.0 * np.random.default_rng(13).standard_normal(x.shape))
    for metric in (mae, rmse, r2, psnr):
        assert metric(x, garbage, mask) == pytest.approx(metric(x, y, mask), abs=1e-12), metric.__name__
        assert metric(x, garbage) != pytest.approx(metric(x, y, mask), abs=1e-3), metric.__name__
    assert frc(x, garbage, mask)[1] == pytest.approx(frc(x, y, mask)[1], abs=1e-12)
    # SSIM's 7x7 windows read 3 px beyond the mask; the map is averaged over the mask only.
    near = np.zeros(x.shape, bool)
    near[17:103, 7:93] = True
    garbage = np.where(near, y, garbage)
    assert ssim(x, garbage, mask) == pytest.approx(ssim(x, y, mask), abs=1e-9)
    assert ssim(x, garbage) < ssim(x, y, mask) - 0.1
    assert ms_ssim(x, x, mask) == pytest.approx(1.0, abs=1e-12) and ms_ssim(x, y, mask) < ms_ssim(x, y)


def test_r2_is_one_for_the_truth_zero_for_its_mean_and_negative_below() -> None:
    x = smooth_image()
    assert r2(x, x) == 1.0
    assert r2(x, np.full_like(x, x.mean())) == pytest.approx(0.0, abs=1e-12)
    assert r2(x, 1.0 - x) < 0


def test_nrmse_of_a_complex_object() -> None:
    z = smooth_image() * np.exp(1j * smooth_image(seed=3))
    assert nrmse_complex(z, z) == 0.0
    assert nrmse_complex(z, 0.9 * z) == pytest.approx(0.1, abs=1e-12)
