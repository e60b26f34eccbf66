"""EDSR (Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution", CVPRW 2017),
following BasicSR's ``edsr_arch.py``.

Mean shift: ``(x - rgb_mean) * img_range`` in, the inverse out. conv_first; ``num_block`` residual
blocks without BN (conv-ReLU-conv, scaled by ``res_scale``: 0.1 in the full model, sec. 3.2);
conv_after_body + long skip; upsampler of conv (4*F) + pixel shuffle x2 per x2 stage (x3: conv 9*F,
shuffle x3); conv_last. Baseline: 64 features, 16 blocks, res_scale 1 (1,517,571 parameters at x4);
full: 256 features, 32 blocks, res_scale 0.1 (43,089,923 at x4). Input and output in [0, 1].

Shuffles are TensorFlow's depth-to-space (DCR); PyTorch weights need the output channels of each
upsampler conv permuted (:func:`srkeras.pretrained.convert.crd_to_dcr`).
"""

from __future__ import annotations

import keras
import numpy as np

from srkeras.models.layers import PixelShuffle, upsample_stages

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def _conv(filters, name):
    return keras.layers.Conv2D(filters, 3, padding="same", name=name)


def _mean_shift(x, mean, img_range, name, inverse=False):
    mean = np.asarray(mean, dtype=np.float32)
    if inverse:  # y / img_range + mean
        return keras.layers.Rescaling(1.0 / img_range, offset=mean, name=name)(x)
    return keras.layers.Rescaling(float(img_range), offset=-mean * img_range, name=name)(x)


def build_edsr(
    scale: int = 4,
    channels: int = 3,
    num_feat: int = 64,
    num_block: int = 16,
    res_scale: float = 1.0,
    img_range: float = 255.0,
    rgb_mean=DIV2K_RGB_MEAN,
    name=None,
):
    """EDSR (Lim et al. 2017): baseline by default; ``num_feat=256, num_block=32, res_scale=0.1`` is full."""
    if len(rgb_mean) != channels:
        raise ValueError(f"edsr rgb_mean needs {channels} values, got {len(rgb_mean)}")
    inputs = keras.Input(shape=(None, None, channels), name="lr")
    x = _mean_shift(inputs, rgb_mean, img_range, "sub_mean")
    x = _conv(num_feat, "conv_first")(x)
    res = x
    for b in range(num_block):
        y = keras.layers.ReLU(name=f"body{b}_relu")(_conv(num_feat, f"body{b}_conv1")(res))
        y = _conv(num_feat, f"body{b}_conv2")(y)
        if res_scale != 1:
            y = keras.layers.Rescaling(res_scale, name=f"body{b}_scale")(y)
        res = keras.layers.Add(name=f"body{b}_add")([res, y])
    res = _conv(num_feat, "conv_after_body")(res)
    x = keras.layers.Add(name="long_skip")([res, x])
    for i, r in enumerate(upsample_stages(scale)):
        x = _conv(num_feat * r * r, f"up{i}_conv")(x)
        x = PixelShuffle(r, name=f"up{i}_shuffle")(x)
    x = _conv(channels, "conv_last")(x)
    outputs = _mean_shift(x, rgb_mean, img_range, "add_mean", inverse=True)
    return keras.Model(inputs, outputs, name=name or f"edsr_x{scale}")
