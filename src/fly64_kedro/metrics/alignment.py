"""Alignment of a reconstruction to the ground truth before any metric (docs/science.md "Comparison").

One procedure for every model (:func:`align_to_truth`), all inside the compared region (:func:`compared_region`:
the scanned box intersected with the lit mask): sub-pixel registration applied only when it can be trusted,
least-squares removal of the global phase offset, optionally a best-fit phase plane, least-squares amplitude
scale. Reconstructions and the ground truth share the object-pixel frame: pixel (r, c) has its centre at object
coordinate (y, x) = (r, c).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.signal.windows import tukey
from skimage.registration import phase_cross_correlation

from fly64_kedro.physics.stitching import splat

# Extra pixels kept around the scanned region while shifting: the Fourier shift treats the crop as periodic and
# rings at its borders, and both effects must stay outside the region that is scored.
SHIFT_GUARD_PX = 16
# Taper fraction of the Tukey window applied before cross-correlation: it hides the crop borders, where the two
# images differ by the content that the shift moves in and out (and, while refining, by the periodic wrap).
_TAPER = 0.3
_REGISTRATION_ITERATIONS = 3
_OFFSET_ITERATIONS = 50  # each step is exact unless a pixel changes branch; a handful suffice
# A pixel is scored where the summed probe intensity of the scan reaches this fraction of its maximum: dimmer
# pixels are barely constrained by the data, so no reconstruction can be held to them.
LIT_FRACTION = 0.1
# A registration is trusted only if the normalised correlation at its peak reaches this value in every channel
# (amplitude, phase) where the truth has structure, and the channels agree to within AGREE_PX pixels: a weak or
# inconsistent peak on a smooth or poor image is noise, and applying it would blur or flatter the model.
MIN_PEAK_CORRELATION = 0.5
AGREE_PX = 0.25
# Below this mean-square feature value the truth has no structure in a channel (e.g. a constant amplitude).
_FLAT_FEATURE = 1e-12


@dataclass(frozen=True)
class Region:
    """The compared region: the crop (rows, columns) in the object frame and its lit mask (bool, crop-shaped)."""

    rows: slice
    cols: slice
    mask: np.ndarray


@dataclass(frozen=True)
class Registration:
    """Registration of one image to the truth: ``shift`` (dy, dx) px applied (zeros when not trusted), the shifts
    and normalised peak correlations found on amplitude and phase (None where the truth has no structure in that
    channel), and why the shift was or was not applied."""

    shift: tuple[float, float]
    amplitude_shift: tuple[float, float] | None
    phase_shift: tuple[float, float] | None
    amplitude_peak: float | None
    phase_peak: float | None
    decision: str


@dataclass(frozen=True, eq=False)
class Alignment:
    """A reconstruction aligned to the ground truth, both cropped to the compared region.

    ``recon`` is shifted and phase-corrected but not amplitude-scaled: metrics use ``amplitude_scale * |recon|``.
    ``phase_plane`` (a, b, c) (rad, rad/px, rad/px) is the removed phase a + b*y + c*x in object-pixel
    coordinates, a wrapped to (-pi, pi] (b = c = 0 unless a plane was fitted). ``mask`` marks the scored pixels.
    """

    truth: np.ndarray
    recon: np.ndarray
    mask: np.ndarray
    amplitude_scale: float
    phase_plane: tuple[float, float, float]
    region: Region
    registration: Registration

    @property
    def shift(self) -> tuple[float, float]:
        """(dy, dx) in px applied to the reconstruction."""
        return self.registration.shift


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


def compared_region(
    ycoords: np.ndarray,
    xcoords: np.ndarray,
    probe: np.ndarray,
    shape: tuple[int, int],
    margin: int,
    lit_fraction: float = LIT_FRACTION,
) -> Region:
    """The scanned box (:func:`scanned_region`, shrunk by ``margin`` px) and, inside it, the lit mask: pixels where
    the probe intensity |P|^2 splatted at every scan position reaches ``lit_fraction`` of its maximum."""
    n_pix = np.shape(probe)[0]
    rows, cols = scanned_region(ycoords, xcoords, n_pix, shape, margin)
    intensity = np.abs(np.asarray(probe, dtype=np.complex128)) ** 2
    dose = splat(np.broadcast_to(intensity, (len(ycoords), n_pix, n_pix)), ycoords, xcoords, shape)
    mask = (dose >= lit_fraction * dose.max())[rows, cols]
    if not mask.any():
        raise ValueError("the compared region is empty: no pixel of the scanned box is lit")
    return Region(rows, cols, mask)


def _amplitude_feature(image: np.ndarray) -> np.ndarray:
    """|z| without its mean, on the (H-1, W-1) grid of :func:`_phase_feature`."""
    amp = np.abs(np.asarray(image))[1:, 1:]
    return amp - amp.mean()


def _phase_feature(image: np.ndarray) -> np.ndarray:
    """exp(i(phi(r+1, c+1) - phi(r, c))) without its mean: the phase's diagonal gradient as a unit phasor.

    A global phase offset cancels and a phase plane becomes one constant factor that the mean removal and the
    correlation magnitude ignore; the amplitude is divided out, so this channel sees only the phase.
    """
    z = np.asarray(image)
    product = z[1:, 1:] * np.conj(z[:-1, :-1])
    unit = np.divide(product, np.abs(product), out=np.zeros_like(product), where=np.abs(product) > 0)
    return unit - unit.mean()


FEATURES = {"amplitude": _amplitude_feature, "phase": _phase_feature}


def apply_shift(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """``image`` (complex or real) shifted by ``shift`` = (dy, dx) pixels; Fourier shift, so periodic. Complex out."""
    spectrum = ndimage.fourier_shift(np.fft.fft2(np.asarray(image, dtype=np.complex128)), shift)
    return np.fft.ifft2(spectrum)


def register_subpixel(
    reference: np.ndarray,
    moving: np.ndarray,
    channel: str = "amplitude",
    mask: np.ndarray | None = None,
    upsample: int = 100,
) -> tuple[tuple[float, float], float]:
    """((dy, dx) px such that ``apply_shift(moving, (dy, dx))`` matches ``reference``; normalised peak correlation).

    Cross-correlation (skimage, upsampled DFT to 1/``upsample`` px) of one channel's feature (``FEATURES``),
    tapered by a Tukey window and zeroed outside ``mask``, without phase normalisation (it whitens the spectrum
    and lets noise at high frequencies dominate). Refined by re-registering the shifted image: a fixed window
    weights the two images differently while they are misaligned, which biases one pass by up to ~0.05 px. The
    peak correlation |<f_ref, f_moved>| / (|f_ref| |f_moved|) (0..1) is measured after the final shift.
    """
    reference = np.asarray(reference)
    moving = np.asarray(moving)
    if reference.shape != moving.shape or reference.ndim != 2:
        raise ValueError(f"need two 2-D images of one shape, got {reference.shape} and {moving.shape}")
    feature = FEATURES[channel]
    window = _tukey2d((reference.shape[0] - 1, reference.shape[1] - 1))
    if mask is not None:
        window = window * np.asarray(mask)[1:, 1:]
    ref_feature = feature(reference) * window
    if not np.any(feature(moving) * window):  # nothing to correlate (e.g. a flat image): no peak at all
        return (0.0, 0.0), 0.0
    total = np.zeros(2)
    for _ in range(_REGISTRATION_ITERATIONS):
        current = apply_shift(moving, (total[0], total[1])) if total.any() else moving
        step, _, _ = phase_cross_correlation(
            ref_feature, feature(current) * window, upsample_factor=upsample, normalization=None
        )
        total += step
        if np.abs(step).max() < 1.0 / upsample:
            break
    moved = feature(apply_shift(moving, (total[0], total[1])) if total.any() else moving) * window
    norms = float(np.linalg.norm(ref_feature) * np.linalg.norm(moved))
    peak = abs(np.vdot(ref_feature, moved)) / norms if norms > 0 else 0.0
    return (float(total[0]), float(total[1])), float(peak)


def trusted_registration(
    truth: np.ndarray, recon: np.ndarray, mask: np.ndarray | None = None, max_shift: float = np.inf
) -> Registration:
    """Register ``recon`` to ``truth`` on amplitude and on phase; apply the mean shift only if it can be trusted.

    Channels where the truth has no structure are left out (a phase-only object registers on phase alone). Every
    remaining channel must reach MIN_PEAK_CORRELATION, the channels must agree within AGREE_PX, and the shift must
    stay within ``max_shift`` px (every model is reconstructed in the truth's frame, so a far peak means a
    reconstruction too poor to register). Otherwise the applied shift is (0, 0) and ``decision`` says why.
    """
    window = _tukey2d((truth.shape[0] - 1, truth.shape[1] - 1))
    found: dict[str, tuple[tuple[float, float], float]] = {}
    for channel, feature in FEATURES.items():
        if np.mean(np.abs(feature(truth) * window) ** 2) > _FLAT_FEATURE:
            found[channel] = register_subpixel(truth, recon, channel, mask)
    amp, phase = found.get("amplitude"), found.get("phase")
    shifts = np.array([shift for shift, _ in found.values()])
    weak = [f"{c} peak {p:.2f}" for c, (_, p) in found.items() if p < MIN_PEAK_CORRELATION]
    if not found:
        decision = "not applied: the truth has no structure"
    elif weak:
        decision = f"not applied: {', '.join(weak)} < {MIN_PEAK_CORRELATION}"
    elif np.abs(shifts.max(axis=0) - shifts.min(axis=0)).max() > AGREE_PX:
        decision = f"not applied: amplitude and phase shifts differ by more than {AGREE_PX} px"
    elif np.abs(shifts.mean(axis=0)).max() > max_shift:
        decision = f"not applied: beyond max_shift {max_shift} px"
    else:
        decision = "applied"
    mean = shifts.mean(axis=0) if decision == "applied" else np.zeros(2)
    return Registration(
        (float(mean[0]), float(mean[1])),
        amp[0] if amp else None,
        phase[0] if phase else None,
        amp[1] if amp else None,
        phase[1] if phase else None,
        decision,
    )


def fit_phase_plane(reference: np.ndarray, moving: np.ndarray) -> tuple[float, float, float]:
    """(a, b, c): phase a + b*row + c*col (radians, rad/px) that best explains angle(moving * conj(reference)).

    A coarse ramp from the peak of the product's spectrum keeps the residual below pi across the image, so that
    the wrapped-phase fit below cannot be fooled by wraps. Then, twice: the global offset from the angle of the
    summed product, and an amplitude-weighted least-squares plane fitted to the wrapped residual phase. Pixels
    where either image is zero carry no weight.
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


