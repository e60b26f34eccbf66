"""Load waifu2x ncnn models (waifu2x-ncnn-vulkan's ``models-upconv_7_*`` and ``models-cunet``) into
:mod:`srkeras.models.waifu2x`: the weighted layers (Convolution, Deconvolution, InnerProduct) in
``.param`` order are the Keras layers below, in graph order.

Layouts: a Convolution is OIHW (-> HWIO); a Deconvolution ``[out][in][kh][kw]`` scatters
``in[i, j] * w`` to ``out[s*i + ky, s*j + kx]`` like Keras' Conv2DTranspose, whose kernel is
``(kh, kw, out, in)``; an SE InnerProduct ``(out, in)`` is a 1x1 conv.
"""

from __future__ import annotations

import numpy as np

from srkeras.pretrained.convert import assign, conv_arrays
from srkeras.pretrained.errors import ShapeMismatchError
from srkeras.pretrained.ncnn import WEIGHTED

UPCONV7_LAYERS = [f"conv{i}" for i in range(1, 8)]


def _se(prefix):
    return [f"{prefix}_fc1", f"{prefix}_fc2"]


CUNET_LAYERS = [
    "u1_conv1a", "u1_conv1b", "u1_down1", "u1_conv2a", "u1_conv2b", *_se("u1_se2"), "u1_up2", "u1_conv3", "u1_bottom",
    "u2_conv1a", "u2_conv1b", "u2_down1", "u2_conv2a", "u2_conv2b", *_se("u2_se2"), "u2_down2", "u2_conv3a",
    "u2_conv3b", *_se("u2_se3"), "u2_up3", "u2_conv4a", "u2_conv4b", *_se("u2_se4"), "u2_up4", "u2_conv5", "u2_bottom",
]  # fmt: skip


def _arrays(layer):
    w, b = layer.weights
    if layer.type == "Deconvolution":
        return [np.ascontiguousarray(np.transpose(w, (2, 3, 0, 1))), b]
    return conv_arrays(w.reshape(*w.shape[:2], *w.shape[2:] or (1, 1)), b)  # an SE InnerProduct: a 1x1 conv


def load(model, layers, arch: str, source: str) -> None:
    """Assign the ncnn ``layers`` (:func:`srkeras.pretrained.ncnn.read_model`) to a waifu2x ``arch`` model."""
    names = UPCONV7_LAYERS if arch == "waifu2x_upconv7" else CUNET_LAYERS
    weighted = [layer for layer in layers if layer.type in WEIGHTED]
    if len(weighted) != len(names):
        raise ShapeMismatchError(f"{source}: {len(weighted)} weighted layers, {arch} has {len(names)}")
    for name, layer in zip(names, weighted):
        keras_type = type(model.get_layer(name)).__name__
        if (layer.type == "Deconvolution") != (keras_type == "Conv2DTranspose"):
            raise ShapeMismatchError(f"{source}: {layer.name} is a {layer.type}, {arch} layer {name} a {keras_type}")
        if len(layer.weights) != 2:
            raise ShapeMismatchError(f"{source}: {layer.name} has no bias; {arch} layer {name} needs one")
        assign(model, name, _arrays(layer), source, layer.name)
