"""TensorFlow physics of the PINN (docs/science.md "Reconstruction"): far-field forward model, Poisson loss, bilinear
translation.

Imports TensorFlow: use only inside the "tensorflow" worker. Conventions are those of ``physics/forward.py``:
object pixel (r, c) has its centre at (y, x) = (r, c); the patch centred at (y, x) samples (y - N/2 + r, x - N/2 + c)
bilinearly; far field = |fftshift(fft2(psi))| / N (unitary), DC at (N/2, N/2). Images are channels-last real
tensors; a complex field travels as a (real, imag) pair so no complex tensor crosses a Keras layer boundary.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

POISSON_EPS = 1e-6  # keeps log(pred_I) finite where the model predicts no photons


def _interp_axis(images: tf.Tensor, origin: tf.Tensor, out_len: int, axis: int) -> tf.Tensor:
    """Linear interpolation of ``images`` along ``axis`` at origin[b] + 0..out_len-1 (pixels); zero outside."""
    size = tf.shape(images)[axis]
    start = tf.floor(origin)
    frac = origin - start
    # Pad one zero on each side and clip: every index outside the image lands on a zero.
    idx = tf.cast(start, tf.int32)[:, None] + tf.range(out_len)[None, :] + 1
    paddings = [[0, 0]] * 4
    paddings[axis] = [1, 1]
    padded = tf.pad(images, paddings)
    lower = tf.gather(padded, tf.clip_by_value(idx, 0, size + 1), axis=axis, batch_dims=1)
    upper = tf.gather(padded, tf.clip_by_value(idx + 1, 0, size + 1), axis=axis, batch_dims=1)
    weight = tf.reshape(frac, [-1, 1, 1, 1])
    return (1.0 - weight) * lower + weight * upper


def bilinear_sample(
    images: tf.Tensor, origin_y: tf.Tensor, origin_x: tf.Tensor, out_shape: tuple[int, int]
) -> tf.Tensor:
    """(B, h, w, ch) samples of (B, H, W, ch) ``images`` at (origin_y[b] + r, origin_x[b] + c) pixels, zero outside."""
    origin_y = tf.cast(origin_y, images.dtype)
    origin_x = tf.cast(origin_x, images.dtype)
    rows = _interp_axis(images, origin_y, out_shape[0], axis=1)
    return _interp_axis(rows, origin_x, out_shape[1], axis=2)


def extract_patches(images: tf.Tensor, ycoords: tf.Tensor, xcoords: tf.Tensor, n_pix: int) -> tf.Tensor:
    """(B, N, N, ch) patches of (B, H, W, ch) images centred at (ycoords[b], xcoords[b]), as forward.extract_patches."""
    half = n_pix / 2
    return bilinear_sample(images, ycoords - half, xcoords - half, (n_pix, n_pix))


def place_patches(patches: tf.Tensor, ycoords: tf.Tensor, xcoords: tf.Tensor, out_shape: tuple[int, int]) -> tf.Tensor:
    """Adjoint of ``extract_patches``: splat (B, N, N, ch) patches into (B, H, W, ch) images with bilinear weights.

    Sampling the zero-padded patch at origin -(c - N/2) is exactly the transpose of sampling the image at c - N/2.
    """
    half = patches.shape[1] / 2
    return bilinear_sample(patches, half - ycoords, half - xcoords, out_shape)


def far_field_amplitude(real: tf.Tensor, imag: tf.Tensor, probe: tf.Tensor) -> tf.Tensor:
    """|fftshift(fft2(O * P))| / N of (B, N, N, C) object patches (real, imag) and a complex (N, N) probe."""
    n_pix = real.shape[1]
    obj = tf.complex(tf.transpose(real, [0, 3, 1, 2]), tf.transpose(imag, [0, 3, 1, 2]))  # FFT acts on last 2 axes
    spectrum = tf.signal.fftshift(tf.signal.fft2d(obj * probe), axes=(-2, -1))
    return tf.transpose(tf.abs(spectrum), [0, 2, 3, 1]) / n_pix


# The trainable log intensity scale is SCALE_RATE * w for the weight w: Adam moves every weight by about the
# learning rate per step, which left this one global scale far slower than the network's output. The amplitude
# sigmoid then ran into saturation at 1 to make up the missing photons and, gridsize 1, never left it (amplitude
# std 4e-8 after 40 epochs). Measured on the 1e5 quick-profile training view, 8 epochs: rate 10 still saturates;
# rate 30 un-saturates it (pooled amplitude correlation with the true patches 0.09 -> 0.83) and lowers the
# training and validation Poisson NLL of both gridsizes.
SCALE_RATE = 30.0


class FarFieldLayer(keras.layers.Layer):
    """Non-trainable physics: object patches (real, imag) -> scale * |F(O P)| / N, the predicted amplitude.

    The probe is a non-trainable weight (so a saved model carries it). The intensity scale is
    scale = exp(SCALE_RATE * log_scale_over_rate), initialised to s, the exposure scale, so predicted counts start
    at the simulator's dose; it is trainable with ``trainable_scale`` (upstream's default, and the project's:
    with it fixed, the 1e4 gridsize-1 network left the phase flat, test phase R2 0.08 against 0.82 learnt).
    """

    def __init__(
        self,
        n_pix: int,
        scale: float,
        probe: np.ndarray | None = None,
        trainable_scale: bool = True,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        if not scale > 0:
            raise ValueError(f"intensity scale must be > 0, got {scale}")
        self.n_pix = n_pix
        self.initial_scale = float(scale)
        self.trainable_scale = bool(trainable_scale)
        self.initial_probe = None if probe is None else np.asarray(probe, dtype=np.complex64)

    def build(self, input_shape: object) -> None:
        shape = (self.n_pix, self.n_pix)
        self.probe_real = self.add_weight(name="probe_real", shape=shape, initializer="zeros", trainable=False)
        self.probe_imag = self.add_weight(name="probe_imag", shape=shape, initializer="zeros", trainable=False)
        self.log_scale_over_rate = self.add_weight(
            name="log_scale_over_rate",
            shape=(),
            initializer=keras.initializers.Constant(math.log(self.initial_scale) / SCALE_RATE),
            trainable=self.trainable_scale,
        )
        if self.initial_probe is not None:
            self.probe_real.assign(self.initial_probe.real)
            self.probe_imag.assign(self.initial_probe.imag)

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        real, imag = inputs
        probe = tf.complex(tf.convert_to_tensor(self.probe_real), tf.convert_to_tensor(self.probe_imag))
        return tf.exp(SCALE_RATE * self.log_scale_over_rate) * far_field_amplitude(real, imag, probe)


def poisson_nll(counts: tf.Tensor, amplitude: tf.Tensor) -> tf.Tensor:
    """Per-sample Poisson negative log-likelihood (photons, up to a constant): mean(I - counts * log(I + eps))."""
    intensity = tf.square(amplitude)
    counts = tf.cast(counts, intensity.dtype)
    return tf.reduce_mean(intensity - counts * tf.math.log(intensity + POISSON_EPS), axis=[1, 2, 3])


def amplitude_mse(counts: tf.Tensor, amplitude: tf.Tensor) -> tf.Tensor:
    """Per-sample mean squared error of the amplitudes, mean((|F| - sqrt(counts))^2) (units of counts): the Gaussian
    likelihood of sqrt(counts), whose variance Poisson noise makes about 1/4 at any intensity."""
    counts = tf.cast(counts, amplitude.dtype)
    return tf.reduce_mean(tf.square(amplitude - tf.sqrt(counts)), axis=[1, 2, 3])
