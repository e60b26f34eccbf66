"""Load SRMD / SRMDNF ncnn models (srmd-ncnn-vulkan's ``models-srmd``) into :func:`srkeras.models.srmd.build_srmd`:
12 Convolutions ``conv0..conv11`` in ``.param`` order; the last feeds a CRD PixelShuffle, so its
output channels are reordered for depth-to-space (:func:`srkeras.pretrained.convert.crd_to_dcr`).
The first conv's input channels tell SRMD (RGB + 15 kernel-PCA + noise = 19) from SRMDNF (18)."""

from __future__ import annotations

from srkeras.pretrained.convert import assign, conv_arrays
from srkeras.pretrained.errors import ShapeMismatchError


def load(model, layers, scale: int, source: str) -> None:
    convs = [layer for layer in layers if layer.type == "Convolution"]
    n = len([layer for layer in model.layers if layer.name.startswith("conv")])
    if len(convs) != n:
        raise ShapeMismatchError(f"{source}: {len(convs)} convolutions, the SRMD model has {n}")
    for i, conv in enumerate(convs):
        assign(model, f"conv{i}", conv_arrays(*conv.weights, shuffle=scale if i == n - 1 else 0), source, conv.name)