def fit_phase_offset(reference: np.ndarray, moving: np.ndarray, mask: np.ndarray) -> float:
    """Least-squares global phase offset (rad): a with mean over ``mask`` of wrap(angle(moving * conj(reference))
    - a) = 0, iterated from the circular mean until no residual changes branch (a stationary point of the
    wrapped squared error; one step is not enough when the start puts pixels on another branch).

    Unweighted, so that a flat reconstruction's phase after the offset is the truth's masked mean (R2 = 0) when no
    truth pixel lies more than pi from that mean; pixels further away wrap, as they should, and move R2 off 0.
    """
    product = (np.asarray(moving) * np.conj(np.asarray(reference)))[mask]
    offset = float(np.angle(product.sum()))
    for _ in range(_OFFSET_ITERATIONS):
        step = float(np.mean(np.angle(product * np.exp(-1j * offset))))
        offset += step
        if abs(step) < 1e-12:
            break
    return offset


def fit_amplitude_scale(reference_amp: np.ndarray, moving_amp: np.ndarray) -> float:
    """Least-squares k minimising ||reference_amp - k * moving_amp||_2 (dimensionless)."""
    reference_amp = np.asarray(reference_amp, dtype=np.float64)
    moving_amp = np.asarray(moving_amp, dtype=np.float64)
    energy = float(np.sum(moving_amp**2))
    if energy == 0.0:
        raise ValueError("cannot fit an amplitude scale: the moving amplitude is zero everywhere")
    return float(np.sum(reference_amp * moving_amp)) / energy


