"""Serializable building blocks shared by the model zoo (no Lambda layers, dynamic H and W, NHWC).

* :class:`PixelShuffle` - sub-pixel convolution rearrangement (Shi et al. 2016, eq. 4, the periodic
  shuffling operator PS) on ``keras.ops.depth_to_space``.
* :class:`BicubicUpsample` - MATLAB ``imresize(lr, s, 'bicubic')`` for an integer ``s`` as a layer,
  the fixed first step of SRCNN (Dong et al. 2016, sec. 3.1).
* :class:`ScaledHeNormal` - He/kaiming normal init multiplied by a factor (ESRGAN, Wang et al. 2018,
  sec. 3.3 "smaller initialization", 0.1 in the official code).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from srkeras.data.imresize import resize_matrix

# MATLAB's cubic has support |x| < 2; for an integer upscaling the sample point of every output pixel
# lies within half an LR pixel of its LR pixel, so its taps are the 5 LR pixels at offsets -2..2.
_BICUBIC_RADIUS = 2


@keras.saving.register_keras_serializable(package="srkeras")
class PixelShuffle(keras.layers.Layer):
    """(N, H, W, C*r^2) -> (N, H*r, W*r, C), the PS operator of ESPCN (Shi et al. 2016, eq. 4).

    Channel order is TensorFlow's ``depth_to_space`` (DCR: ``c_in = (dy*r + dx)*C + c``); PyTorch's
    ``pixel_shuffle`` uses CRD (``c_in = c*r^2 + dy*r + dx``), so PyTorch weights of the conv before a
    shuffle need their output channels permuted when ported. Models trained here are unaffected.
    """

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)
        if self.scale < 1:
            raise ValueError(f"PixelShuffle scale must be >= 1, got {scale}")

    def call(self, x):
        return ops.depth_to_space(x, self.scale, data_format="channels_last")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.scale
        if c is not None and c % (r * r):
            raise ValueError(f"PixelShuffle({r}) needs channels divisible by {r * r}, got {c}")
        return (
            n,
            None if h is None else h * r,
            None if w is None else w * r,
            None if c is None else c // (r * r),
        )

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def bicubic_phase_taps(scale: int) -> np.ndarray:
    """(scale, 5) taps of MATLAB bicubic upscaling by an integer ``scale``, one row per output phase.

    Output pixel ``s*i + p`` (0-based) is ``sum_k taps[p, k] * lr[i + k - 2]`` away from borders.
    Read off :func:`srkeras.data.imresize.resize_matrix` for an interior LR pixel, so the layer uses
    the very weights (kernel, sample positions, normalisation) that ``imresize`` uses.
    """
    s = int(scale)
    n = 4 * _BICUBIC_RADIUS + 2  # long enough that pixel i0 sees no border
    i0 = n // 2
    m = resize_matrix(n, n * s, float(s))
    rows = m[s * i0 : s * i0 + s]
    taps = rows[:, i0 - _BICUBIC_RADIUS : i0 + _BICUBIC_RADIUS + 1]
    # Everything outside the 5-tap window must be zero, or the layer would not be exact.
    outside = rows.copy()
    outside[:, i0 - _BICUBIC_RADIUS : i0 + _BICUBIC_RADIUS + 1] = 0.0
    assert np.abs(outside).max() == 0.0, "bicubic taps exceed the assumed radius"
    return np.array(taps)


def _mirror_indices(n, radius: int):
    """Indices -radius..n+radius-1 folded into [0, n) by half-sample symmetric reflection
    (MATLAB's ``[1:n, n:-1:1]`` / NumPy ``mode='symmetric'``), valid for any n >= 1."""
    idx = ops.arange(-radius, n + radius, dtype="int32")
    period = 2 * n
    m = ops.mod(idx, period)
    return ops.where(m < n, m, period - 1 - m)


class PhaseFilterUpsample(keras.layers.Layer):
    """Upscaling by an integer factor ``s`` as a separable filter that is periodic in the output
    phase: pad the LR image (:meth:`pad_indices`), one depthwise filter per (row, column) phase
    (outer product of the 1-D :meth:`taps`, ``s^2`` filters), and a depth-to-space. Dynamic H, W work
    in traced graphs. No trainable weights. Subclasses give the taps and the padding."""

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)
        if self.scale < 1:
            raise ValueError(f"{type(self).__name__} scale must be a positive integer, got {scale}")
        taps = self.taps(self.scale)  # (s, k)
        k = taps.shape[1]
        # kernel2d[ky, kx, ph*s + pw] = taps[ph, ky] * taps[pw, kx]
        self._kernel2d = np.einsum("ay,bx->yxab", taps, taps).reshape(k, k, self.scale**2).astype(np.float32)

    @staticmethod
    def taps(scale: int) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def pad_indices(n):
        """Indices of the padded rows (or columns) of an axis of length ``n``."""
        raise NotImplementedError

    def build(self, input_shape):
        self.channels = int(input_shape[-1])

    def call(self, x):
        s, c = self.scale, self.channels
        if s == 1:
            return x
        shape = ops.shape(x)
        x = ops.take(x, self.pad_indices(shape[1]), axis=1)
        x = ops.take(x, self.pad_indices(shape[2]), axis=2)
        kernel = np.tile(self._kernel2d[:, :, None, :], (1, 1, c, 1))  # (k, k, C, s^2)
        y = ops.depthwise_conv(x, ops.cast(kernel, x.dtype), strides=1, padding="valid")
        # depthwise output channel is c*s^2 + phase; depth_to_space wants phase*C + c.
        perm = np.array([ci * s * s + ph for ph in range(s * s) for ci in range(c)], dtype=np.int32)
        return ops.depth_to_space(ops.take(y, perm, axis=-1), s, data_format="channels_last")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        s = self.scale
        return (n, None if h is None else h * s, None if w is None else w * s, c)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="srkeras")
