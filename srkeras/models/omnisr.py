"""OmniSR (Wang et al., "Omni Aggregation Networks for Lightweight Image Super-Resolution", CVPR 2023;
github.com/Francis0625/Omni-SR, as copied in spandrel): exact to the original forward pass.

``input`` conv -> ``res_num`` x OSAG -> ``output`` conv + skip -> conv + pixel shuffle. An OSAG is
``block_num`` OSA blocks, a 1x1 conv, a skip and ESA (enhanced spatial attention: strided conv, max
pool 7/3, bilinear upsampling, sigmoid gate). An OSA block: MBConv (1x1, GELU, depthwise 3x3, GELU,
squeeze-excitation, 1x1, residual), then twice [self-attention over ``w x w`` windows (the first
time) or over a ``w x w`` grid dilated across the whole image (the second), with a relative position
bias; gated-dconv FFN; channel attention (per window / per grid cell, Restormer-style transposed
attention with a learnt temperature); gated-dconv FFN], each pre-normalised (LayerNorm) with a skip.
The input is zero-padded at the bottom/right to a multiple of ``window_size`` and the output cropped
back, as the original does; the grid attention, grid channel attention and ESA see the whole (padded)
image, so outputs of tiles differ from the untiled output (serve untiled).

Layer names are the PyTorch state-dict prefixes, so :mod:`srkeras.pretrained.pth_named` loads a
checkpoint by name. Input and output RGB in [0, 1], NHWC.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from srkeras.models.layers import PixelShuffle
from srkeras.models.sizing import CropToScale, PadToMultiple


def _gelu(x):
    return keras.activations.gelu(x, approximate=False)


def _windows(x, w: int, grid: bool):
    """(B, H, W, C) -> (B * H/w * W/w, w*w, C): ``(x w1)`` blocks, or ``(w1 x)`` dilated grid cells."""
    b, h, wd, c = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2], x.shape[-1]
    if grid:
        y = ops.transpose(ops.reshape(x, (b, w, h // w, w, wd // w, c)), (0, 2, 4, 1, 3, 5))
    else:
        y = ops.transpose(ops.reshape(x, (b, h // w, w, wd // w, w, c)), (0, 1, 3, 2, 4, 5))
    return ops.reshape(y, (-1, w * w, c))


def _unwindows(y, like, w: int, grid: bool):
    b, h, wd, c = ops.shape(like)[0], ops.shape(like)[1], ops.shape(like)[2], like.shape[-1]
    y = ops.reshape(y, (b, h // w, wd // w, w, w, c))
    y = ops.transpose(y, (0, 3, 1, 4, 2, 5) if grid else (0, 1, 3, 2, 4, 5))
    return ops.reshape(y, (b, h, wd, c))


def relative_position_index(w: int) -> np.ndarray:
    """(w*w, w*w) index into the (2w-1)^2 bias table (OmniSR's ``rel_pos_indices``)."""
    grid = np.stack(np.meshgrid(np.arange(w), np.arange(w), indexing="ij")).reshape(2, -1).T
    rel = grid[:, None, :] - grid[None, :, :] + (w - 1)
    return (rel[..., 0] * (2 * w - 1) + rel[..., 1]).astype(np.int32)


@keras.saving.register_keras_serializable(package="srkeras")
class OmniWindowAttention(keras.layers.Layer):
    """Multi-head self-attention within windows (``grid=False``) or dilated grid cells, on q, k, v
    already projected (C*3 channels, ``to_qkv``); 4 heads; ``rel_pos_bias`` table when ``with_pe``."""

    def __init__(self, window_size: int, heads: int = 4, with_pe: bool = True, grid: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.window_size, self.heads, self.with_pe, self.grid = int(window_size), int(heads), bool(with_pe), bool(grid)

    def build(self, input_shape):
        if self.with_pe:
            n = (2 * self.window_size - 1) ** 2
            self.rel_pos_bias = self.add_weight(name="rel_pos_bias", shape=(n, self.heads), initializer="zeros")

    def call(self, qkv):
        w, h = self.window_size, self.heads
        c = qkv.shape[-1] // 3
        t = _windows(qkv, w, self.grid)  # (B', n, 3C)
        t = ops.transpose(ops.reshape(t, (-1, w * w, 3, h, c // h)), (2, 0, 3, 1, 4))  # 3, B', heads, n, d
        q, k, v = t[0] * (c // h) ** -0.5, t[1], t[2]
        sim = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
        if self.with_pe:
            bias = ops.take(self.rel_pos_bias, relative_position_index(w).reshape(-1), axis=0)
            sim = sim + ops.transpose(ops.reshape(bias, (w * w, w * w, h)), (2, 0, 1))[None]
        out = ops.matmul(ops.softmax(sim, axis=-1), v)  # B', heads, n, d
        out = ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (-1, w * w, c))
        return _unwindows(out, qkv[..., :c], w, self.grid)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], input_shape[3] // 3)

    def get_config(self):
        return {**super().get_config(), "window_size": self.window_size, "heads": self.heads,
                "with_pe": self.with_pe, "grid": self.grid}  # fmt: skip


@keras.saving.register_keras_serializable(package="srkeras")
class OmniChannelAttention(keras.layers.Layer):
    """Transposed (channel x channel) attention per ``p x p`` window or, ``grid=True``, per window
    offset across all windows; q and k L2-normalised over positions, scaled by ``temperature``."""

    def __init__(self, window_size: int, heads: int = 4, grid: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.window_size, self.heads, self.grid = int(window_size), int(heads), bool(grid)

    def build(self, input_shape):
        self.temperature = self.add_weight(name="temperature", shape=(self.heads,), initializer="ones")

    def call(self, qkv):
        p, h = self.window_size, self.heads
        b, hh, ww = ops.shape(qkv)[0], ops.shape(qkv)[1], ops.shape(qkv)[2]
        c = qkv.shape[-1] // 3
        t = ops.reshape(qkv, (b, hh // p, p, ww // p, p, 3, h, c // h))
        # groups x (3, heads, d, positions): windows (X, Y) x offsets (ph, pw), or the transpose
        order = (5, 0, 2, 4, 6, 7, 1, 3) if self.grid else (5, 0, 1, 3, 6, 7, 2, 4)
        t = ops.reshape(ops.transpose(t, order), (3, -1, h, c // h, ops.shape(qkv)[1] * ops.shape(qkv)[2] // (p * p)
                                                   if self.grid else p * p))  # fmt: skip
        q, k, v = (t[i] / ops.maximum(ops.norm(t[i], axis=-1, keepdims=True), 1e-12) if i < 2 else t[i] for i in range(3))
        attn = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * ops.reshape(self.temperature, (1, h, 1, 1))
        out = ops.matmul(ops.softmax(attn, axis=-1), v)  # G, heads, d, positions
        if self.grid:
            out = ops.reshape(out, (b, p, p, h, c // h, hh // p, ww // p))
            out = ops.transpose(out, (0, 5, 1, 6, 2, 3, 4))
        else:
            out = ops.reshape(out, (b, hh // p, ww // p, h, c // h, p, p))
            out = ops.transpose(out, (0, 1, 5, 2, 6, 3, 4))
        return ops.reshape(out, (b, hh, ww, c))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], input_shape[3] // 3)

    def get_config(self):
        return {**super().get_config(), "window_size": self.window_size, "heads": self.heads, "grid": self.grid}


@keras.saving.register_keras_serializable(package="srkeras")
class ResizeLike(keras.layers.Layer):
    """Bilinear resize of ``y`` to ``x``'s H x W (PyTorch ``align_corners=False``, no antialiasing)."""

    def call(self, inputs):
        y, x = inputs
        return ops.image.resize(y, ops.shape(x)[1:3], interpolation="bilinear", antialias=False)

    def compute_output_shape(self, input_shapes):
        return (*input_shapes[1][:3], input_shapes[0][3])


def _conv(filters, k, name, bias=True, **kw):
    return keras.layers.Conv2D(filters, k, padding="same" if k > 1 else "valid", use_bias=bias, name=name, **kw)


def _dw(name, bias=True):
    return keras.layers.DepthwiseConv2D(3, padding="same", use_bias=bias, name=name)


def _mbconv(x, p, c):
    y = _gelu(_conv(c, 1, f"{p}.fn.0")(x))
    y = _gelu(_dw(f"{p}.fn.2")(y))
    g = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{p}.fn.4.pool")(y)
    g = keras.layers.Dense(int(c * 0.25), use_bias=False, activation="silu", name=f"{p}.fn.4.gate.1")(g)
    g = keras.layers.Dense(c, use_bias=False, activation="sigmoid", name=f"{p}.fn.4.gate.3")(g)
    y = _conv(c, 1, f"{p}.fn.5")(keras.layers.Multiply(name=f"{p}.fn.4")([y, g]))
    return keras.layers.Add(name=f"{p}.add")([x, y])


def _attention(x, p, c, w, pe, grid):
    y = keras.layers.LayerNormalization(epsilon=1e-5, name=f"{p}.norm")(x)
    y = keras.layers.Dense(3 * c, use_bias=False, name=f"{p}.fn.to_qkv")(y)
    y = OmniWindowAttention(w, 4, pe, grid, name=f"{p}.fn")(y)
    y = keras.layers.Dense(c, use_bias=False, name=f"{p}.fn.to_out.0")(y)
    return keras.layers.Add(name=f"{p}.add")([x, y])


def _gated_ffn(x, p, c):
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{p}.norm")(x)
    y = _dw(f"{p}.fn.dwconv", bias=False)(_conv(2 * c, 1, f"{p}.fn.project_in", bias=False)(y))
    y = _gelu(y[..., :c]) * y[..., c:]
    y = _conv(c, 1, f"{p}.fn.project_out", bias=False)(y)
    return keras.layers.Add(name=f"{p}.add")([x, y])


def _channel_attention(x, p, c, w, grid):
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{p}.norm")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{p}.fn.qkv_dwconv")(
        _conv(3 * c, 1, f"{p}.fn.qkv", bias=False)(y))
    y = OmniChannelAttention(w, 4, grid, name=f"{p}.fn")(y)
    y = _conv(c, 1, f"{p}.fn.project_out", bias=False)(y)
    return keras.layers.Add(name=f"{p}.add")([x, y])


def _osa_block(x, p, c, w, pe):
    x = _mbconv(x, f"{p}.layer.0", c)
    for grid, (att, ffn1, ca, ffn2) in ((False, (2, 4, 5, 6)), (True, (8, 10, 11, 12))):
        x = _attention(x, f"{p}.layer.{att}", c, w, pe, grid)
        x = _gated_ffn(x, f"{p}.layer.{ffn1}", c)
        x = _channel_attention(x, f"{p}.layer.{ca}", c, w, grid)
        x = _gated_ffn(x, f"{p}.layer.{ffn2}", c)
    return x


def _esa(x, p, c):
    f = max(c // 4, 16)
    c1_ = _conv(f, 1, f"{p}.conv1")(x)
    c1 = keras.layers.Conv2D(f, 3, strides=2, padding="valid", name=f"{p}.conv2")(c1_)
    v = keras.layers.MaxPooling2D(7, strides=3, padding="valid", name=f"{p}.pool")(c1)
    c3 = ResizeLike(name=f"{p}.resize")([_conv(f, 3, f"{p}.conv3")(v), x])
    c4 = _conv(c, 1, f"{p}.conv4", activation="sigmoid")(keras.layers.Add(name=f"{p}.add")([c3, _conv(f, 1, f"{p}.conv_f")(c1_)]))
    return keras.layers.Multiply(name=f"{p}.gate")([x, c4])


def build_omnisr(scale: int = 4, channels: int = 3, num_feat: int = 64, res_num: int = 5, block_num: int = 1,
                 window_size: int = 8, pe: bool = True, bias: bool = True, name=None):  # fmt: skip
    """OmniSR; the published x4 layout (64 features, 5 OSAGs of 1 block, window 8) has 805,376 parameters."""
    inputs = keras.Input(shape=(None, None, channels), name="lr")
    x = PadToMultiple(window_size, "constant", name="pad")(inputs)
    residual = _conv(num_feat, 3, "input", bias)(x)
    out = residual
    for r in range(res_num):
        p = f"residual_layer.{r}"
        y = out
        for b in range(block_num):
            y = _osa_block(y, f"{p}.residual_layer.{b}", num_feat, window_size, pe)
        y = _conv(num_feat, 1, f"{p}.residual_layer.{block_num}", bias)(y)
        out = _esa(keras.layers.Add(name=f"{p}.add")([y, out]), f"{p}.esa", num_feat)
    out = keras.layers.Add(name="skip")([_conv(num_feat, 3, "output", bias)(out), residual])
    out = PixelShuffle(scale, name="shuffle")(_conv(channels * scale * scale, 3, "up.0", bias)(out))
    return keras.Model(inputs, CropToScale(scale, name="crop")([out, inputs]), name=name or f"omnisr_x{scale}")
