"""Stitch per-position object patches into one object (docs/science.md, "Stitching"). Pure numpy.

The stitched object is the probe-intensity-weighted mean of the full patches,

    O(r) = sum_k w(r - r_k) e^{-i theta_k} p_k(r - r_k) / sum_k w(r - r_k),   w = |P|^2,

placed with the bilinear weights of ``forward.extract_patches`` (its adjoint). Weighting by |P|^2 keeps every
pixel a probe lit, in proportion to how strongly the data constrain it; a central crop throws most of it away.

theta_k are the patches' global phase offsets. One diffraction pattern cannot fix its own global phase
(|F(e^{ia} O P)| = |F(O P)|), so patches predicted one pattern at a time carry arbitrary offsets; averaging them
unsynchronised cancels the phase where they disagree. The offsets are found through the overlaps (angular
synchronisation, Singer 2011): the leading eigenvector of the degree-normalised Hermitian matrix of pairwise
overlap products M_kl = sum_r w_k w_l p_k conj(p_l) (each patch paired with its nearest neighbours), then
polished by a few rounds of theta_k = angle(<p_k, O_k>_w) against the stitched object. Plain iteration alone
converges far too slowly on long scans (low-frequency phase drift decays by ~1 % per round).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import eigsh
from scipy.spatial import cKDTree

from fly64_kedro.physics.forward import bilinear_taps, chunks, extract_patches

logger = logging.getLogger(__name__)

CHUNK = 256  # patches splatted per vectorised step (bounds the temporary arrays)
NEIGHBOURS = 12  # overlap partners per patch in the synchronisation graph
POLISH_ROUNDS = 10  # at most this many rounds of theta_k = angle(<p_k, O_k>) after the spectral estimate
POLISH_TOLERANCE = 1e-4  # rad: polishing stops once no offset moves by more
LIT_FRACTION = 1e-3  # a pixel is lit where the summed weight exceeds this fraction of max w


class Stitched(NamedTuple):
    """``object`` complex64 (H, W), 0 where no patch reaches; ``coverage`` float32 (H, W), the summed weights
    sum_k w(r - r_k) (units of |P|^2); ``phase_offsets`` float64 (n,) theta_k in rad (zeros when not synchronised)."""

    object: np.ndarray
    coverage: np.ndarray
    phase_offsets: np.ndarray


def splat(values: np.ndarray, ycoords: np.ndarray, xcoords: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Sum of the (n, N, N) ``values`` placed at the scan centres (pixels) with bilinear weights, (H, W).

    The adjoint of ``forward.extract_patches``: for integer positions each patch lands pixel for pixel. Raises
    ValueError if a patch would fall outside ``shape``.
    """
    values = np.asarray(values)
    n, n_pix = values.shape[:2]
    height, width = shape
    iy, fy = bilinear_taps(ycoords, n_pix)
    ix, fx = bilinear_taps(xcoords, n_pix)
    for start, frac, size, axis in ((iy, fy, height, "y"), (ix, fx, width, "x")):
        # the second tap only counts where its weight is non-zero
        if n and (start.min() < 0 or (start + n_pix - 1 + (frac > 0)).max() > size - 1):
            raise ValueError(f"a stitched patch falls outside the object along {axis} (size {size} px)")
    dtype = np.complex128 if np.iscomplexobj(values) else np.float64
    # One spare row and column take the zero-weight second tap of a patch that ends on the object's edge.
    total = np.zeros((height + 1, width + 1), dtype=dtype)
    for sl in chunks(n, CHUNK):
        rows = np.stack([1 - fy[sl], fy[sl]], axis=1)
        cols = np.stack([1 - fx[sl], fx[sl]], axis=1)
        block = np.zeros((len(rows), n_pix + 1, n_pix + 1), dtype=dtype)
        for dr in (0, 1):
            for dc in (0, 1):
                block[:, dr : dr + n_pix, dc : dc + n_pix] += (rows[:, dr] * cols[:, dc])[:, None, None] * values[sl]
        for k, (r0, c0) in enumerate(zip(iy[sl], ix[sl])):
            total[r0 : r0 + n_pix + 1, c0 : c0 + n_pix + 1] += block[k]
    return total[:height, :width]


def _weighted_mean(
    patches: np.ndarray,
    weight: np.ndarray,
    theta: np.ndarray,
    ycoords: np.ndarray,
    xcoords: np.ndarray,
    coverage: np.ndarray,
) -> np.ndarray:
    total = splat(patches * weight * np.exp(-1j * theta)[:, None, None], ycoords, xcoords, coverage.shape)
    lit = coverage > LIT_FRACTION * weight.max()
    return np.divide(total, coverage, out=np.zeros_like(total), where=lit)


