"""Real-CUGAN from ncnn (Convolution, Deconvolution, InnerProduct), read by
:func:`srkeras.pretrained.ncnn.read_model`.

The ``.bin`` stores, in ``.param`` order, every weighted layer's weights: Convolution,
Deconvolution and InnerProduct a 4-byte tag (0x01306B47: fp16 follows, padded to 4 bytes; 0: fp32)
and ``6=`` / ``2=`` (weight_data_size) values, then ``0=`` fp32 biases when ``5=1`` / ``1=1``;
PReLU ``0=`` fp32 slopes. Layouts: Convolution (out, in, kh, kw); Deconvolution (out, in, kh, kw)
(PyTorch's ``ConvTranspose2d`` weight (in, out, kh, kw) transposed, not flipped); InnerProduct (out, in).
"""

from __future__ import annotations

import numpy as np

from srkeras.pretrained.convert import assign, conv_arrays
from srkeras.pretrained.errors import ShapeMismatchError
from srkeras.pretrained.ncnn import WEIGHTED, NcnnLayer, read_model


def _keras_arrays(layer: NcnnLayer, shuffle: int = 0) -> list:
    w, b = layer.weights
    if layer.type == "Convolution":
        return conv_arrays(w, b, shuffle=shuffle)
    if layer.type == "Deconvolution":  # (out, in, kh, kw) -> Keras Conv2DTranspose (kh, kw, out, in)
        return [np.ascontiguousarray(w.transpose(2, 3, 0, 1)), b]
    return [np.ascontiguousarray(w.T), b]  # InnerProduct -> Dense (in, out)


def load_into_realcugan(model, layers, scale: int, source: str) -> None:
    """Real-CUGAN: the weighted ncnn layers in .param order are the model's (``weighted_layer_names``)."""
    from srkeras.models.realcugan import weighted_layer_names

    names = weighted_layer_names(scale)
    weighted = [layer for layer in layers if layer.type in WEIGHTED]
    if len(weighted) != len(names):
        raise ShapeMismatchError(f"{source}: {len(weighted)} weighted layers, Real-CUGAN x{scale} has {len(names)}")
    for name, layer in zip(names, weighted):
        kind = type(model.get_layer(name)).__name__
        want = {"Conv2D": "Convolution", "Conv2DTranspose": "Deconvolution", "Dense": "InnerProduct"}[kind]
        if layer.type != want:
            raise ShapeMismatchError(f"{source}: layer {layer.name} is a {layer.type}, {name} needs a {want}")
        if len(layer.weights) != 2:
            raise ShapeMismatchError(f"{source}: {layer.name} has no bias, {name} needs one")
        assign(model, name, _keras_arrays(layer, shuffle=2 if name == "final" else 0), source, layer.name)


__all__ = ["load_into_realcugan", "read_model"]
