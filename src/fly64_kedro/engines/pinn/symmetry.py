"""Exact data augmentation from the probe's symmetries. Pure numpy (no TensorFlow).

The eight symmetries of the square (transpose, then flips) act on an N x N array about pixel N/2, the probe's and
the diffraction's centre: a flip maps index k to (N - k) mod N. If the probe is invariant under such a map T, the
patch O o T gives the exit wave (O P) o T, whose far field is |F(O P)| o T: the same map applied to the pattern.
So (pattern o T, patch o T) is a real measurement of another object, and training on it is exact physics, not an
approximation. At gridsize 2 a group's member offsets (dy, dx) from its centre pixel map the same way.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

SYMMETRY_TOLERANCE = 1e-5  # max |P o T - P| / max |P| for T to count as a symmetry of the probe


class Symmetry(NamedTuple):
    """Transpose first (swap y and x), then flip y, then flip x, all about pixel N/2."""

    transpose: bool
    flip_y: bool
    flip_x: bool


ALL = tuple(Symmetry(t, fy, fx) for t in (False, True) for fy in (False, True) for fx in (False, True))


def _flip(array: np.ndarray, axis: int) -> np.ndarray:
    """k -> (N - k) mod N along ``axis``: a mirror about pixel N/2."""
    return np.roll(np.flip(array, axis=axis), 1, axis=axis)


def apply(symmetry: Symmetry, images: np.ndarray, axes: tuple[int, int] = (-2, -1)) -> np.ndarray:
    """``images`` mapped by ``symmetry`` on the two pixel ``axes`` (y, x)."""
    out = np.swapaxes(images, *axes) if symmetry.transpose else images
    if symmetry.flip_y:
        out = _flip(out, axes[0])
    if symmetry.flip_x:
        out = _flip(out, axes[1])
    return out


def invert(symmetry: Symmetry, images: np.ndarray, axes: tuple[int, int] = (-2, -1)) -> np.ndarray:
    """``images`` mapped by the inverse of ``symmetry``: the flips (each its own inverse), then the transpose."""
    out = _flip(images, axes[1]) if symmetry.flip_x else images
    if symmetry.flip_y:
        out = _flip(out, axes[0])
    return np.swapaxes(out, *axes) if symmetry.transpose else out


def apply_offsets(symmetry: Symmetry, offsets: np.ndarray) -> np.ndarray:
    """(..., 2) offsets (dy, dx) in pixels mapped as ``apply`` maps the pixels."""
    out = offsets[..., ::-1] if symmetry.transpose else offsets
    return out * np.array([-1.0 if symmetry.flip_y else 1.0, -1.0 if symmetry.flip_x else 1.0], dtype=offsets.dtype)


def probe_symmetries(probe: np.ndarray) -> tuple[Symmetry, ...]:
    """The symmetries T with P o T = P (to SYMMETRY_TOLERANCE relative); always includes the identity."""
    probe = np.asarray(probe)
    peak = float(np.abs(probe).max())
    return tuple(s for s in ALL if np.abs(apply(s, probe) - probe).max() <= SYMMETRY_TOLERANCE * peak)