def _overlap_matrix(patches: np.ndarray, weight: np.ndarray, ycoords: np.ndarray, xcoords: np.ndarray):
    """Sparse Hermitian (n, n): M_kl = sum over the overlap of w p_k conj(w p_l), nearest neighbours only.

    Overlaps use whole-pixel relative shifts: the offsets they estimate are constants per patch, and a
    sub-pixel misregistration only lowers |M_kl| slightly.
    """
    n, n_pix = patches.shape[:2]
    positions = np.column_stack([ycoords, xcoords])
    k_nearest = min(NEIGHBOURS + 1, n)
    _, neighbours = cKDTree(positions).query(positions, k=k_nearest)
    weighted = patches * weight
    rows, cols, values = [], [], []
    for k in range(n):
        for m in np.atleast_1d(neighbours[k])[1:]:
            dy, dx = int(round(ycoords[m] - ycoords[k])), int(round(xcoords[m] - xcoords[k]))
            r0, r1, c0, c1 = max(0, dy), n_pix + min(0, dy), max(0, dx), n_pix + min(0, dx)
            if r1 <= r0 or c1 <= c0:
                continue
            value = np.vdot(weighted[m, r0 - dy : r1 - dy, c0 - dx : c1 - dx], weighted[k, r0:r1, c0:c1])
            rows += [k, m]
            cols += [m, k]
            values += [value, np.conj(value)]
    # Duplicate (k, m) entries (k and m both list each other) are summed, which keeps M Hermitian.
    return coo_matrix((np.asarray(values, np.complex128), (rows, cols)), shape=(n, n)).tocsr()


def phase_offsets(patches: np.ndarray, reference: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Each (n, N, N) patch's global phase relative to its ``reference`` patch (rad, (n,)): the angle of their
    ``weight``-weighted inner product, the offset that best turns the reference onto the patch."""
    return np.angle(np.sum(weight * patches * np.conj(reference), axis=(1, 2)))


def synchronise_offsets(
    patches: np.ndarray, weight: np.ndarray, ycoords: np.ndarray, xcoords: np.ndarray
) -> np.ndarray:
    """theta_k (rad) such that the patches e^{-i theta_k} p_k agree where they overlap (spectral estimate)."""
    n = len(patches)
    if n < 2:
        return np.zeros(n)
    matrix = _overlap_matrix(patches, weight, ycoords, xcoords)
    degree = np.asarray(abs(matrix).sum(axis=1)).ravel()
    if not np.any(degree > 0):
        return np.zeros(n)
    scale = np.divide(1.0, np.sqrt(degree), out=np.zeros(n), where=degree > 0)
    normalised = matrix.multiply(scale[:, None]).multiply(scale[None, :]).tocsr()
    if n <= 3:  # ARPACK needs k < n - 1
        _, vectors = np.linalg.eigh(normalised.toarray())
        leading = vectors[:, -1]
    else:
        # v0 fixed: ARPACK otherwise starts from a random vector, and reruns must give identical numbers
        _, vectors = eigsh(normalised, k=1, which="LA", v0=np.ones(n, np.complex128))
        leading = vectors[:, 0]
    # M_kl ~ e^{i(theta_k - theta_l)}, so the leading eigenvector is ~ e^{i theta_k}; a patch with no partner
    # (a component of its own, sparse views) keeps theta 0.
    return np.where(np.abs(leading) > 0, np.angle(leading), 0.0)


def stitch_patches(
    patches: np.ndarray,
    ycoords: np.ndarray,
    xcoords: np.ndarray,
    object_shape: tuple[int, int],
    probe: np.ndarray,
    synchronise: bool = True,
) -> Stitched:
    """Stitch (n, N, N) complex ``patches`` centred at the scan positions (pixels) into an (H, W) object.

    Weights w = |probe|^2; with ``synchronise`` the patches' global phase offsets are found through their
    overlaps first (module docstring). For integer positions and consistent patches the result is exact on
    every lit pixel; for sub-pixel positions it is the object blurred by one bilinear interpolation and its
    adjoint (a 3-tap kernel per axis).
    """
    patches = np.asarray(patches)
    if patches.ndim != 3 or patches.shape[1] != patches.shape[2]:
        raise ValueError(f"patches must have shape (n, N, N), got {patches.shape}")
    n, n_pix = patches.shape[:2]
    if not (len(ycoords) == len(xcoords) == n):
        raise ValueError(f"{n} patches but {len(ycoords)} y and {len(xcoords)} x coordinates")
    weight = np.abs(np.asarray(probe, dtype=np.complex128)) ** 2
    if weight.shape != (n_pix, n_pix) or not np.isfinite(weight).all() or not weight.any():
        raise ValueError(f"probe must be a finite, non-zero ({n_pix}, {n_pix}) array, got shape {weight.shape}")
    patches = patches.astype(np.complex128)
    ycoords, xcoords = np.asarray(ycoords, np.float64), np.asarray(xcoords, np.float64)
    coverage = splat(np.broadcast_to(weight, patches.shape), ycoords, xcoords, object_shape)
    theta = synchronise_offsets(patches, weight, ycoords, xcoords) if synchronise else np.zeros(n)
    obj = _weighted_mean(patches, weight, theta, ycoords, xcoords, coverage)
    if synchronise:
        for _ in range(POLISH_ROUNDS):
            current = extract_patches(obj.astype(np.complex64), ycoords, xcoords, n_pix).astype(np.complex128)
            updated = phase_offsets(patches, current, weight)
            moved = np.abs(np.angle(np.exp(1j * (updated - theta))))
            theta = updated
            obj = _weighted_mean(patches, weight, theta, ycoords, xcoords, coverage)
            if moved.max(initial=0.0) < POLISH_TOLERANCE:
                break
    return Stitched(obj.astype(np.complex64), coverage.astype(np.float32), theta)
