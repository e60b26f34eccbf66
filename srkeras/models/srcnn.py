"""SRCNN (Dong et al., "Image Super-Resolution Using Deep Convolutional Networks", ECCV 2014 / TPAMI 2016).

Three convolutions f1-f2-f3 with n1=64, n2=32 filters (eqs. 1-3): patch extraction (9x9, ReLU),
non-linear mapping (1x1 in 9-1-5, 5x5 in 9-5-5, ReLU), reconstruction (5x5, linear). The network
works on the bicubic-upsampled LR image; here that upsampling is the first layer
(:class:`~srkeras.models.layers.BicubicUpsample`, MATLAB-exact), so the model maps LR -> HR like
every other generator.

Padding: the paper trains with 'valid' convolutions (a 33x33 input gives a 21x21 output, sec. 4.1)
and evaluates on the shaved image. We use 'same' (zero) padding so the output has exactly
``scale`` times the LR size and the model fits the common evaluate/infer path; only the outer
6 HR pixels (9-1-5) or 8 (9-5-5) see zero padding. The same 'same' choice is made in most Keras and
PyTorch ports. Input and output are in [0, 1] (the paper's ``im2double`` range), no normalisation.

Channels: ``channels=1`` is the paper's Y-only model (8,129 parameters for 9-1-5), ``channels=3`` the
RGB variant of sec. 4.4.
"""

from __future__ import annotations

import keras

from srkeras.models.layers import BicubicUpsample

VARIANTS = {"915": 1, "955": 5}  # variant -> f2 (mapping-layer kernel size)


def build_srcnn(scale: int = 3, channels: int = 1, variant: str = "915", n1: int = 64, n2: int = 32, name=None):
    """SRCNN ``9-f2-5``: bicubic upsample, conv9 (n1, ReLU), conv f2 (n2, ReLU), conv5 (channels)."""
    variant = str(variant).replace("-", "")
    if variant not in VARIANTS:
        raise ValueError(f"unknown SRCNN variant {variant!r}; choose from {sorted(VARIANTS)}")
    f2 = VARIANTS[variant]
    colour = "y" if channels == 1 else "rgb"
    inputs = keras.Input(shape=(None, None, channels), name="lr")
    x = BicubicUpsample(scale, name="bicubic")(inputs)
    x = keras.layers.Conv2D(n1, 9, padding="same", activation="relu", name="patch_extraction")(x)
    x = keras.layers.Conv2D(n2, f2, padding="same", activation="relu", name="nonlinear_mapping")(x)
    outputs = keras.layers.Conv2D(channels, 5, padding="same", name="reconstruction")(x)
    return keras.Model(inputs, outputs, name=name or f"srcnn_{variant}_{colour}_x{scale}")


def build_srcnn_955(scale: int = 3, channels: int = 1, n1: int = 64, n2: int = 32, name=None):
    """SRCNN 9-5-5, the paper's best configuration (Dong et al. 2016, sec. 4.3.2)."""
    return build_srcnn(scale, channels=channels, variant="955", n1=n1, n2=n2, name=name)
