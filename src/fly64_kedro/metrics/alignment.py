"""Alignment of a reconstruction to the ground truth before any metric (spec section 7).

One procedure for every model (:func:`align_to_truth`): crop to the scanned region, sub-pixel registration,
removal of the global phase offset and a best-fit phase plane, least-squares amplitude scale. Reconstructions and
the ground truth share the object-pixel frame: pixel (r, c) has its centre at object coordinate (y, x) = (r, c).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.signal.windows import tukey
from skimage.registration import phase_cross_correlation

# Extra pixels kept around the scanned region while shifting: the Fourier shift treats the crop as periodic and
# rings at its borders, and both effects must stay outside the region that is scored.
SHIFT_GUARD_PX = 16
# Taper fraction of the Tukey window applied before cross-correlation: it hides the crop borders, where the two
# images differ by the content that the shift moves in and out (and, while refining, by the periodic wrap).
_TAPER = 0.3
_REGISTRATION_ITERATIONS = 3


@dataclass(frozen=True, eq=False)
class Alignment:
    """A reconstruction aligned to the ground truth, both cropped to the scanned region.

    ``recon`` is shifted and phase-corrected but not amplitude-scaled: metrics use ``amplitude_scale * |recon|``.
    ``shift`` (dy, dx) in pixels was applied to the reconstruction; ``phase_plane`` (a, b, c) (rad, rad/px, rad/px)
    is the removed phase a + b*y + c*x in object-pixel coordinates, a wrapped to (-pi, pi].
    ``region`` is the crop (rows, columns) in the object frame. ``registered_shift`` is what cross-correlation
    found; it is applied only within ``max_shift`` px (every model is reconstructed in the ground truth's frame,
    so a larger peak means a reconstruction too poor to register, and shifting it would only flatter it).
    """

    truth: np.ndarray
    recon: np.ndarray
    shift: tuple[float, float]
    amplitude_scale: float
    phase_plane: tuple[float, float, float]
    region: tuple[slice, slice]
    registered_shift: tuple[float, float]


def scanned_region(
    ycoords: np.ndarray, xcoords: np.ndarray, n_pix: int, shape: tuple[int, int], margin: int
) -> tuple[slice, slice]:
    """(rows, columns) crop of the object pixels illuminated by at least one probe, shrunk by ``margin`` px.

    A patch centred at y samples object coordinates y - N/2 .. y + N/2 - 1 by bilinear interpolation (the forward
    model's convention), so it touches pixels floor(y - N/2) .. ceil(y + N/2 - 1). The box is clipped to ``shape``.
    """
    if len(ycoords) == 0 or len(ycoords) != len(xcoords):
        raise ValueError(f"need matching, non-empty scan coordinates, got {len(ycoords)} y and {len(xcoords)} x")
    if margin < 0:
        raise ValueError(f"margin must be >= 0 pixels, got {margin}")
    box = []
    for coords, size, axis in ((ycoords, shape[0], "rows"), (xcoords, shape[1], "columns")):
        first = math.floor(float(np.min(coords)) - n_pix / 2) + margin
        last = math.ceil(float(np.max(coords)) + n_pix / 2 - 1) - margin
        start, stop = max(first, 0), min(last + 1, size)
        if stop <= start:
            raise ValueError(f"scanned region is empty along {axis} after a margin of {margin} px (object {shape})")
        box.append(slice(start, stop))
    return box[0], box[1]


def _tukey2d(shape: tuple[int, ...], alpha: float = _TAPER) -> np.ndarray:
    return np.outer(tukey(shape[0], alpha), tukey(shape[1], alpha))


def _edge_taper(length: int, width: int) -> np.ndarray:
    """1-D profile: raised cosine from 0 to 1 over ``width`` samples at both ends, 1 in between."""
    profile = np.ones(length)
    ramp = 0.5 * (1 - np.cos(np.pi * (np.arange(width) + 0.5) / width))
    profile[:width] = ramp
    profile[length - width :] = ramp[::-1]
    return profile


def _registration_feature(image: np.ndarray) -> np.ndarray:
    """Diagonal-neighbour product z(r+1, c+1) * conj(z(r, c)), mean-removed.

    Registering the complex image directly fails on reconstructions: a phase ramp moves the cross-correlation
    peak by pixels (tens of pixels at 0.05 rad/px in our checks). The amplitude alone is blind to ramps but
    useless for phase-dominant objects. This product keeps amplitude and phase structure, turns a global phase
    offset and any phase plane a + b*y + c*x into one constant factor exp(i(b + c)) that the correlation
    magnitude ignores, and is linear in an amplitude scale, so registration is invariant to all three.
    """
    z = np.asarray(image)
    product = z[1:, 1:] * np.conj(z[:-1, :-1])
    return product - product.mean()


def apply_shift(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """``image`` (complex or real) shifted by ``shift`` = (dy, dx) pixels; Fourier shift, so periodic. Complex out."""
    spectrum = ndimage.fourier_shift(np.fft.fft2(np.asarray(image, dtype=np.complex128)), shift)
    return np.fft.ifft2(spectrum)


def register_subpixel(reference: np.ndarray, moving: np.ndarray, upsample: int = 100) -> tuple[float, float]:
    """(dy, dx) in pixels such that ``apply_shift(moving, (dy, dx))`` matches ``reference``.

    Cross-correlation (skimage, upsampled DFT to 1/``upsample`` px) of the tapered diagonal-neighbour products
    (see :func:`_registration_feature`), without phase normalisation (it whitens the spectrum and lets noise at
    high frequencies dominate). The estimate is refined by re-registering the shifted image: a fixed window
    weights the two images differently while they are misaligned, which biases one pass by up to ~0.05 px.
    """
    reference = np.asarray(reference)
    moving = np.asarray(moving)
    if reference.shape != moving.shape or reference.ndim != 2:
        raise ValueError(f"need two 2-D images of one shape, got {reference.shape} and {moving.shape}")
    window = _tukey2d((reference.shape[0] - 1, reference.shape[1] - 1))
    ref_feature = _registration_feature(reference) * window
    total = np.zeros(2)
    for _ in range(_REGISTRATION_ITERATIONS):
        current = apply_shift(moving, (total[0], total[1])) if total.any() else moving
        step, _, _ = phase_cross_correlation(
            ref_feature, _registration_feature(current) * window, upsample_factor=upsample, normalization=None
        )
        total += step
        if np.abs(step).max() < 1.0 / upsample:
            break
    return float(total[0]), float(total[1])


def fit_phase_plane(reference: np.ndarray, moving: np.ndarray) -> tuple[float, float, float]:
    """(a, b, c): phase a + b*row + c*col (radians, rad/px) that best explains angle(moving * conj(reference)).

    A coarse ramp from the peak of the product's spectrum keeps the residual below pi across the image, so that
    the wrapped-phase fit below cannot be fooled by wraps. Then, twice: the global offset from the angle of the
    summed product, and an amplitude-weighted least-squares plane fitted to the wrapped residual phase.
    """
    product = np.asarray(moving) * np.conj(np.asarray(reference))
    weight = np.abs(product)
    if not weight.any():
        raise ValueError("cannot fit a phase plane: the product of the two images is zero everywhere")
    rows, cols = np.indices(product.shape, dtype=np.float64)
    peak = np.unravel_index(np.argmax(np.abs(np.fft.fft2(product))), product.shape)
    ramp = [2 * np.pi * np.fft.fftfreq(size)[index] for size, index in zip(product.shape, peak)]  # rad/px
    coef = np.array([0.0, *ramp])
    design = np.column_stack([np.ones(product.size), rows.ravel(), cols.ravel()]) * np.sqrt(weight).ravel()[:, None]
    for _ in range(2):
        residual = product * np.exp(-1j * (coef[0] + coef[1] * rows + coef[2] * cols))
        offset = np.angle(residual.sum())
        coef[0] += offset
        wrapped = np.angle(residual * np.exp(-1j * offset))
        delta, *_ = np.linalg.lstsq(design, (wrapped * np.sqrt(weight)).ravel(), rcond=None)
        coef += delta
    return float(coef[0]), float(coef[1]), float(coef[2])


def _plane(shape: tuple[int, ...], coef: tuple[float, float, float]) -> np.ndarray:
    rows, cols = np.indices(shape, dtype=np.float64)
    return coef[0] + coef[1] * rows + coef[2] * cols


def remove_phase_offset_and_plane(
    reference: np.ndarray, moving: np.ndarray
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """``moving * exp(-i(a + b*row + c*col))`` with (a, b, c) from :func:`fit_phase_plane`, and (a, b, c)."""
    moving = np.asarray(moving)
    plane = fit_phase_plane(reference, moving)
    return moving * np.exp(-1j * _plane(moving.shape, plane)), plane


def fit_amplitude_scale(reference_amp: np.ndarray, moving_amp: np.ndarray) -> float:
    """Least-squares k minimising ||reference_amp - k * moving_amp||_2 (dimensionless)."""
    reference_amp = np.asarray(reference_amp, dtype=np.float64)
    moving_amp = np.asarray(moving_amp, dtype=np.float64)
    energy = float(np.sum(moving_amp**2))
    if energy == 0.0:
        raise ValueError("cannot fit an amplitude scale: the moving amplitude is zero everywhere")
    return float(np.sum(reference_amp * moving_amp)) / energy


def align_to_truth(
    truth: np.ndarray,
    recon: np.ndarray,
    ycoords: np.ndarray,
    xcoords: np.ndarray,
    n_pix: int,
    margin: int,
    max_shift: float = np.inf,
) -> Alignment:
    """Align ``recon`` to ``truth`` (both complex (H, W) in the object-pixel frame) inside the scanned region.

    Registration uses only the scanned region (outside it a reconstruction is unconstrained). The shift is applied
    to a larger crop (guard band = |shift| + SHIFT_GUARD_PX, edge-padded beyond the object, tapered to zero in the
    band so the periodic Fourier shift sees no jump at the crop border), then cropped back to the region.
    """
    truth = np.asarray(truth)
    recon = np.asarray(recon)
    if recon.shape != truth.shape or truth.ndim != 2:
        raise ValueError(f"reconstruction shape {recon.shape} differs from ground truth {truth.shape}")
    if not np.all(np.isfinite(recon)):
        raise ValueError(f"reconstruction has {int(np.sum(~np.isfinite(recon)))} NaN/Inf pixels")
    if not np.all(np.isfinite(truth)):
        raise ValueError("ground truth has NaN/Inf pixels")
    rows, cols = scanned_region(ycoords, xcoords, n_pix, truth.shape, margin)
    truth_crop = truth[rows, cols].astype(np.complex128)
    registered = register_subpixel(truth_crop, recon[rows, cols])
    shift = registered if max(abs(registered[0]), abs(registered[1])) <= max_shift else (0.0, 0.0)

    guard = math.ceil(max(abs(shift[0]), abs(shift[1]))) + SHIFT_GUARD_PX
    padded = np.pad(recon.astype(np.complex128), guard, mode="edge")
    band = padded[rows.start : rows.stop + 2 * guard, cols.start : cols.stop + 2 * guard]
    taper = np.outer(_edge_taper(band.shape[0], SHIFT_GUARD_PX // 2), _edge_taper(band.shape[1], SHIFT_GUARD_PX // 2))
    shifted = apply_shift(band * taper, shift)[guard:-guard, guard:-guard]

    aligned, plane = remove_phase_offset_and_plane(truth_crop, shifted)
    a, b, c = plane
    # The plane was fitted in crop coordinates; report it in object-pixel coordinates (y, x) = (r, c), a in (-pi, pi].
    object_plane = (float(np.angle(np.exp(1j * (a - b * rows.start - c * cols.start)))), b, c)
    scale = fit_amplitude_scale(np.abs(truth_crop), np.abs(aligned))
    return Alignment(truth_crop, aligned, shift, scale, object_plane, (rows, cols), registered)