def align_to_truth(
    truth: np.ndarray, recon: np.ndarray, region: Region, max_shift: float = np.inf, phase_plane: bool = False
) -> Alignment:
    """Align ``recon`` to ``truth`` (both complex (H, W) in the object-pixel frame) inside ``region``.

    Registration (:func:`trusted_registration`) uses only the lit pixels of the region (elsewhere a
    reconstruction is unconstrained). A trusted shift is applied to a larger crop (guard band = |shift| +
    SHIFT_GUARD_PX, edge-padded beyond the object, tapered to zero in the band so the periodic Fourier shift sees
    no jump at the crop border), then cropped back. With ``phase_plane`` a best-fit plane is removed first (it
    also lifts a flat reconstruction's phase R2 above 0); the global offset and the amplitude scale are least
    squares over the mask.
    """
    truth = np.asarray(truth)
    recon = np.asarray(recon)
    if recon.shape != truth.shape or truth.ndim != 2:
        raise ValueError(f"reconstruction shape {recon.shape} differs from ground truth {truth.shape}")
    if not np.all(np.isfinite(recon)):
        raise ValueError(f"reconstruction has {int(np.sum(~np.isfinite(recon)))} NaN/Inf pixels")
    if not np.all(np.isfinite(truth)):
        raise ValueError("ground truth has NaN/Inf pixels")
    rows, cols, mask = region.rows, region.cols, region.mask
    truth_crop = truth[rows, cols].astype(np.complex128)
    registration = trusted_registration(truth_crop, recon[rows, cols].astype(np.complex128), mask, max_shift)
    shift = registration.shift

    guard = math.ceil(max(abs(shift[0]), abs(shift[1]))) + SHIFT_GUARD_PX
    padded = np.pad(recon.astype(np.complex128), guard, mode="edge")
    band = padded[rows.start : rows.stop + 2 * guard, cols.start : cols.stop + 2 * guard]
    taper = np.outer(_edge_taper(band.shape[0], SHIFT_GUARD_PX // 2), _edge_taper(band.shape[1], SHIFT_GUARD_PX // 2))
    shifted = apply_shift(band * taper, shift)[guard:-guard, guard:-guard] if any(shift) else recon[rows, cols]
    shifted = np.asarray(shifted, dtype=np.complex128)

    a, b, c = fit_phase_plane(truth_crop * mask, shifted * mask) if phase_plane else (0.0, 0.0, 0.0)
    tilted = shifted * np.exp(-1j * _plane(shifted.shape, (0.0, b, c)))
    a = fit_phase_offset(truth_crop, tilted, mask)
    aligned = tilted * np.exp(-1j * a)
    # The plane was fitted in crop coordinates; report it in object-pixel coordinates (y, x) = (r, c), a in (-pi, pi].
    object_plane = (float(np.angle(np.exp(1j * (a - b * rows.start - c * cols.start)))), b, c)
    scale = fit_amplitude_scale(np.abs(truth_crop[mask]), np.abs(aligned[mask]))
    return Alignment(truth_crop, aligned, mask, scale, object_plane, region, registration)
