"""The receptive field of a functional generator, computed from its layer graph (no probe).

:func:`analytic_receptive_field` walks the graph backwards from the output: starting from radius
0 at the output, each layer maps the radius ``r`` (pixels of its output tensor) its consumers need
to the radius on its input tensor(s), and a tensor read by several layers takes the largest:

* a convolution (kernel ``k``, dilation ``d``, stride ``s``): ``r * s + ceil((k - 1) d / 2)``
  ("same" padding; ``(k - 1) d`` for "valid", the window is one-sided);
* a transposed convolution upsampling ``u``: ``ceil((r + k - 1) / u)``;
* an upsampling by ``u`` (PixelShuffle, DepthToSpace, nearest UpSampling2D): ``ceil(r / u)``,
  plus 1 for bilinear (also :class:`~srkeras.models.layers.BilinearUpsample`) and 2 for bicubic
  interpolation (:class:`~srkeras.models.layers.BicubicUpsample`);
* a downsampling by ``u`` (PixelUnshuffle, SpaceToDepth, pooling of size ``p``): ``r * u + p - 1``;
* an element-wise or per-pixel layer (additions, concatenations, activations, rescaling, normalisation
  over channels): ``r``; a nested functional model: its own walk.

The resampling factor of a layer is read from the graph's symbolic shapes
(:func:`srkeras.inference.split.tensor_shapes`), so upsampling layers are recognised by what they do.
The result is the radius in LR pixels of the model input: an upper bound on what the impulse probe
(:mod:`srkeras.inference.probing`) measures, exact for tiling (tiled == untiled bit for bit, in any
precision). It is ``None`` -- use the probe -- when the graph is not functional or has a layer
whose reach is not known (a custom layer, attention, global pooling).

:func:`reads_whole_image` tells the models whose output at every pixel depends on the whole input
(global average/max pooling, e.g. the squeeze-excitation gates of Real-CUGAN and waifu2x cunet, the
channel interactions of DAT and OmniSR; or a layer declaring ``reads_whole_image = True``, e.g.
SwinIR's window attention, anchored at the image origin, with masks of the padded size): their
receptive field is global, known without a probe, and no tiling reproduces them exactly.
"""

from __future__ import annotations

import math

POINTWISE = frozenset({
    "InputLayer", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Activation",
    "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Rescaling", "BatchNormalization", "LayerNormalization",
    "Dropout", "SpatialDropout2D", "GaussianNoise", "Identity", "Cast",
})  # fmt: skip
CONVS = frozenset({"Conv2D", "DepthwiseConv2D", "SeparableConv2D"})
INTERPOLATORS = ("UpSampling2D", "BicubicUpsample", "BilinearUpsample")
RESAMPLERS = frozenset({"PixelShuffle", "DepthToSpace", *INTERPOLATORS, "PixelUnshuffle", "SpaceToDepth",
                        "MaxPooling2D", "AveragePooling2D"})  # fmt: skip
INTERPOLATION_REACH = {"nearest": 0, "bilinear": 1}  # extra LR px of the interpolation kernel; others (bicubic...) 2


class _Unknown(Exception):
    """A layer whose spatial reach this walk does not know."""


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[-1]))


def _conv_reach(layer) -> int:
    k, d = _pair(layer.kernel_size), _pair(getattr(layer, "dilation_rate", 1))
    span = max((k[0] - 1) * d[0], (k[1] - 1) * d[1])
    return span if getattr(layer, "padding", "same") == "valid" else math.ceil(span / 2)


def _factor(shape_in, shape_out) -> float:
    """Output spatial size over input spatial size (rows) of one layer."""
    return float(shape_out[1]) / float(shape_in[1])


def _layer_back(layer, r: int, f: float) -> int:
    """Radius needed on the layer's input for radius ``r`` on its output; ``f``: output size / input size."""
    kind = type(layer).__name__
    if hasattr(layer, "layers") and hasattr(layer, "_nodes_by_depth"):  # nested functional model
        return max(backward(layer, r))
    if kind in CONVS:
        s = max(_pair(getattr(layer, "strides", 1)))
        return r * s + _conv_reach(layer)
    if kind == "Conv2DTranspose":
        k = max(_pair(layer.kernel_size))
        return math.ceil((r + k - 1) / max(1, round(f)))
    if kind in POINTWISE and f == 1:
        return r
    if kind in RESAMPLERS and f > 1:
        u = round(f)
        interp = str(getattr(layer, "interpolation", "nearest"))
        extra = INTERPOLATION_REACH.get(interp, 2) if kind in INTERPOLATORS else 0
        if kind == "BicubicUpsample":
            extra = 2
        return math.ceil(r / u) + extra
    if kind in RESAMPLERS and f < 1:
        u = round(1 / f)
        pool = max(_pair(getattr(layer, "pool_size", u)))
        return r * u + max(pool, u) - 1
    raise _Unknown(kind)


def backward(model, r_out: int = 0) -> list[int]:
    """Radius (pixels) needed on each input of functional ``model`` for radius ``r_out`` on its outputs."""
    from srkeras.inference.split import functional_graph, tensor_shapes, topo_nodes

    graph = functional_graph(model)
    if graph is None:
        raise _Unknown(type(model).__name__)
    shapes = tensor_shapes(graph)
    need = {id(t): r_out for t in graph.outputs}
    for node in reversed(topo_nodes(graph)):
        outs = [need[id(t)] for t in node.outputs if id(t) in need]
        if not outs:
            continue  # nothing downstream reads this node
        ins = list(node.input_tensors)
        f = _factor(shapes[id(ins[0])], shapes[id(node.outputs[0])]) if ins else 1.0
        r_in = _layer_back(node.operation, max(outs), f)
        for t in ins:
            need[id(t)] = max(need.get(id(t), 0), r_in)
    return [need.get(id(t), 0) for t in graph.inputs]


GLOBAL_LAYERS = frozenset({"GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling1D",
                           "GlobalMaxPooling1D"})  # fmt: skip


def reads_whole_image(model) -> bool:
    """Whether a layer of ``model`` (nested models included) pools over the whole image (module docstring)."""
    for layer in getattr(model, "layers", ()):
        if type(layer).__name__ in GLOBAL_LAYERS or getattr(layer, "reads_whole_image", False):
            return True
        if hasattr(layer, "layers") and reads_whole_image(layer):
            return True
    return False


def analytic_receptive_field(model) -> int | None:
    """Receptive-field radius (LR px) of ``model`` from its layer graph (module docstring); None when
    the graph is not functional or holds a layer of unknown reach."""
    try:
        return int(max(backward(model)))
    except _Unknown:
        return None


__all__ = ["analytic_receptive_field", "backward", "reads_whole_image"]
