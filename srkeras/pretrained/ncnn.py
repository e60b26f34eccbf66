"""Read ncnn ``.param`` / ``.bin`` models (fp16 weights) and load them into srkeras models.

``.param``: magic 7767517, layer/blob counts, then one line per layer (type, name, #in, #out,
blobs, ``k=v`` params). ``.bin``: the weights of every weighted layer in param order; a Convolution
stores a 4-byte tag (0x01306B47: fp16 follows, 0: fp32) and ``6=`` (weight_data_size) values in
OIHW order (fp16 padded to 4 bytes), then ``0=`` fp32 biases when ``5=1``; a PReLU stores ``0=``
fp32 slopes. A Deconvolution stores its weights like a Convolution (``[out][in][kh][kw]``, unflipped);
an InnerProduct (``0=`` outputs, ``1=`` bias, ``2=`` weight_data_size) too, read as ``(out, in)``; a
MemoryData its ``w*h*c`` constants as raw fp32. Layers without weights (Split, Concat, Eltwise, Interp,
PixelShuffle...) take no bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from srkeras.pretrained.convert import assign, conv_arrays, rrdbnet_conv_names
from srkeras.pretrained.errors import ShapeMismatchError

FP16_TAG = 0x01306B47
# layer type -> (param key of the weight count, param key of the bias flag, param key of the kernel size)
_WEIGHTS = {"Convolution": (6, 5, 1), "Deconvolution": (6, 5, 1), "InnerProduct": (2, 1, None)}
WEIGHTED = tuple(_WEIGHTS)


@dataclass
class NcnnLayer:
    type: str
    name: str
    params: dict = field(default_factory=dict)
    weights: list = field(default_factory=list)  # numpy arrays, PyTorch layouts


def parse_param(text: str, source: str) -> list[NcnnLayer]:
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != ["7767517"]:
        raise ShapeMismatchError(f"{source}: not an ncnn .param file (magic 7767517 missing)")
    layers = []
    for parts in lines[2:]:
        n_in, n_out = int(parts[2]), int(parts[3])
        params = {}
        for kv in parts[4 + n_in + n_out :]:
            k, v = kv.split("=", 1)
            params[int(k)] = v
        layers.append(NcnnLayer(parts[0], parts[1], params))
    return layers


def _read(buf: memoryview, pos: int, n: int, dtype, source: str, what: str):
    size = n * np.dtype(dtype).itemsize
    if pos + size > len(buf):
        raise ShapeMismatchError(f"{source}: .bin ends inside {what} (truncated, or .param/.bin mismatch)")
    return np.frombuffer(buf[pos : pos + size], dtype=dtype).astype(np.float32), pos + size


def _tagged(buf: memoryview, pos: int, n: int, source: str, what: str):
    """``n`` weights after their 4-byte storage tag (fp16, padded to 4 bytes, or fp32)."""
    if pos + 4 > len(buf):
        raise ShapeMismatchError(f"{source}: .bin ends before {what}")
    tag = int.from_bytes(buf[pos : pos + 4], "little")
    if tag == FP16_TAG:
        w, pos = _read(buf, pos + 4, n, "<f2", source, what)
        return w, pos + (-n * 2) % 4
    if tag == 0:
        return _read(buf, pos + 4, n, "<f4", source, what)
    raise ShapeMismatchError(f"{source}: {what} has unsupported weight tag {tag:#x} (int8?)")


def _weighted(layer: NcnnLayer, buf: memoryview, pos: int, src: str) -> int:
    """Decode a Convolution / Deconvolution (out, in, kh, kw) or InnerProduct (out, in) and its bias."""
    count_key, bias_key, k_key = _WEIGHTS[layer.type]
    p = layer.params
    out_ch, count = int(p[0]), int(p[count_key])
    w, pos = _tagged(buf, pos, count, src, layer.name)
    k = int(p.get(k_key, 1)) if k_key is not None else 1
    if count % (out_ch * k * k):
        raise ShapeMismatchError(f"{src}: {layer.name} has {count} weights, not a multiple of {out_ch}x{k}x{k}")
    shape = (out_ch, count // (out_ch * k * k), k, k) if k_key is not None else (out_ch, count // out_ch)
    layer.weights = [w.reshape(shape)]
    if int(p.get(bias_key, 0)):
        b, pos = _read(buf, pos, out_ch, "<f4", src, f"{layer.name} bias")
        layer.weights.append(b)
    return pos


def read_model(param_path, bin_path) -> list[NcnnLayer]:
    """The layers of an ncnn model with their weights decoded to float32 (Convolution: [OIHW, bias];
    InnerProduct: [(out, in), bias])."""
    layers = parse_param(Path(param_path).read_text(), str(param_path))
    buf = memoryview(Path(bin_path).read_bytes())
    pos, src = 0, str(bin_path)
    for layer in layers:
        p = layer.params
        if layer.type in _WEIGHTS:
            pos = _weighted(layer, buf, pos, src)
        elif layer.type == "MemoryData":  # a constant blob: w*h*c (*d) raw fp32 values
            n = int(p.get(0, 0)) * max(1, int(p.get(1, 0))) * max(1, int(p.get(2, 0))) * max(1, int(p.get(11, 0)))
            w, pos = _read(buf, pos, n, "<f4", src, layer.name)
            layer.weights = [w]
        elif layer.type == "PReLU":
            s, pos = _read(buf, pos, int(p.get(0, 1)), "<f4", src, layer.name)
            layer.weights = [s]
    if pos != len(buf):
        raise ShapeMismatchError(f"{src}: {len(buf) - pos} bytes left after the last layer (.param/.bin mismatch)")
    return layers


def _convs(layers):
    return [layer for layer in layers if layer.type == "Convolution"]


def load_into_rrdbnet(model, layers, num_blocks: int, source: str) -> None:
    """Real-ESRGAN RRDBNet (x4) from ncnn: the Convolution layers in param order are the model's convs."""
    names = rrdbnet_conv_names(num_blocks)
    convs = _convs(layers)
    if len(convs) != len(names):
        raise ShapeMismatchError(f"{source}: {len(convs)} convolutions, RRDBNet with {num_blocks} blocks has {len(names)}")
    for name, conv in zip(names, convs):
        assign(model, name, conv_arrays(*conv.weights), source, conv.name)


def load_into_srvgg(model, layers, num_conv: int, scale: int, source: str) -> None:
    """SRVGGNetCompact from ncnn: convs ``conv0..conv{n+1}``, PReLUs ``act0..act{n}``; the last conv
    feeds a CRD PixelShuffle, so its channels are reordered for depth-to-space."""
    convs = _convs(layers)
    prelus = [layer for layer in layers if layer.type == "PReLU"]
    if len(convs) != num_conv + 2 or len(prelus) != num_conv + 1:
        raise ShapeMismatchError(f"{source}: {len(convs)} convs / {len(prelus)} PReLUs, SRVGG({num_conv}) needs {num_conv + 2} / {num_conv + 1}")
    for i, conv in enumerate(convs):
        assign(model, f"conv{i}", conv_arrays(*conv.weights, shuffle=scale if i == num_conv + 1 else 0), source, conv.name)
    for i, pr in enumerate(prelus):
        assign(model, f"act{i}", [pr.weights[0].reshape(1, 1, -1)], source, pr.name)
