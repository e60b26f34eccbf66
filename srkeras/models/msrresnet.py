"""MSRResNet, the "modified SRResNet" of BasicSR (Wang et al., BasicSR / ESRGAN code, 2018;
XPixelGroup/BasicSR ``basicsr/archs/srresnet_arch.py``, Apache-2.0): exact to its forward pass.

SRResNet (Ledig et al. 2017) without batch normalisation, like EDSR: conv_first + LeakyReLU(0.1);
``num_block`` residual blocks [conv3 - ReLU - conv3, + identity]; no long skip; upsampling
[conv3 (4F or 9F) - pixel shuffle - LeakyReLU(0.1)] once for x2/x3, twice (x2 each) for x4;
conv_hr + LeakyReLU(0.1); conv_last; plus the input upsampled bilinearly (PyTorch's
``F.interpolate(mode="bilinear", align_corners=False)``: half-pixel centres, edge pixels clamped;
:class:`~srkeras.models.layers.BilinearUpsample`). 3x3 convs throughout; 64 features and
16 blocks by default (1,517,571 parameters at x4).

It is not :mod:`srkeras.models.srgan`'s SRResNet, which is Ledig's network as published (9x9 end
convs, BN, PReLU, a long skip, no interpolated residual): the two share no layer, so MSRResNet has
its own module rather than a flag there. Layers are named after BasicSR's state-dict prefixes
(``conv_first``, ``body.N.conv1``, ``upconv1``...), so its checkpoints map by name. Shuffles are
depth-to-space (DCR); PyTorch weights of ``upconv*`` need their output channels permuted
(:func:`srkeras.pretrained.convert.crd_to_dcr`). Input and output in [0, 1] (the output is not clipped).
"""

from __future__ import annotations

import keras

from srkeras.models.layers import BilinearUpsample, PixelShuffle, upsample_stages


def _conv(filters, name):
    return keras.layers.Conv2D(filters, 3, padding="same", name=name)


def _lrelu(name):
    return keras.layers.LeakyReLU(0.1, name=name)


def build_msrresnet(scale: int = 4, num_feat: int = 64, num_block: int = 16, channels: int = 3, name=None):
    """MSRResNet for x2, x3 or x4 (BasicSR's scales); ``num_feat`` / ``num_block`` shrink it for tests."""
    if scale not in (2, 3, 4):
        raise ValueError(f"msrresnet supports scales 2, 3 and 4 (BasicSR), got {scale}")
    inputs = keras.Input(shape=(None, None, channels), name="lr")
    x = _lrelu("conv_first_lrelu")(_conv(num_feat, "conv_first")(inputs))
    for b in range(num_block):
        y = keras.layers.ReLU(name=f"body.{b}.relu")(_conv(num_feat, f"body.{b}.conv1")(x))
        y = _conv(num_feat, f"body.{b}.conv2")(y)
        x = keras.layers.Add(name=f"body.{b}.add")([x, y])
    for i, r in enumerate(upsample_stages(scale), start=1):
        x = _conv(num_feat * r * r, f"upconv{i}")(x)
        x = _lrelu(f"upconv{i}_lrelu")(PixelShuffle(r, name=f"upconv{i}_shuffle")(x))
    x = _conv(channels, "conv_last")(_lrelu("conv_hr_lrelu")(_conv(num_feat, "conv_hr")(x)))
    base = BilinearUpsample(scale, name="base")(inputs)
    outputs = keras.layers.Add(name="add_base")([x, base])
    return keras.Model(inputs, outputs, name=name or f"msrresnet_x{scale}")
