"""Stitching (physics/stitching.py): the probe-weighted, phase-synchronised mean of full patches.

A perfect network predicts the true patches, each with an arbitrary global phase (one pattern cannot fix its
own); stitching must then give back the truth, up to the bilinear kernel, wherever the probe lights the object.
"""

from __future__ import annotations

import numpy as np
import pytest

from fly64_kedro.physics import forward, synthetic_object
from fly64_kedro.physics.stitching import splat, stitch_patches

N = 32
SHAPE = (160, 160)


def scan(n_pos: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(N / 2, SHAPE[0] - N / 2, n_pos), rng.uniform(N / 2, SHAPE[1] - N / 2, n_pos)


def thin(y: np.ndarray, x: np.ndarray, spacing: float) -> np.ndarray:
    """Greedy minimum-spacing subset (the overlap views' rule): indices kept."""
    kept: list[int] = []
    for k in range(len(y)):
        if all(np.hypot(y[k] - y[j], x[k] - x[j]) >= spacing for j in kept):
            kept.append(k)
    return np.array(kept)


def lit(y: np.ndarray, x: np.ndarray, probe: np.ndarray) -> np.ndarray:
    weight = splat(np.broadcast_to(np.abs(probe) ** 2, (len(y), N, N)), y, x, SHAPE)
    return weight >= 0.1 * weight.max()


def phase_error(obj: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """RMS wrap-aware phase error (rad) on ``mask`` after removing the global phase."""
    residual = np.angle(obj[mask] * np.conj(truth[mask]))
    residual = np.angle(np.exp(1j * (residual - np.angle(np.mean(np.exp(1j * residual))))))
    return float(np.sqrt(np.mean(residual**2)))


def central_window_mean(patches: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The stitcher this replaced, as the reference: the uniform mean of each patch's central N/2 window."""
    window = np.zeros((N, N))
    window[N // 4 : 3 * N // 4, N // 4 : 3 * N // 4] = 1
    total = splat(patches * window, y, x, SHAPE)
    weight = splat(np.broadcast_to(window, patches.shape), y, x, SHAPE)
    return np.divide(total, weight, out=np.zeros_like(total), where=weight > 1e-9)


@pytest.fixture(scope="module")
def truth() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_object.synthetic_fly_object(SHAPE, 3), synthetic_object.focused_probe(N)


def offset_patches(obj: np.ndarray, y: np.ndarray, x: np.ndarray, seed: int) -> np.ndarray:
    """The true patches, each times a random global phase e^{ia}, a uniform in [0, 2 pi)."""
    offsets = np.random.default_rng(seed).uniform(0, 2 * np.pi, len(y))
    return forward.extract_patches(obj, y, x, N) * np.exp(1j * offsets)[:, None, None]


@pytest.mark.parametrize(("view", "spacing", "bound"), [("full", 0.0, 0.05), ("dense", 0.3 * N, 0.05)])
def test_true_patches_with_random_offsets_stitch_back_to_the_truth(truth, view, spacing, bound) -> None:
    obj, probe = truth
    y, x = scan(600, seed=1)
    keep = thin(y, x, spacing) if spacing else np.arange(len(y))
    y, x = y[keep], x[keep]
    stitched = stitch_patches(offset_patches(obj, y, x, seed=2), y, x, SHAPE, probe)
    mask = lit(y, x, probe)
    # Bilinear extraction then its adjoint blurs by a 3-tap kernel per axis: the relative error of the plain
    # (no offsets, no synchronisation) stitch is the floor; synchronisation must bring the offsets down to it.
    plain = stitch_patches(forward.extract_patches(obj, y, x, N), y, x, SHAPE, probe, synchronise=False).object
    kernel = np.linalg.norm((plain - obj)[mask]) / np.linalg.norm(obj[mask])
    aligned = stitched.object * np.exp(-1j * np.angle(np.vdot(obj[mask], stitched.object[mask])))
    error = np.linalg.norm((aligned - obj)[mask]) / np.linalg.norm(obj[mask])
    assert kernel < bound and error < kernel + 0.01, (view, kernel, error)
    assert phase_error(stitched.object, obj, mask) < 0.05


def test_unsynchronised_offsets_destroy_the_phase(truth) -> None:
    """The control: without synchronisation random offsets cancel; the test above could not pass by luck."""
    obj, probe = truth
    y, x = scan(600, seed=1)
    stitched = stitch_patches(offset_patches(obj, y, x, seed=2), y, x, SHAPE, probe, synchronise=False)
    mask = lit(y, x, probe)
    assert phase_error(stitched.object, obj, mask) > 0.5


def test_sparse_views_stitch_better_than_the_central_window(truth) -> None:
    obj, probe = truth
    y, x = scan(600, seed=4)
    keep = thin(y, x, 0.8 * N)
    y, x = y[keep], x[keep]
    patches = forward.extract_patches(obj, y, x, N)
    mask = lit(y, x, probe)
    # Without offsets to find: the weighting alone is compared (a sparse view's patches barely overlap, so its
    # disconnected groups keep independent phases whatever the stitcher does).
    weighted = stitch_patches(patches, y, x, SHAPE, probe, synchronise=False).object
    window = central_window_mean(patches, y, x)
    err_weighted = np.linalg.norm((weighted - obj)[mask]) / np.linalg.norm(obj[mask])
    err_window = np.linalg.norm((window - obj)[mask]) / np.linalg.norm(obj[mask])
    assert err_weighted < 0.5 * err_window, (err_weighted, err_window)


def test_integer_positions_reproduce_the_object_exactly(truth) -> None:
    obj, probe = truth
    yy, xx = np.meshgrid(np.arange(N / 2, SHAPE[0] - N / 2 + 1, 4), np.arange(N / 2, SHAPE[1] - N / 2 + 1, 4))
    y, x = yy.ravel().astype(float), xx.ravel().astype(float)
    stitched = stitch_patches(forward.extract_patches(obj, y, x, N), y, x, SHAPE, probe, synchronise=False)
    mask = stitched.coverage > 1e-3 * (np.abs(probe) ** 2).max()  # the stitcher's own "lit" rule
    np.testing.assert_allclose(stitched.object[mask], obj[mask], atol=1e-5)
    assert np.all(stitched.object[~mask] == 0)


def test_stitching_rejects_bad_input(truth) -> None:
    _, probe = truth
    patches = np.ones((1, N, N), np.complex64)
    with pytest.raises(ValueError, match="outside the object"):
        stitch_patches(patches, np.array([N / 2]), np.array([SHAPE[1] - 2.0]), SHAPE, probe)
    with pytest.raises(ValueError, match="probe"):
        stitch_patches(patches, np.array([N / 2]), np.array([N / 2]), SHAPE, 0 * probe)
