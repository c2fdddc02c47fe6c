"""Image-quality metrics on real 2-D images (docs/science.md "Comparison"): R2, MAE, RMSE, PSNR, SSIM, MS-SSIM, FRC,
and the
NRMSE of a complex object.

Every metric takes an optional boolean ``mask`` of the pixels to score (the compared region's lit pixels; all
pixels when None): unlit pixels are unconstrained by the data and must not count. Every metric that needs a data
range takes it from the ground truth (max - min over the mask), never a fixed peak of 255. Frequencies are in
cycles per pixel (0 .. 0.5 = Nyquist); a resolution f corresponds to a period of 1/f pixels.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.signal.windows import tukey

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang, Simoncelli & Bovik 2003
SSIM_WINDOW = 7  # skimage's default uniform window, shared by ssim and ms_ssim so they agree at one scale
_K1, _K2 = 0.01, 0.03
# Taper fraction of the Tukey window applied before the FRC's Fourier transforms.
FRC_TAPER = 0.5


def _pair(
    truth: np.ndarray, test: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if np.iscomplexobj(truth) or np.iscomplexobj(test):
        raise ValueError("metrics take real images: pass the amplitude or the phase of a complex object")
    truth = np.asarray(truth, dtype=np.float64)
    test = np.asarray(test, dtype=np.float64)
    if truth.ndim != 2 or truth.shape != test.shape:
        raise ValueError(f"need two real 2-D images of one shape, got {truth.shape} and {test.shape}")
    if not (np.all(np.isfinite(truth)) and np.all(np.isfinite(test))):
        raise ValueError("images must be finite (no NaN/Inf)")
    mask = np.ones(truth.shape, bool) if mask is None else np.asarray(mask, bool)
    if mask.shape != truth.shape or not mask.any():
        raise ValueError(f"mask must be a non-empty boolean image of shape {truth.shape}, got {mask.shape}")
    return truth, test, mask


def data_range(truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """max - min of the ground truth over ``mask`` (image units); raises if the truth is constant there."""
    values = np.asarray(truth) if mask is None else np.asarray(truth)[mask]
    value = float(np.max(values) - np.min(values))
    if value <= 0:
        raise ValueError("the ground truth is constant: its data range is 0, PSNR/SSIM are undefined")
    return value


def mae(truth: np.ndarray, test: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute error over ``mask`` (image units)."""
    truth, test, mask = _pair(truth, test, mask)
    return float(np.mean(np.abs(truth - test)[mask]))


