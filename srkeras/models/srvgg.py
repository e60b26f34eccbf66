"""SRVGGNetCompact of Real-ESRGAN (Wang et al., "Real-ESRGAN: Training Real-World Blind
Super-Resolution with Pure Synthetic Data", ICCVW 2021; ``realesrgan/archs/srvgg_arch.py``).

A plain VGG-style stack on the LR grid: conv 3x3 + activation, ``num_conv`` x (conv 3x3 +
activation), a conv to ``channels * s^2`` and a pixel shuffle, plus the nearest-upsampled input as a
global residual. The activation is PReLU with one slope per channel (PyTorch ``nn.PReLU(num_feat)``),
ReLU or LeakyReLU(0.1). realesr-animevideov3 is ``num_conv=16``, realesr-general-x4v3 ``num_conv=32``
(both 64 features, PReLU). Input and output in [0, 1]. ``net_scale``: the network upscales by
``net_scale`` and an ncnn bicubic resize (:class:`~srkeras.models.ncnn_resize.NcnnBicubicResize`)
brings it to ``scale``: realesr-animevideov3 x2 / x3 are its x4 network resized by 1/2 / 3/4.

The shuffle here is TensorFlow's depth-to-space (DCR); weights from PyTorch / ncnn (CRD) need the
last conv's output channels permuted (:func:`srkeras.pretrained.convert.crd_to_dcr`).
"""

from __future__ import annotations

import keras

from srkeras.models.layers import PixelShuffle
from srkeras.models.ncnn_resize import NcnnBicubicResize


def _act(kind, name):
    if kind == "prelu":
        return keras.layers.PReLU(shared_axes=[1, 2], name=name)
    if kind == "relu":
        return keras.layers.ReLU(name=name)
    if kind == "lrelu":
        return keras.layers.LeakyReLU(0.1, name=name)
    raise ValueError(f"srvgg_compact act_type must be 'prelu', 'relu' or 'lrelu', got {kind!r}")


def build_srvgg_compact(
    scale: int = 4,
    channels: int = 3,
    num_feat: int = 64,
    num_conv: int = 16,
    act_type: str = "prelu",
    net_scale: int | None = None,
    name=None,
):
    """SRVGGNetCompact (Real-ESRGAN); 621,424 parameters at x4 with the defaults (animevideov3)."""
    out_scale, scale = scale, net_scale or scale
    inputs = keras.Input(shape=(None, None, channels), name="lr")
    x = keras.layers.Conv2D(num_feat, 3, padding="same", name="conv0")(inputs)
    x = _act(act_type, "act0")(x)
    for i in range(1, num_conv + 1):
        x = keras.layers.Conv2D(num_feat, 3, padding="same", name=f"conv{i}")(x)
        x = _act(act_type, f"act{i}")(x)
    x = keras.layers.Conv2D(channels * scale * scale, 3, padding="same", name=f"conv{num_conv + 1}")(x)
    x = PixelShuffle(scale, name="shuffle")(x)
    base = keras.layers.UpSampling2D(scale, interpolation="nearest", name="base")(inputs)
    outputs = keras.layers.Add(name="residual")([x, base])
    if out_scale != scale:
        outputs = NcnnBicubicResize(out_scale, scale, name="resize")(outputs)
    return keras.Model(inputs, outputs, name=name or f"srvgg_compact_x{out_scale}")
