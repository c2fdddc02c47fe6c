"""Deterministic synthetic default base: a fly-like complex object and a focused probe (docs/science.md "Generation".1).

The upstream object (a Tike reconstruction of a fly sample) is not public; this stands in for it with the
properties that matter to the study: amplitude texture in [0, 1] at several scales, phase spanning about
[-pi, pi], sharp edges (wings, veins, eyes) that carry high spatial frequencies, and a probe with phase
curvature and a finite support.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to [0, 1]."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    field -= field.min()
    return field / max(field.max(), 1e-12)


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float, angle: float) -> np.ndarray:
    """Boolean mask of a rotated ellipse (all lengths in pixels, angle in radians)."""
    c, s = np.cos(angle), np.sin(angle)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


def synthetic_fly_object(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Complex64 fly-like object of ``shape`` (pixels): amplitude in [0, 1], phase in about [-pi, pi]."""
    height, width = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    cy, cx, scale = height / 2, width / 2, min(height, width) / 2

    body = np.zeros(shape)
    wings = np.zeros(shape)
    # Thorax, abdomen and head along a slightly tilted axis; two wings; two dark compound eyes.
    axis = 0.35
    for t, ry, rx, weight in ((-0.05, 0.22, 0.16, 1.0), (0.35, 0.32, 0.14, 0.8), (-0.38, 0.12, 0.13, 0.9)):
        py, px = cy + t * scale * np.cos(axis), cx - t * scale * np.sin(axis)
        body = np.maximum(body, weight * _ellipse(yy, xx, py, px, ry * scale, rx * scale, axis))
    for side in (-1, 1):
        wy, wx = cy + 0.05 * scale, cx + side * 0.45 * scale
        wing = _ellipse(yy, xx, wy, wx, 0.18 * scale, 0.45 * scale, axis + side * 0.35)
        wings = np.maximum(wings, wing * 0.6)
    eyes = np.zeros(shape)
    for side in (-1, 1):
        ey = cy - 0.42 * scale * np.cos(axis) + side * 0.09 * scale * np.sin(axis)
        ex = cx + 0.42 * scale * np.sin(axis) + side * 0.09 * scale * np.cos(axis)
        eyes = np.maximum(eyes, _ellipse(yy, xx, ey, ex, 0.07 * scale, 0.07 * scale, 0.0).astype(float))
    # Wing veins: thin bright lines radiating from the wing roots.
    veins = np.zeros(shape)
    for side in (-1, 1):
        for k in range(5):
            angle = axis + side * (0.1 + 0.25 * k) + (np.pi if side < 0 else 0.0)
            dist = np.abs(-(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle))
            ahead = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle) > 0.1 * scale
            veins = np.maximum(veins, (dist < 1.2) & ahead & (wings > 0))

    texture = _smooth_noise(rng, shape, sigma=scale / 40)
    fine = _smooth_noise(rng, shape, sigma=1.5)
    background = 0.85 + 0.1 * _smooth_noise(rng, shape, sigma=scale / 8)
    absorber = ndimage.gaussian_filter(np.clip(body + wings + 0.5 * veins, 0, 1.3), 1.0)
    amplitude = background * (1.0 - 0.55 * absorber * (0.6 + 0.4 * texture)) - 0.35 * eyes * (0.7 + 0.3 * fine)
    amplitude = np.clip(amplitude + 0.05 * (fine - 0.5), 0.0, 1.0)

    thickness = ndimage.gaussian_filter(body + 0.5 * wings + 0.4 * veins + 0.6 * eyes, 1.5)
    phase_texture = _smooth_noise(rng, shape, sigma=scale / 20)
    phase = 2.6 * thickness + 0.6 * (phase_texture - 0.5)
    phase = 0.8 * np.pi * np.tanh(phase - phase.mean())  # within (-0.8 pi, 0.8 pi): no wrapping at the body
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def focused_probe(n_pix: int, aperture_fraction: float = 0.25, defocus_waves: float = 4.0) -> np.ndarray:
    """Complex64 (N, N) probe: a defocused circular pupil, cut to a finite support, max amplitude 1.

    ``aperture_fraction`` is the pupil radius as a fraction of N in the detector plane, ``defocus_waves``
    the quadratic phase at the pupil edge in waves (gives the phase curvature of a probe out of focus).
    """
    k = np.fft.fftshift(np.fft.fftfreq(n_pix)) * n_pix
    ky, kx = np.meshgrid(k, k, indexing="ij")
    rho = np.hypot(ky, kx) / (aperture_fraction * n_pix)
    pupil = (rho <= 1.0) * np.exp(2j * np.pi * defocus_waves * rho**2)
    probe = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(pupil)))
    r = np.hypot(*np.meshgrid(np.arange(n_pix) - n_pix / 2, np.arange(n_pix) - n_pix / 2, indexing="ij"))
    support = 0.5 * (1 + np.cos(np.pi * np.clip((r - 0.3 * n_pix) / (0.15 * n_pix), 0, 1)))
    probe = probe * support
    return (probe / np.abs(probe).max()).astype(np.complex64)