class BicubicUpsample(PhaseFilterUpsample):
    """MATLAB-exact bicubic upscaling by an integer factor, equal to ``srkeras.data.imresize(lr, s)``.

    With an integer factor the weights are periodic in the output phase, so the resize is a
    symmetric pad of 2 LR pixels, one 5x5 depthwise filter per (row, column) phase (outer product of
    the 1-D MATLAB taps, s^2 filters), and a depth-to-space. Borders match ``imresize`` because its
    reflected indices are exactly the symmetric padding. No trainable weights.
    """

    taps = staticmethod(bicubic_phase_taps)

    @staticmethod
    def pad_indices(n):
        return _mirror_indices(n, _BICUBIC_RADIUS)


def bilinear_phase_taps(scale: int) -> np.ndarray:
    """(scale, 3) taps of bilinear upscaling by an integer ``scale`` with half-pixel centres (PyTorch's
    ``F.interpolate(mode="bilinear", align_corners=False)``): output ``s*i + p`` samples LR position
    ``i + d``, ``d = (p + 0.5) / s - 0.5``, i.e. ``sum_k taps[p, k] * lr[i + k - 1]``."""
    s = int(scale)
    taps = np.zeros((s, 3), np.float64)
    for p in range(s):
        d = (p + 0.5) / s - 0.5
        taps[p] = (-d, 1 + d, 0.0) if d < 0 else (0.0, 1 - d, d)
    return taps


@keras.saving.register_keras_serializable(package="srkeras")
class BilinearUpsample(PhaseFilterUpsample):
    """Bilinear upscaling by an integer factor, as PyTorch's ``F.interpolate(x, scale_factor=s,
    mode="bilinear", align_corners=False)`` (BasicSR's MSRResNet residual): half-pixel centres, and
    source positions outside the image clamped to the edge pixel, which is a replicate pad of 1 LR
    pixel. One 3x3 depthwise filter per output phase (outer product of :func:`bilinear_phase_taps`)
    and a depth-to-space, so it runs on dynamic H, W in traced graphs (``keras.layers.UpSampling2D``'s
    bilinear resize does not). No trainable weights.
    """

    interpolation = "bilinear"  # read by srkeras.inference.receptive (reach: 1 LR px)
    taps = staticmethod(bilinear_phase_taps)

    @staticmethod
    def pad_indices(n):
        return ops.clip(ops.arange(-1, n + 1, dtype="int32"), 0, n - 1)


@keras.saving.register_keras_serializable(package="srkeras")
class ScaledHeNormal(keras.initializers.VarianceScaling):
    """He (kaiming) normal, fan_in, multiplied by ``factor``: BasicSR's ``default_init_weights(scale=0.1)``
    used for the dense blocks of RRDBNet (ESRGAN, Wang et al. 2018, sec. 3.3). Multiplying the weights
    by ``factor`` multiplies their variance by ``factor**2``: std = factor * sqrt(2 / fan_in)."""

    def __init__(self, factor: float = 0.1, seed=None):
        self.factor = float(factor)
        super().__init__(scale=2.0 * self.factor**2, mode="fan_in", distribution="untruncated_normal", seed=seed)

    def get_config(self):
        # The base config serialises the seed correctly (int or SeedGenerator).
        return {"factor": self.factor, "seed": super().get_config().get("seed")}


def upsample_stages(scale: int) -> list[int]:
    """Factors of the upsampling stages: powers of two as x2 stages (x4 = 2, 2), x3 as one x3 stage,
    the split used by SRResNet/EDSR/ESRGAN code."""
    s = int(scale)
    if s == 3:
        return [3]
    if s >= 2 and s & (s - 1) == 0:
        return [2] * (s.bit_length() - 1)
    raise ValueError(f"scale {scale} is neither 3 nor a power of two")
