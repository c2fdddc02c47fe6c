"""PtychoPINN architecture in Keras 3 (docs/science.md "Reconstruction"). Imports TensorFlow: use only inside the
"tensorflow" worker.

Encoder 4 x [conv3x3, conv3x3, maxpool] with filters f, 2f, 4f, 8f; two mirrored decoders
4 x [upsample, conv3x3, conv3x3] with filters 4f, 2f, f, f and a last conv3x3 to C = gridsize^2 channels.
``output`` "cartesian" (gridsize 2 by default): the decoders give the object's real and imaginary parts, each
through ``amplitude_range`` * tanh, the real part starting at 0.5. "polar" (upstream's; gridsize 1 by default):
amplitude through ``amplitude_range`` * sigmoid, starting at 0.5, and phase through pi * tanh. docs/science.md
("Cartesian output") has why and the measurements. Input: diffraction amplitudes (B, N, N, C) times a fixed
normalisation ``input_scale`` (a layer, so the model takes raw amplitudes).

gridsize 2: the C predicted patches of a group are splatted onto a shared canvas at their offsets from the
group's reference point (bilinear, the adjoint of extraction), averaged where they overlap, and re-extracted at
the same offsets before the physics layer, so overlapping patches must agree. The canvas is (M, M) with
M = N + 2R + 2, R = ``canvas_radius`` (pixels); a member whose offset exceeds R on either axis (sparse views) is
left out of the merge and passes straight to the physics layer, as at gridsize 1. This bounds memory at any spacing.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from fly64_kedro.engines.pinn.physics import FarFieldLayer, extract_patches, place_patches
from fly64_kedro.engines.pinn.settings import LEVELS

MERGE_FLOOR = 1e-3  # of the peak probe intensity: the canvas weight below which a pixel counts as unlit


class PinnModels(NamedTuple):
    """Three views of one set of layers: ``training`` (diffraction[, offsets] -> predicted amplitude, units of
    sqrt(counts)), ``inference`` (diffraction -> object amplitude and phase patches, raw decoder outputs) and
    ``merged`` (diffraction[, offsets] -> the (real, imag) patches the physics layer sees: at gridsize 2 the
    group's canvas average, mutually consistent by construction)."""

    training: keras.Model
    inference: keras.Model
    merged: keras.Model


class PolarToCartesian(keras.layers.Layer):
    """(amplitude, phase) -> (real, imag); a layer because Keras 3 ops on symbolic tensors mis-infer sparsity."""

    def call(self, inputs: list[tf.Tensor]) -> list[tf.Tensor]:
        amplitude, phase = inputs
        return [amplitude * tf.cos(phase), amplitude * tf.sin(phase)]


class CartesianToPolar(keras.layers.Layer):
    """(real, imag) -> (amplitude, phase)."""

    def call(self, inputs: list[tf.Tensor]) -> list[tf.Tensor]:
        real, imag = inputs
        return [tf.sqrt(real * real + imag * imag), tf.math.atan2(imag, real)]


class CanvasMerge(keras.layers.Layer):
    """Merge a group's C patches on a shared canvas by their offsets and re-extract them.

    The canvas is the |P|^2-weighted mean of the patches (docs/science.md, "Stitching"), the rule inference
    stitches by: each pixel follows the patches whose probe lights it, so a neighbour's dark, unconstrained
    border does not dilute it. (Uniform weights compressed the phase contrast: phase R2 0.19 at 1e5, full view.)
    ``probe`` initialises the weight (a non-trainable variable, so saved models carry it).
    """

    def __init__(self, n_pix: int, radius: int, probe: np.ndarray | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.n_pix = n_pix
        self.radius = radius
        self.size = n_pix + 2 * radius + 2  # the +2 holds the extra bilinear tap of a member at offset +-radius
        self.initial_probe = None if probe is None else np.asarray(probe, dtype=np.complex64)

    def build(self, input_shape: object) -> None:
        self.probe_weight = self.add_weight(
            name="probe_weight", shape=(self.n_pix, self.n_pix), initializer="zeros", trainable=False
        )
        if self.initial_probe is not None:
            intensity = np.abs(self.initial_probe) ** 2
            self.probe_weight.assign(intensity / intensity.max())

    def call(self, inputs: list[tf.Tensor]) -> list[tf.Tensor]:
        real, imag, offsets = inputs  # (B, N, N, C), (B, N, N, C), (B, C, 2) pixels (dy, dx)
        n_pix, n_ch, size = self.n_pix, real.shape[-1], self.size
        batch = tf.shape(real)[0]
        obj = tf.reshape(tf.transpose(tf.stack([real, imag], axis=-1), [0, 3, 1, 2, 4]), [-1, n_pix, n_pix, 2])
        centre = size // 2
        cy = tf.reshape(centre + offsets[..., 0], [-1])
        cx = tf.reshape(centre + offsets[..., 1], [-1])
        inside = tf.reduce_all(tf.abs(offsets) <= self.radius, axis=-1)  # (B, C)
        mask = tf.reshape(tf.cast(inside, real.dtype), [-1, 1, 1, 1])
        weight = tf.broadcast_to(tf.convert_to_tensor(self.probe_weight)[None, :, :, None], tf.shape(obj[..., :1]))
        placed = place_patches(obj * weight, cy, cx, (size, size)) * mask
        norm = place_patches(weight, cy, cx, (size, size)) * mask
        total = tf.reduce_sum(tf.reshape(placed, [batch, n_ch, size, size, 2]), axis=1)
        norm = tf.reduce_sum(tf.reshape(norm, [batch, n_ch, size, size, 1]), axis=1)
        # Where no member's probe reaches (weight < MERGE_FLOOR of the peak) the canvas fades to 0 instead of
        # dividing noise by noise; the physics layer multiplies those pixels by a dark probe anyway.
        canvas = total / (norm + MERGE_FLOOR)
        merged = extract_patches(tf.repeat(canvas, n_ch, axis=0), cy, cx, n_pix)
        merged = tf.where(tf.reshape(inside, [-1, 1, 1, 1]), merged, obj)
        merged = tf.transpose(tf.reshape(merged, [batch, n_ch, n_pix, n_pix, 2]), [0, 2, 3, 1, 4])
        return [merged[..., 0], merged[..., 1]]


class MembersToBatch(keras.layers.Layer):
    """(B, N, N, C) -> (B * C, N, N, 1): each group member becomes its own sample of a single-pattern network."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        n_pix = inputs.shape[1]
        return tf.reshape(tf.transpose(inputs, [0, 3, 1, 2]), [-1, n_pix, n_pix, 1])


class BatchToMembers(keras.layers.Layer):
    """(B * C, N, N, 1) -> (B, N, N, C), the inverse of ``MembersToBatch``."""

    def __init__(self, channels: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.channels = channels

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        n_pix = inputs.shape[1]
        return tf.transpose(tf.reshape(inputs, [-1, self.channels, n_pix, n_pix]), [0, 2, 3, 1])


def _conv(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    return keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)


def _decoder(
    x: keras.KerasTensor, filters: int, channels: int, activation: str, name: str, bias: float = 0.0
) -> keras.KerasTensor:
    """Upsample N/16 -> N with filters 4f, 2f, f, f; a last conv to ``channels`` maps through ``activation``."""
    for level in reversed(range(LEVELS)):
        width = filters * 2 ** max(level - 1, 0)
        x = keras.layers.UpSampling2D(2, name=f"{name}_{level}_up")(x)
        x = _conv(x, width, f"{name}_{level}_conv_a")
        x = _conv(x, width, f"{name}_{level}_conv_b")
    out = keras.layers.Conv2D(
        channels,
        3,
        padding="same",
        activation=activation,
        bias_initializer=keras.initializers.Constant(bias),
        name=f"{name}_out",
    )
    return out(x)


def build_models(config: dict, probe: np.ndarray | None = None) -> PinnModels:
    """Build the models from ``config`` (N, gridsize, filters, output, amplitude_range, input_scale, intensity_scale,
    trainable_scale, canvas_radius).

    ``probe`` (complex (N, N)) initialises the physics layer; leave it None when loading saved weights.
    """
    n_pix, gridsize, filters = config["N"], config["gridsize"], config["filters"]
    channels = gridsize**2
    shared = config.get("members", "stacked") == "shared"
    diffraction = keras.Input((n_pix, n_pix, channels), name="diffraction")
    x = keras.layers.Rescaling(config["input_scale"], name="input_scale")(diffraction)
    if shared:  # one single-pattern network for every member: gridsize 1's layers, so its weights fit
        x = MembersToBatch(name="members_to_batch")(x)
    decoded = 1 if shared else channels  # patches per sample out of the decoders
    for level in range(LEVELS):
        x = _conv(x, filters * 2**level, f"encoder_{level}_conv_a")
        x = _conv(x, filters * 2**level, f"encoder_{level}_conv_b")
        x = keras.layers.MaxPooling2D(2, name=f"encoder_{level}_pool")(x)
    # Every bounded output is range * activation and starts at 0.5 whatever the range (docs/science.md "Warmup": the
    # start's photon deficit is what first trains the decoders; a range of 2 keeps the truth's ~0.9 off the bound).
    width = config["amplitude_range"]
    if config["output"] == "cartesian":
        # The object starts near a uniform 0.5 transmission, not at 0, where no photons leave.
        real = _decoder(x, filters, decoded, "tanh", "real", bias=math.atanh(0.5 / width))
        imag = _decoder(x, filters, decoded, "tanh", "imag")
        real = keras.layers.Rescaling(width, name="real_range")(real)
        imag = keras.layers.Rescaling(width, name="imag_range")(imag)
        amplitude, phase = CartesianToPolar(name="cartesian_to_polar")([real, imag])
    else:
        start = _decoder(x, filters, decoded, "sigmoid", "amplitude", bias=-math.log(2 * width - 1))
        amplitude = keras.layers.Rescaling(width, name="amplitude_range")(start)
        phase = keras.layers.Rescaling(math.pi, name="phase_range")(_decoder(x, filters, decoded, "tanh", "phase"))
        real, imag = PolarToCartesian(name="polar_to_cartesian")([amplitude, phase])
    if shared:
        amplitude, phase, real, imag = (
            BatchToMembers(channels, name=f"{name}_members")(t)
            for name, t in (("amplitude", amplitude), ("phase", phase), ("real", real), ("imag", imag))
        )
    inference = keras.Model(diffraction, [amplitude, phase], name="pinn_inference")

    inputs = [diffraction]
    if gridsize > 1:
        offsets = keras.Input((channels, 2), name="offsets")
        inputs.append(offsets)
        real, imag = CanvasMerge(n_pix, config["canvas_radius"], probe, name="canvas")([real, imag, offsets])
    merged = keras.Model(inputs, [real, imag], name="pinn_merged")
    physics = FarFieldLayer(
        n_pix, config["intensity_scale"], probe, trainable_scale=config["trainable_scale"], name="physics"
    )
    training = keras.Model(inputs, physics([real, imag]), name="pinn_training")
    return PinnModels(training, inference, merged)
