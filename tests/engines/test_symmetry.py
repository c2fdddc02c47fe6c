"""Augmentation by the probe's symmetries (engines/pinn/symmetry.py) is exact physics, not an approximation."""

from __future__ import annotations

import numpy as np
import pytest

from fly64_kedro.engines.pinn import symmetry
from fly64_kedro.physics import forward, synthetic_object

N = 32


def far_field(patch: np.ndarray, probe: np.ndarray) -> np.ndarray:
    return forward.far_field_amplitude((patch * probe)[None])[0]


@pytest.fixture(scope="module")
def patch() -> np.ndarray:
    obj = synthetic_object.synthetic_fly_object((96, 96), 5)
    return forward.extract_patches(obj, np.array([47.3]), np.array([51.8]), N)[0]


def test_the_focused_probe_has_all_eight_symmetries() -> None:
    assert symmetry.probe_symmetries(synthetic_object.focused_probe(N)) == symmetry.ALL


@pytest.mark.parametrize("sym", symmetry.ALL, ids=str)
def test_a_symmetry_of_the_probe_maps_the_pattern_as_it_maps_the_patch(patch, sym) -> None:
    probe = synthetic_object.focused_probe(N)
    mapped = far_field(symmetry.apply(sym, patch), probe)
    np.testing.assert_allclose(mapped, symmetry.apply(sym, far_field(patch, probe)), atol=1e-5 * mapped.max())


def test_an_asymmetric_probe_keeps_only_its_own_symmetries(patch) -> None:
    rows = np.arange(N)[:, None] - N / 2
    tilted = synthetic_object.focused_probe(N) * np.exp(0.3j * rows / N * 2 * np.pi)  # a phase ramp along y only
    kept = symmetry.probe_symmetries(tilted)
    assert symmetry.Symmetry(False, False, False) in kept and len(kept) < len(symmetry.ALL)
    for sym in kept:  # each kept one is exact ...
        np.testing.assert_allclose(
            far_field(symmetry.apply(sym, patch), tilted), symmetry.apply(sym, far_field(patch, tilted)), atol=1e-4
        )
    dropped = next(s for s in symmetry.ALL if s not in kept)  # ... and a dropped one would not be
    error = np.abs(
        far_field(symmetry.apply(dropped, patch), tilted) - symmetry.apply(dropped, far_field(patch, tilted))
    )
    assert error.max() > 1e-2


@pytest.mark.parametrize("sym", symmetry.ALL, ids=str)
def test_offsets_map_with_the_pixels(sym) -> None:
    """A patch cut from a canvas at offset d, then mapped, equals the mapped canvas cut at the mapped offset
    (so a gridsize-2 group maps as a whole: patterns, offsets and the shared canvas)."""
    size, centre = 2 * N + 1, N  # a mirror about the canvas's centre pixel: index i -> 2 * centre - i
    canvas = np.random.default_rng(1).standard_normal((size, size))
    mapped_canvas = canvas.T if sym.transpose else canvas
    mapped_canvas = mapped_canvas[::-1] if sym.flip_y else mapped_canvas
    mapped_canvas = mapped_canvas[:, ::-1] if sym.flip_x else mapped_canvas
    offset = np.array([[5.0, -9.0]])
    cut = forward.extract_patches(canvas, centre + offset[:, 0], centre + offset[:, 1], N)[0]
    moved = symmetry.apply_offsets(sym, offset)
    recut = forward.extract_patches(mapped_canvas, centre + moved[:, 0], centre + moved[:, 1], N)[0]
    # Row and column 0 (r = -N/2) mirror onto r = +N/2, just outside the patch: the periodic map wraps them onto
    # themselves. The detector's DFT is periodic, so single patterns map exactly; within a group this one edge
    # row is the only approximation, and the focused probe is exactly 0 there.
    np.testing.assert_allclose(recut[1:, 1:], symmetry.apply(sym, cut)[1:, 1:], atol=1e-6)


@pytest.mark.parametrize("sym", symmetry.ALL, ids=str)
def test_invert_undoes_apply_on_any_axes(sym) -> None:
    """Inference maps predictions back with ``invert`` (average_symmetries): exact on both sides, on a batch's
    pixel axes too. A transpose with one flip is a quarter turn, not its own inverse, so ``invert`` is needed."""
    images = np.random.default_rng(2).standard_normal((3, N, N, 4))
    np.testing.assert_array_equal(symmetry.invert(sym, symmetry.apply(sym, images, (1, 2)), (1, 2)), images)
    np.testing.assert_array_equal(symmetry.apply(sym, symmetry.invert(sym, images, (1, 2)), (1, 2)), images)
    if sym.transpose and sym.flip_y != sym.flip_x:
        wrong = symmetry.apply(sym, symmetry.apply(sym, images, (1, 2)), (1, 2))
        assert not np.array_equal(wrong, images)
