"""Stitch predicted object patches into the full object (spec section 5, PINN inference). Pure numpy.

Each patch's central window is splatted into the object with the bilinear weights of forward.extract_patches
(its adjoint), and every pixel is the weighted mean of its contributions. For integer positions the weights are
0/1, so stitching ground-truth patches reproduces the object exactly; for sub-pixel positions it reproduces the
object blurred by one bilinear interpolation followed by its adjoint (a 3-tap kernel per axis,
weights f(1-f), f^2 + (1-f)^2, f(1-f) for sub-pixel fraction f).
"""

from __future__ import annotations

import numpy as np

from fly64_kedro.physics.forward import bilinear_taps, chunks

CHUNK = 512  # patches splatted per vectorised step (bounds the temporary splat arrays)


def _check_inside(start: np.ndarray, frac: np.ndarray, width: int, size: int, axis: str) -> None:
    """The splat of a ``width``-pixel window starting at ``start`` must stay inside ``size`` pixels."""
    last = start + width - 1 + (frac > 0)  # the second tap only counts where its weight is non-zero
    if len(start) and (start.min() < 0 or last.max() > size - 1):
        raise ValueError(f"a stitched patch window falls outside the object along {axis} (size {size} px)")


def stitch_patches(
    patches: np.ndarray,
    ycoords: np.ndarray,
    xcoords: np.ndarray,
    object_shape: tuple[int, int],
    central_fraction: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the central windows of (n, N, N) complex ``patches`` centred at the scan positions (pixels).

    The window is the central round(central_fraction * N) pixels on each axis, containing pixel N/2.
    Returns the complex64 (H, W) object (0 where no patch contributes) and the float32 (H, W) coverage, the
    sum of bilinear weights per pixel (the number of contributing patches for integer positions).
    """
    patches = np.asarray(patches)
    if patches.ndim != 3 or patches.shape[1] != patches.shape[2]:
        raise ValueError(f"patches must have shape (n, N, N), got {patches.shape}")
    n, n_pix = patches.shape[:2]
    if not (len(ycoords) == len(xcoords) == n):
        raise ValueError(f"{n} patches but {len(ycoords)} y and {len(xcoords)} x coordinates")
    if not 0 < central_fraction <= 1:
        raise ValueError(f"central_fraction must be in (0, 1], got {central_fraction}")
    height, width = object_shape
    size = max(1, round(central_fraction * n_pix))
    first = n_pix // 2 - size // 2
    iy, fy = bilinear_taps(ycoords, n_pix)
    ix, fx = bilinear_taps(xcoords, n_pix)
    iy, ix = iy + first, ix + first
    _check_inside(iy, fy, size, height, "y")
    _check_inside(ix, fx, size, width, "x")

    # One spare row and column take the zero-weight second tap of a window that ends on the object's edge.
    total = np.zeros((height + 1, width + 1), dtype=np.complex128)
    weight = np.zeros((height + 1, width + 1), dtype=np.float64)
    for sl in chunks(n, CHUNK):
        # Separable bilinear weights: rows[k, 0/1] is the weight of the upper/lower tap of patch k.
        rows = np.stack([1 - fy[sl], fy[sl]], axis=1)
        cols = np.stack([1 - fx[sl], fx[sl]], axis=1)
        window = patches[sl, first : first + size, first : first + size]
        splat = np.zeros((len(window), size + 1, size + 1), dtype=np.complex128)
        cover = np.zeros((len(window), size + 1, size + 1), dtype=np.float64)
        for dr in (0, 1):
            for dc in (0, 1):
                tap = (rows[:, dr] * cols[:, dc])[:, None, None]
                splat[:, dr : dr + size, dc : dc + size] += tap * window
                cover[:, dr : dr + size, dc : dc + size] += tap
        for k, (r0, c0) in enumerate(zip(iy[sl], ix[sl])):
            total[r0 : r0 + size + 1, c0 : c0 + size + 1] += splat[k]
            weight[r0 : r0 + size + 1, c0 : c0 + size + 1] += cover[k]
    total, weight = total[:height, :width], weight[:height, :width]
    obj = np.divide(total, weight, out=np.zeros_like(total), where=weight > 0)
    return obj.astype(np.complex64), weight.astype(np.float32)
