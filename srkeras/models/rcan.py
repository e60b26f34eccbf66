"""RCAN (Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention Networks",
ECCV 2018; yulunzhang/RCAN, as copied in spandrel 0.4.2 with its pixel-unshuffle head): exact to the
original forward pass.

Residual in residual (sec. 3.2): head conv; ``n_resgroups`` residual groups, each ``n_resblocks``
RCABs + a conv + a short skip; a conv + the long skip; upsampler (conv 4F + pixel shuffle x2 per x2
stage, or conv 9F + shuffle x3; 3x3 convs whatever ``kernel_size``); tail conv. An RCAB (sec. 3.4,
eq. 9): conv - ReLU - conv, then channel attention (sec. 3.3, eq. 5-8: global average pooling,
1x1 conv to F/``reduction``, ReLU, 1x1 conv to F, sigmoid, channel-wise gate), + identity (the
authors' code does not scale the residual). The gate's pooling spans the whole image: tiles of an
image do not reproduce its untiled output.

Ranges and mean shift: the original works on pixels in [0, ``rgb_range``] (255 for the published
models), subtracting ``rgb_range`` x the DIV2K mean with a fixed 1x1 conv (``sub_mean``) and adding it
back (``add_mean``). Here the input in [0, 1] is multiplied by ``rgb_range`` and the output divided by
it, as spandrel does; ``norm=False`` (spandrel's checkpoints without MeanShift) drops both and works on
[0, 1]. ``unshuffle=True`` (x1 / x2, spandrel's ``unshuffle_mod``): the input is reflect-padded at the
bottom/right to a multiple of 4/s, pixel-unshuffled by 4/s before the head conv, upsampled x4 and
cropped back to s times the input size.

Layers are named after the PyTorch state-dict prefixes (``head.0``, ``body.G.body.B.body.3.conv_du.0``,
``tail.0.0``, ``sub_mean``...), so checkpoints map by name; residual group G is a nested model
``body.G`` holding its layers. Shuffles are depth-to-space (DCR);
PyTorch weights of the upsampler convs need their output channels permuted
(:func:`srkeras.pretrained.convert.crd_to_dcr`). NHWC; the output is not clipped.
"""

from __future__ import annotations

import keras
import numpy as np

from srkeras.models.esrgan import PixelUnshuffle
from srkeras.models.layers import PixelShuffle, upsample_stages
from srkeras.models.sizing import CropToScale, PadToMultiple

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)  # the original's rgb_mean; rgb_std is (1, 1, 1)


def _conv(filters, k, name):
    return keras.layers.Conv2D(filters, k, padding="same", name=name)


def _mean_shift(sign: float, rgb_range: float, name: str):
    """The original's ``MeanShift``: a fixed 1x1 conv, identity kernel, bias ``sign * rgb_range * mean``."""
    bias = sign * rgb_range * np.asarray(DIV2K_RGB_MEAN, np.float32)
    return keras.layers.Conv2D(3, 1, name=name, trainable=False,
                               kernel_initializer=keras.initializers.Constant(np.eye(3, dtype=np.float32)[None, None]),
                               bias_initializer=keras.initializers.Constant(bias))  # fmt: skip


def _rcab(x, n_feats, k, reduction, p):
    """Residual channel attention block (eq. 9) with the channel attention of eq. 5-8."""
    y = keras.layers.ReLU(name=f"{p}.body.1")(_conv(n_feats, k, f"{p}.body.0")(x))
    y = _conv(n_feats, k, f"{p}.body.2")(y)
    ca = f"{p}.body.3"
    g = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{ca}.avg_pool")(y)
    g = keras.layers.Conv2D(n_feats // reduction, 1, activation="relu", name=f"{ca}.conv_du.0")(g)
    g = keras.layers.Conv2D(n_feats, 1, activation="sigmoid", name=f"{ca}.conv_du.2")(g)
    y = keras.layers.Multiply(name=f"{ca}.gate")([y, g])
    return keras.layers.Add(name=f"{p}.add")([y, x])


def _residual_group(n_feats, k, reduction, n_resblocks, p):
    """A residual group (sec. 3.2): RCABs, a conv, the short skip. A nested model, so the graph
    Keras walks recursively stays shallow (the paper's 10 x 20 RCABs are 1,600 layers deep)."""
    inputs = keras.Input(shape=(None, None, n_feats), name=f"{p}.input")
    y = inputs
    for b in range(n_resblocks):
        y = _rcab(y, n_feats, k, reduction, f"{p}.body.{b}")
    y = _conv(n_feats, k, f"{p}.body.{n_resblocks}")(y)
    return keras.Model(inputs, keras.layers.Add(name=f"{p}.add")([y, inputs]), name=p)


def build_rcan(
    scale: int = 4,
    n_resgroups: int = 10,
    n_resblocks: int = 20,
    n_feats: int = 64,
    reduction: int = 16,
    kernel_size: int = 3,
    rgb_range: float = 255.0,
    norm: bool = True,
    unshuffle: bool = False,
    name=None,
):
    """RCAN (Zhang et al. 2018); defaults are the paper's (10 groups of 20 RCABs, 64 features,
    reduction 16: 15,592,355 trainable parameters at x4, plus the mean shifts' 24). ``unshuffle``: spandrel's x1/x2 variant (module doc)."""
    if n_feats % reduction:
        raise ValueError(f"rcan n_feats {n_feats} is not a multiple of reduction {reduction}")
    if unshuffle and scale not in (1, 2):
        raise ValueError(f"rcan unshuffle applies to scales 1 and 2 (spandrel), got {scale}")
    inputs = keras.Input(shape=(None, None, 3), name="lr")
    x, k, head = inputs, int(kernel_size), "head.0"
    if unshuffle:
        x = PadToMultiple(4 // scale, mode="reflect", name="pad")(x)
    if norm:
        x = keras.layers.Rescaling(float(rgb_range), name="to_rgb_range")(x)
        x = _mean_shift(-1.0, rgb_range, "sub_mean")(x)
    if unshuffle:
        x, head = PixelUnshuffle(4 // scale, name="head.0")(x), "head.1"
    x = feat = _conv(n_feats, k, head)(x)
    for g in range(n_resgroups):
        x = _residual_group(n_feats, k, reduction, n_resblocks, f"body.{g}")(x)
    x = _conv(n_feats, k, f"body.{n_resgroups}")(x)
    x = keras.layers.Add(name="body.add")([x, feat])
    for i, r in enumerate([2, 2] if unshuffle else upsample_stages(scale)):
        x = _conv(n_feats * r * r, 3, f"tail.0.{2 * i}")(x)
        x = PixelShuffle(r, name=f"tail.0.{2 * i + 1}")(x)
    x = _conv(3, k, "tail.1")(x)
    if norm:
        x = _mean_shift(1.0, rgb_range, "add_mean")(x)
        x = keras.layers.Rescaling(1.0 / float(rgb_range), name="from_rgb_range")(x)
    if unshuffle:
        x = CropToScale(scale, name="crop")([x, inputs])
    return keras.Model(inputs, x, name=name or f"rcan_x{scale}")
