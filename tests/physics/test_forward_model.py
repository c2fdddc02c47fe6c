"""Physics of the simulator: Parseval, sub-pixel extraction, exposure scale, Poisson statistics, noise-free round
trip."""

from __future__ import annotations

import numpy as np
import pytest

from fly64_kedro.physics.forward import exit_wave_energy, exposure_scale, extract_patches, far_field_amplitude
from fly64_kedro.physics.synthetic_object import focused_probe, synthetic_fly_object
from fly64_kedro.pipelines.generation.nodes import make_synthetic_base, simulate_diffraction

N = 32
STUDY = {"N": N, "seeds": {"simulation": 42, "grouping": 123, "subsampling": 456}}
BASE_PARAMS = {"object_shape": [96, 96], "aperture_fraction": 0.25, "defocus_waves": 2.0}


def generation(n: int = 200, chunk: int = 64, noise: bool = True) -> dict:
    return {"n_positions": n, "chunk_size": chunk, "poisson_noise": noise, "guard_band": None}


@pytest.fixture(scope="module")
def base():
    return make_synthetic_base(BASE_PARAMS, STUDY)


def test_parseval_far_field_preserves_energy() -> None:
    rng = np.random.default_rng(1)
    psi = (rng.standard_normal((5, N, N)) + 1j * rng.standard_normal((5, N, N))).astype(np.complex64)
    amplitude = far_field_amplitude(psi)
    np.testing.assert_allclose(
        np.sum(amplitude.astype(np.float64) ** 2, axis=(1, 2)),
        np.sum(np.abs(psi.astype(np.complex128)) ** 2, axis=(1, 2)),
        rtol=1e-5,
    )


