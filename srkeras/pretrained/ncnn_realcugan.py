"""ncnn models beyond plain convolutions: Real-CUGAN (Convolution, Deconvolution, InnerProduct) and
the Real-ESRGAN / RealSR models of the other sr-vulkan packages.

The ``.bin`` stores, in ``.param`` order, every weighted layer's weights: Convolution,
Deconvolution and InnerProduct a 4-byte tag (0x01306B47: fp16 follows, padded to 4 bytes; 0: fp32)
and ``6=`` / ``2=`` (weight_data_size) values, then ``0=`` fp32 biases when ``5=1`` / ``1=1``;
PReLU ``0=`` fp32 slopes. Layouts: Convolution (out, in, kh, kw); Deconvolution (out, in, kh, kw)
(PyTorch's ``ConvTranspose2d`` weight (in, out, kh, kw) transposed, not flipped); InnerProduct (out, in).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from srkeras.pretrained.convert import assign, conv_arrays
from srkeras.pretrained.errors import ShapeMismatchError
from srkeras.pretrained.ncnn import NcnnLayer, parse_param

FP16_TAG = 0x01306B47
# layer type -> (param key of the weight count, param key of the bias flag, kernel size key or None)
_WEIGHTS = {"Convolution": (6, 5, 1), "Deconvolution": (6, 5, 1), "InnerProduct": (2, 1, None)}


def _take(buf, pos, n, dtype, src, what):
    size = n * np.dtype(dtype).itemsize
    if pos + size > len(buf):
        raise ShapeMismatchError(f"{src}: .bin ends inside {what} (truncated, or .param/.bin mismatch)")
    return np.frombuffer(buf[pos : pos + size], dtype=dtype).astype(np.float32), pos + size


def _tagged(buf, pos, n, src, what):
    if pos + 4 > len(buf):
        raise ShapeMismatchError(f"{src}: .bin ends before {what}")
    tag = int.from_bytes(buf[pos : pos + 4], "little")
    pos += 4
    if tag == FP16_TAG:
        w, pos = _take(buf, pos, n, "<f2", src, what)
        return w, pos + (-n * 2) % 4
    if tag == 0:
        return _take(buf, pos, n, "<f4", src, what)
    raise ShapeMismatchError(f"{src}: {what} has unsupported weight tag {tag:#x} (int8?)")


def read_model(param_path, bin_path) -> list[NcnnLayer]:
    """The layers with their weights as float32: [weight (out, in, kh, kw) or (out, in), bias?]."""
    layers = parse_param(Path(param_path).read_text(), str(param_path))
    buf = memoryview(Path(bin_path).read_bytes())
    pos, src = 0, str(bin_path)
    for layer in layers:
        p = layer.params
        if layer.type in _WEIGHTS:
            count_key, bias_key, k_key = _WEIGHTS[layer.type]
            out_ch, count = int(p[0]), int(p[count_key])
            w, pos = _tagged(buf, pos, count, src, layer.name)
            k = int(p.get(k_key, 1)) if k_key is not None else 1
            if count % (out_ch * k * k):
                raise ShapeMismatchError(f"{src}: {layer.name} has {count} weights, not a multiple of {out_ch}x{k}x{k}")
            shape = (out_ch, count // (out_ch * k * k), k, k) if k_key is not None else (out_ch, count // out_ch)
            layer.weights = [w.reshape(shape)]
            if int(p.get(bias_key, 0)):
                b, pos = _take(buf, pos, out_ch, "<f4", src, f"{layer.name} bias")
                layer.weights.append(b)
        elif layer.type == "PReLU":
            s, pos = _take(buf, pos, int(p.get(0, 1)), "<f4", src, layer.name)
            layer.weights = [s]
    if pos != len(buf):
        raise ShapeMismatchError(f"{src}: {len(buf) - pos} bytes left after the last layer (.param/.bin mismatch)")
    return layers


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
    weighted = [layer for layer in layers if layer.type in _WEIGHTS]
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
