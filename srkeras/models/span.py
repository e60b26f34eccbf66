"""SPAN (Wan et al., "Swift Parameter-free Attention Network for Efficient Super-Resolution", CVPRW
2024 / NTIRE 2023 ESR; github.com/hongyuanyu/SPAN ``basicsr/archs/span_arch.py``, Apache-2.0), in its
inference form: every ``Conv3XC`` (1x1 -> 3x3 -> 1x1 plus a 1x1 skip while training) is the single
3x3 ``eval_conv`` it collapses to, as the released ncnn files store it.

``x = (lr - mean) * 255``; ``conv_1``; six SPABs, each ``c1 -> SiLU -> c2 -> SiLU -> c3`` and the
parameter-free attention ``(c3 + x) * (sigmoid(c3) - 0.5)`` (paper eq. 5-6); ``conv_2`` on the last
block; a 1x1 ``conv_cat`` on [conv_1, conv_2, block 1, block 6's SiLU(c1)] (the original's in-place
SiLU makes block 6's second output the activated one); a 3x3 conv and a pixel shuffle. The output is
in [0, 1] directly (no mean added back). Receptive field: 21 LR px (21 chained 3x3 convs).
"""

from __future__ import annotations

import keras
import numpy as np

from srkeras.models.layers import PixelShuffle

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def _conv(x, filters, name, kernel=3):
    return keras.layers.Conv2D(filters, kernel, padding="same", name=name)(x)


def _spab(x, feat, name):
    """Swift parameter-free attention block; returns (output, SiLU(c1))."""
    a1 = keras.layers.Activation("silu", name=f"{name}_act1")(_conv(x, feat, f"{name}_c1"))
    a2 = keras.layers.Activation("silu", name=f"{name}_act2")(_conv(a1, feat, f"{name}_c2"))
    c3 = _conv(a2, feat, f"{name}_c3")
    att = keras.layers.Rescaling(1.0, offset=-0.5, name=f"{name}_att")(keras.layers.Activation("sigmoid", name=f"{name}_sigmoid")(c3))
    out = keras.layers.Multiply(name=f"{name}_out")([keras.layers.Add(name=f"{name}_res")([c3, x]), att])
    return out, a1


def build_span(scale: int = 4, feature_channels: int = 48, rgb_mean=DIV2K_RGB_MEAN, img_range: float = 255.0,
               in_channels: int = 3, out_channels: int = 3, norm: bool = True, name=None):  # fmt: skip
    """SPAN (inference form); 426,288 parameters at x4, 410,700 at x2 with 48 channels (spanx{4,2}_ch48).
    ``norm=False``: the checkpoints with a ``no_norm`` buffer, which skip ``(x - mean) * img_range``."""
    inputs = keras.Input(shape=(None, None, in_channels), name="lr")
    x = inputs
    if norm:
        mean = np.asarray(rgb_mean, dtype=np.float32)
        x = keras.layers.Rescaling(float(img_range), offset=-mean * img_range, name="sub_mean")(inputs)
    feat = _conv(x, feature_channels, "conv_1")
    out, b1 = feat, None
    for i in range(1, 7):
        out, a1 = _spab(out, feature_channels, f"block_{i}")
        b1 = out if i == 1 else b1
    b6 = _conv(out, feature_channels, "conv_2")
    cat = keras.layers.Concatenate(name="cat")([feat, b6, b1, a1])
    y = _conv(cat, feature_channels, "conv_cat", kernel=1)
    y = _conv(y, out_channels * scale * scale, "upsampler")
    outputs = PixelShuffle(scale, name="shuffle")(y)
    return keras.Model(inputs, outputs, name=name or f"span_x{scale}")