def test_far_field_is_centred_on_dc() -> None:
    flat = np.ones((1, N, N), np.complex64)
    amplitude = far_field_amplitude(flat)[0]
    assert np.unravel_index(np.argmax(amplitude), amplitude.shape) == (N // 2, N // 2)
    assert amplitude[N // 2, N // 2] == pytest.approx(N, rel=1e-6)  # |sum| / N = N^2 / N


def test_bilinear_extraction_is_exact_on_a_linear_object() -> None:
    """Bilinear interpolation reproduces a plane exactly, so sub-pixel shifts are checkable to float precision."""
    yy, xx = np.mgrid[0:80, 0:90].astype(np.float64)
    a, b, c = 0.3 + 0.1j, -0.2 + 0.05j, 1.0
    obj = a * yy + b * xx + c
    y, x = np.array([20.25, 40.0, 47.9]), np.array([16.0, 33.7, 58.01])
    patches = extract_patches(obj, y, x, N)
    r = np.arange(N)
    for i in range(3):
        expected = a * (y[i] - N / 2 + r)[:, None] + b * (x[i] - N / 2 + r)[None, :] + c
        np.testing.assert_allclose(patches[i], expected, rtol=1e-5, atol=1e-5)


def test_extraction_rejects_positions_off_the_object() -> None:
    with pytest.raises(ValueError, match="outside"):
        extract_patches(np.ones((40, 40)), np.array([5.0]), np.array([20.0]), N)


def test_mean_counts_match_dose_within_three_sigma(base) -> None:
    dose, n = 1e4, 300
    record = simulate_diffraction(base, dose, STUDY, generation(n))
    counts = (record["diffraction"].astype(np.float64) * record.meta["scale"]) ** 2
    totals = counts.sum(axis=(1, 2))
    # The scale fixes the EXPECTED mean exactly; Poisson noise on n patterns gives sigma = sqrt(dose / n).
    assert abs(totals.mean() - dose) < 3 * np.sqrt(dose / n)
    # float32 amplitudes recover integer counts: relative error ~1e-7, far below the distance to the next integer
    assert np.max(np.abs(counts - np.round(counts)) / np.maximum(counts, 1)) < 1e-5
    assert counts.min() >= 0


def test_noise_free_amplitude_equals_far_field_of_the_patch(base) -> None:
    record = simulate_diffraction(base, 1e5, STUDY, generation(20, noise=False))
    # Independent computation from the stored ground-truth patches.
    expected = np.abs(np.fft.fftshift(np.fft.fft2(record["Y"] * record["probeGuess"]), axes=(1, 2))) / N
    np.testing.assert_allclose(record["diffraction"], expected, rtol=1e-4, atol=1e-6 * expected.max())


def test_poisson_statistics_of_counts(base) -> None:
    """(counts - lambda)^2 / lambda averages to 1 (Poisson variance = mean), lambda from the noise-free run."""
    noisy = simulate_diffraction(base, 1e4, STUDY, generation(100))
    clean = simulate_diffraction(base, 1e4, STUDY, generation(100, noise=False))
    scale = noisy.meta["scale"]
    assert clean.meta["scale"] == scale
    lam = (clean["diffraction"].astype(np.float64) * scale) ** 2
    counts = np.round((noisy["diffraction"].astype(np.float64) * scale) ** 2)
    bright = lam > 5
    chi2 = np.mean((counts[bright] - lam[bright]) ** 2 / lam[bright])
    assert chi2 == pytest.approx(1.0, abs=0.05)
    assert np.mean(counts[bright] - lam[bright]) == pytest.approx(0.0, abs=0.05 * np.sqrt(lam[bright].mean()))


def test_exposure_scale_makes_expected_counts_equal_dose(base) -> None:
    obj, probe = base["objectGuess"], base["probeGuess"]
    y = np.array([30.0, 50.5, 64.0])
    x = np.array([40.0, 33.3, 60.0])
    patches = extract_patches(obj, y, x, N)
    scale = exposure_scale(500.0, float(exit_wave_energy(patches, probe).mean()))
    amplitude = far_field_amplitude(patches * probe) * scale
    assert np.mean(np.sum(amplitude.astype(np.float64) ** 2, axis=(1, 2))) == pytest.approx(500.0, rel=1e-4)


def test_chunk_size_does_not_change_the_data(base) -> None:
    a = simulate_diffraction(base, 1e3, STUDY, generation(150, chunk=17))
    b = simulate_diffraction(base, 1e3, STUDY, generation(150, chunk=150))
    for key in ("diffraction", "xcoords", "ycoords", "Y"):
        np.testing.assert_array_equal(a[key], b[key])


def test_same_seed_same_data_other_seed_other_data(base) -> None:
    a = simulate_diffraction(base, 1e3, STUDY, generation(50))
    b = simulate_diffraction(base, 1e3, STUDY, generation(50))
    np.testing.assert_array_equal(a["diffraction"], b["diffraction"])
    other = {**STUDY, "seeds": {**STUDY["seeds"], "simulation": 7}}
    c = simulate_diffraction(base, 1e3, other, generation(50))
    assert not np.array_equal(a["xcoords"], c["xcoords"])


def test_doses_share_positions_but_not_noise(base) -> None:
    low = simulate_diffraction(base, 1e3, STUDY, generation(40))
    high = simulate_diffraction(base, 1e5, STUDY, generation(40))
    np.testing.assert_array_equal(low["xcoords"], high["xcoords"])
    assert low.meta["scale"] < high.meta["scale"]


def test_synthetic_base_is_deterministic_and_in_range() -> None:
    a = synthetic_fly_object((64, 80), seed=3)
    np.testing.assert_array_equal(a, synthetic_fly_object((64, 80), seed=3))
    assert a.dtype == np.complex64 and a.shape == (64, 80)
    assert 0 <= np.abs(a).min() and np.abs(a).max() <= 1.0
    assert np.ptp(np.angle(a)) > 2.0  # phase spans a large part of (-pi, pi)
    probe = focused_probe(32)
    assert np.abs(probe).max() == pytest.approx(1.0)
    assert np.abs(probe[0, 0]) < 1e-3  # finite support: nothing at the corners
    assert np.ptp(np.angle(probe[np.abs(probe) > 0.1])) > 1.0  # phase curvature