def rmse(truth: np.ndarray, test: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root-mean-square error over ``mask`` (image units)."""
    truth, test, mask = _pair(truth, test, mask)
    return float(np.sqrt(np.mean(((truth - test) ** 2)[mask])))


def r2(truth: np.ndarray, test: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Coefficient of determination 1 - MSE / Var(truth) over ``mask`` (dimensionless).

    1 for the truth, 0 for a constant image at the truth's mean, negative for worse than that: unlike the
    SSIM family, its floor is known.
    """
    truth, test, mask = _pair(truth, test, mask)
    variance = float(np.var(truth[mask]))
    if variance <= 0:
        raise ValueError("the ground truth is constant: its variance is 0, R2 is undefined")
    return 1.0 - float(np.mean(((truth - test) ** 2)[mask])) / variance


def psnr(truth: np.ndarray, test: np.ndarray, mask: np.ndarray | None = None) -> float:
    """20 log10(data range of the truth / RMSE) in dB over ``mask``; inf for identical images."""
    error = rmse(truth, test, mask)
    peak = data_range(truth, mask)
    return math.inf if error == 0 else 20 * math.log10(peak / error)


def nrmse_complex(truth: np.ndarray, test: np.ndarray, mask: np.ndarray | None = None) -> float:
    """||truth - test|| / ||truth|| of two complex objects over ``mask`` (dimensionless; 0 = identical)."""
    truth, test = np.asarray(truth, np.complex128), np.asarray(test, np.complex128)
    if truth.shape != test.shape or not (np.all(np.isfinite(truth)) and np.all(np.isfinite(test))):
        raise ValueError(f"need two finite complex images of one shape, got {truth.shape} and {test.shape}")
    mask = np.ones(truth.shape, bool) if mask is None else np.asarray(mask, bool)
    norm = float(np.linalg.norm(truth[mask]))
    if norm == 0:
        raise ValueError("the ground truth is zero on the mask: NRMSE is undefined")
    return float(np.linalg.norm((truth - test)[mask])) / norm


def _ssim_terms(x: np.ndarray, y: np.ndarray, peak: float, mask: np.ndarray) -> tuple[float, float]:
    """(mean SSIM, mean contrast-structure) over ``mask`` with skimage's conventions (sample covariance, edge crop).

    The local statistics use every pixel of the 7x7 window; only the map's average is restricted to the mask.
    """
    filt = {"size": SSIM_WINDOW}
    n = SSIM_WINDOW**2
    cov_norm = n / (n - 1)
    ux, uy = ndimage.uniform_filter(x, **filt), ndimage.uniform_filter(y, **filt)
    vx = cov_norm * (ndimage.uniform_filter(x * x, **filt) - ux * ux)
    vy = cov_norm * (ndimage.uniform_filter(y * y, **filt) - uy * uy)
    vxy = cov_norm * (ndimage.uniform_filter(x * y, **filt) - ux * uy)
    c1, c2 = (_K1 * peak) ** 2, (_K2 * peak) ** 2
    cs = (2 * vxy + c2) / (vx + vy + c2)
    luminance = (2 * ux * uy + c1) / (ux**2 + uy**2 + c1)
    keep = _inner(mask)
    return float(np.mean((luminance * cs)[keep])), float(np.mean(cs[keep]))


def _inner(mask: np.ndarray) -> np.ndarray:
    """``mask`` without the half-window border that skimage crops from the SSIM map."""
    pad = (SSIM_WINDOW - 1) // 2
    keep = np.zeros_like(mask)
    keep[pad : mask.shape[0] - pad, pad : mask.shape[1] - pad] = mask[
        pad : mask.shape[0] - pad, pad : mask.shape[1] - pad
    ]
    return keep


def ssim(truth: np.ndarray, test: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean SSIM over ``mask`` (skimage's 7x7 uniform window, K1=0.01, K2=0.03) with the truth's data range."""
    truth, test, mask = _pair(truth, test, mask)
    if not _inner(mask).any():
        raise ValueError(f"the mask has no pixel {SSIM_WINDOW // 2} px inside the image: SSIM is undefined")
    return _ssim_terms(truth, test, data_range(truth, mask), mask)[0]


def _downsample(image: np.ndarray) -> np.ndarray:
    """2x2 block mean: a low-pass (box) filter and decimation by 2 in one step; an odd last row/column is dropped."""
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    return image[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def _downsample_mask(mask: np.ndarray) -> np.ndarray:
    """2x2 block minimum: a coarse pixel is scored only if all four fine pixels were."""
    h, w = mask.shape[0] // 2 * 2, mask.shape[1] // 2 * 2
    return mask[:h, :w].reshape(h // 2, 2, w // 2, 2).all(axis=(1, 3))


def ms_ssim_scales(shape: tuple[int, ...], max_scales: int = len(MS_SSIM_WEIGHTS)) -> int:
    """Number of scales (<= ``max_scales``) whose image is still at least SSIM_WINDOW pixels on each side."""
    smallest = min(shape)
    if smallest < SSIM_WINDOW:
        raise ValueError(f"image {tuple(shape)} is smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} SSIM window")
    return min(max_scales, 1 + math.floor(math.log2(smallest / SSIM_WINDOW)))


def ms_ssim(
    truth: np.ndarray, test: np.ndarray, mask: np.ndarray | None = None, weights: tuple[float, ...] = MS_SSIM_WEIGHTS
) -> float:
    """Multi-scale SSIM (Wang et al. 2003) over ``mask`` with the truth's data range at every scale.

    MS-SSIM = prod_{j<M} cs_j^w_j * ssim_M^w_M: contrast-structure at the finer scales, full SSIM (luminance too)
    at the coarsest, each the mean of its map over the mask; between scales a 2x2 block mean low-passes before
    decimating (plain decimation aliases fine detail into the coarse scales) and the mask shrinks by a 2x2 block
    minimum. If the image (or its mask) is too small for all scales with a 7x7 window, the first M scales are used
    with their weights renormalised to sum 1 (so identical images still score 1). A negative term
    (anti-correlated structure) is clipped to 0 before the fractional power, as tf.image.ssim_multiscale and
    pytorch-msssim do: anti-correlation counts as no similarity and the power stays real.
    """
    truth, test, mask = _pair(truth, test, mask)
    peak = data_range(truth, mask)
    pyramid = [(truth, test, mask)]
    for _ in range(ms_ssim_scales(truth.shape, len(weights)) - 1):
        coarse = _downsample_mask(pyramid[-1][2])
        if not _inner(coarse).any():
            break
        pyramid.append((_downsample(pyramid[-1][0]), _downsample(pyramid[-1][1]), coarse))
    if not _inner(mask).any():
        raise ValueError(f"the mask has no pixel {SSIM_WINDOW // 2} px inside the image: MS-SSIM is undefined")
    used = np.asarray(weights[: len(pyramid)], dtype=np.float64)
    used = used / used.sum()
    result = 1.0
    for scale, ((x, y, m), weight) in enumerate(zip(pyramid, used)):
        full, cs = _ssim_terms(x, y, peak, m)
        term = full if scale == len(pyramid) - 1 else cs
        result *= max(term, 0.0) ** weight
    return float(result)


def _rings(shape: tuple[int, ...], ring_width: int) -> tuple[np.ndarray, np.ndarray]:
    """(ring index of every Fourier pixel, -1 beyond Nyquist; ring centre frequencies in cycles/px).

    Rings are ``ring_width`` / min(H, W) cycles/px wide (the coarser axis' frequency step), ring k centred on k
    times that, up to 0.5.
    """
    if ring_width < 1:
        raise ValueError(f"ring width must be >= 1 frequency step, got {ring_width}")
    step = ring_width / min(shape)
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1]), indexing="ij"))
    n_rings = math.floor(0.5 / step + 1e-9) + 1
    index = np.rint(radius / step).astype(np.int64)
    index[index >= n_rings] = -1
    return index, np.arange(n_rings) * step


def ring_pixel_counts(shape: tuple[int, ...], ring_width: int = 1) -> np.ndarray:
    """Number of Fourier pixels in each FRC ring of :func:`frc` for images of ``shape``."""
    index, freq = _rings(shape, ring_width)
    return np.bincount(index[index >= 0], minlength=len(freq))


def frc(
    a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, ring_width: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Fourier ring correlation: (ring frequencies in cycles/px, 0 .. 0.5; FRC per ring in [-1, 1]).

    Each image has its mean over ``mask`` removed, is set to 0 outside the mask (unscored pixels must not
    correlate), and is multiplied by a separable Tukey window (taper FRC_TAPER): the DFT treats the crop as
    periodic, and the jump between opposite borders (shared by both images) puts correlated power along the
    frequency axes at every frequency, inflating the FRC up to Nyquist. Removing the mean first keeps the window's
    own spectrum, common to both, out of the low rings. Ring 0 then carries only the residual mean and is not used
    by :func:`frc_resolution`.
    """
    a, b, mask = _pair(a, b, mask)
    window = np.outer(tukey(a.shape[0], FRC_TAPER), tukey(a.shape[1], FRC_TAPER)) * mask
    fa = np.fft.fft2((a - a[mask].mean()) * window)
    fb = np.fft.fft2((b - b[mask].mean()) * window)
    index, freq = _rings(a.shape, ring_width)
    keep = index >= 0
    n = len(freq)
    cross = np.bincount(index[keep], weights=np.real(fa * np.conj(fb))[keep], minlength=n)
    power_a = np.bincount(index[keep], weights=(np.abs(fa) ** 2)[keep], minlength=n)
    power_b = np.bincount(index[keep], weights=(np.abs(fb) ** 2)[keep], minlength=n)
    denom = np.sqrt(power_a * power_b)
    curve = np.divide(cross, denom, out=np.zeros(n), where=denom > 0)
    return freq, curve


def half_bit_threshold(pixel_counts: np.ndarray) -> np.ndarray:
    """van Heel & Schatz (2005) 1/2-bit threshold for rings of n Fourier pixels (see :func:`ring_pixel_counts`).

    T(n) = (0.2071 + 1.9102/sqrt(n)) / (1.2071 + 0.9102/sqrt(n)): 1 for n = 1, tends to 0.1716 for large n.
    """
    n = np.asarray(pixel_counts, dtype=np.float64)
    if np.any(n < 1):
        raise ValueError("every ring must hold at least one Fourier pixel")
    root = np.sqrt(n)
    return (0.2071 + 1.9102 / root) / (1.2071 + 0.9102 / root)


def frc_resolution(freq: np.ndarray, curve: np.ndarray, threshold: float | np.ndarray) -> float:
    """First frequency (cycles/px) above ring 0 where ``curve`` falls below ``threshold``, linearly interpolated.

    ``threshold`` is a scalar (e.g. 0.5) or a per-ring curve (e.g. :func:`half_bit_threshold`). If the curve never
    falls below it, the images agree up to the sampling limit and the Nyquist frequency 0.5 is returned. Ring 0
    (the mean) is skipped. Higher is better; the resolved period is 1 / result pixels (:func:`period_px`).
    """
    freq = np.asarray(freq, dtype=np.float64)
    excess = np.asarray(curve, dtype=np.float64) - np.broadcast_to(np.asarray(threshold, dtype=np.float64), freq.shape)
    below = np.flatnonzero(excess[1:] < 0) + 1
    if below.size == 0:
        return 0.5
    i = int(below[0])
    # Fraction of the way from ring i-1 to ring i where the excess reaches 0; clipped because ring 0 may be below.
    step = excess[i - 1] - excess[i]
    t = float(np.clip(excess[i - 1] / step, 0.0, 1.0)) if step > 0 else 0.0
    return float(freq[i - 1] + t * (freq[i] - freq[i - 1]))


def period_px(freq: float) -> float:
    """Resolution as a period in pixels, 1 / ``freq`` (cycles/px); inf for 0."""
    return math.inf if freq == 0 else 1.0 / freq
