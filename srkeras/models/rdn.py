"""RDN and RRDN generators of idealo's ISR (image-super-resolution), the architectures behind the
UpscalerJS ``esrgan-slim`` / ``esrgan-medium`` (RDN) and ``esrgan-thick`` (RRDN) models.

RDN (Zhang et al., "Residual Dense Network for Image Super-Resolution", CVPR 2018), as ISR builds it:
shallow features F_-1, F_0 (3x3, G0); ``D`` residual dense blocks of ``C`` 3x3 convs (growth ``G``,
ReLU, dense concatenation), local feature fusion (1x1, G0) and local residual; global feature fusion
(1x1 then 3x3 on the concatenated block outputs) plus the global residual F_-1; ISR's ``'ups'``
upscaling head: 5x5 (64) ReLU, 3x3 (32) ReLU, 3x3 (3*s^2), nearest x s, and a final 3x3 conv.

RRDN (ISR's take on ESRGAN's RRDB trunk, Wang et al. 2018): ``T`` RRDBs, each ``D`` dense blocks of
``C`` convs with a 3x3 LFF, block and RRDB outputs scaled by beta = 0.2; post-blocks conv + global
residual; a 3x3 conv to 3*s^2 channels, depth-to-space (TensorFlow DCR order, our PixelShuffle) and a
3x3 conv. Layer names are ISR's, so TF.js/Keras weights load by name.

``pixel_range`` wraps the network in Rescaling layers: the UpscalerJS RDN models work on [0, 255]
pixels, so they are built with ``pixel_range=255`` and still take and return [0, 1] images here.
"""

from __future__ import annotations

import keras

from srkeras.models.layers import PixelShuffle


def _conv(filters, name, kernel_size=3, padding="same"):
    return keras.layers.Conv2D(filters, kernel_size, padding=padding, name=name)


def _wrap_in(inputs, pixel_range):
    return inputs if pixel_range == 1 else keras.layers.Rescaling(float(pixel_range), name="to_pixel_range")(inputs)


def _wrap_out(x, pixel_range):
    return x if pixel_range == 1 else keras.layers.Rescaling(1.0 / pixel_range, name="from_pixel_range")(x)


def _dense_convs(x, prefix, concat_prefix, C, G):
    """C densely connected 3x3 convs with ReLU; returns the running concatenation (ISR RDBs)."""
    for c in range(1, C + 1):
        f = _conv(G, f"F_{prefix}_{c}")(x)
        f = keras.layers.Activation("relu", name=f"F_{prefix}_{c}_Relu")(f)
        x = keras.layers.Concatenate(axis=3, name=f"RDB_Concat_{concat_prefix}_{c}")([x, f])
    return x


def build_rdn(
    scale: int = 2,
    channels: int = 3,
    C: int = 3,
    D: int = 10,
    G: int = 64,
    G0: int = 64,
    kernel_size: int = 3,
    pixel_range: float = 1.0,
    name=None,
):
    """RDN (Zhang et al. 2018) exactly as idealo ISR builds it (``upscaling='ups'``)."""
    inputs = keras.Input(shape=(None, None, channels), name="LR")
    x = _wrap_in(inputs, pixel_range)
    f_m1 = _conv(G0, "F_m1", kernel_size)(x)
    x = _conv(G0, "F_0", kernel_size)(f_m1)
    lrls = []
    for d in range(1, D + 1):
        y = _dense_convs(x, d, d, C, G)
        y = _conv(G0, f"LFF_{d}", 1, padding="valid")(y)
        x = keras.layers.Add(name=f"LRL_{d}")([y, x])
        lrls.append(x)
    x = keras.layers.Concatenate(axis=3, name="LRLs_Concat")(lrls) if D > 1 else lrls[0]
    x = _conv(G0, "GFF_1", 1)(x)
    x = _conv(G0, "GFF_2", kernel_size)(x)
    x = keras.layers.Add(name="FDF")([x, f_m1])
    x = keras.layers.Activation("relu", name="UPN1_Relu")(_conv(64, "UPN1", 5)(x))
    x = keras.layers.Activation("relu", name="UPN2_Relu")(_conv(32, "UPN2", 3)(x))
    x = _conv(channels * scale * scale, "UPN3", 3)(x)
    x = keras.layers.UpSampling2D(scale, interpolation="nearest", name="UPsample")(x)
    x = _conv(channels, "SR", kernel_size)(x)
    return keras.Model(inputs, _wrap_out(x, pixel_range), name=name or f"rdn_x{scale}")


def build_rrdn(
    scale: int = 4,
    channels: int = 3,
    C: int = 4,
    D: int = 3,
    G: int = 32,
    G0: int = 64,
    T: int = 10,
    beta: float = 0.2,
    kernel_size: int = 3,
    pixel_range: float = 1.0,
    name=None,
):
    """RRDN of idealo ISR (ESRGAN-style RRDB trunk, ReLU, pixel-shuffle head); C4 D3 G32 T10 is 'thick'."""
    inputs = keras.Input(shape=(None, None, channels), name="LR_input")
    x = _wrap_in(inputs, pixel_range)
    pre = _conv(G0, "Pre_blocks_conv", kernel_size)(x)
    x = pre
    n_beta = 0
    for t in range(1, T + 1):
        block_in = x
        for d in range(1, D + 1):
            y = _dense_convs(x, f"{t}_{d}", f"{t}_{d}", C, G)
            y = _conv(G0, f"LFF_{t}_{d}", kernel_size)(y)
            y = keras.layers.Rescaling(beta, name=f"multiply_beta_{n_beta}")(y)
            n_beta += 1
            x = keras.layers.Add(name=f"LRL_{t}_{d}")([x, y])
        y = keras.layers.Rescaling(beta, name=f"multiply_beta_{n_beta}")(x)
        n_beta += 1
        x = keras.layers.Add(name=f"RRDB_{t}_out")([block_in, y])
    x = _conv(G0, "post_blocks_conv", kernel_size)(x)
    x = keras.layers.Add(name="GRL")([x, pre])
    x = _conv(channels * scale * scale, "PreShuffle", kernel_size)(x)
    x = PixelShuffle(scale, name="pixel_shuffle")(x)
    x = _conv(channels, "SR", kernel_size)(x)
    return keras.Model(inputs, _wrap_out(x, pixel_range), name=name or f"rrdn_x{scale}")
