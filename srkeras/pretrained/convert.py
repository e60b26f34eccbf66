"""Shared helpers of the converters: layout changes between PyTorch/ncnn (NCHW, OIHW, CRD pixel
shuffle) and Keras (NHWC, HWIO, DCR depth-to-space), and shape-checked weight assignment."""

from __future__ import annotations

import numpy as np

from srkeras.pretrained.errors import ShapeMismatchError


def oihw_to_hwio(w: np.ndarray) -> np.ndarray:
    """PyTorch/ncnn conv kernel (out, in, kh, kw) -> Keras (kh, kw, in, out)."""
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))


def crd_to_dcr(channels_out: int, r: int) -> np.ndarray:
    """Index array ``p`` with ``keras_channel[j] = torch_channel[p[j]]`` for the conv before a pixel
    shuffle by ``r``: PyTorch's CRD order ``c*r^2 + dy*r + dx`` -> TensorFlow's DCR ``(dy*r + dx)*C + c``."""
    c = channels_out // (r * r)
    return np.array([ci * r * r + ph for ph in range(r * r) for ci in range(c)], dtype=np.int64)


def find_layer(model, layer_name: str):
    """Layer ``layer_name`` of ``model``, looked for in nested models too (RCAN's residual groups)."""
    from srkeras.models.graph import all_layers

    for layer in all_layers(model):
        if layer.name == layer_name:
            return layer
    raise ValueError(f"model {model.name} has no layer {layer_name!r}")


def assign(model, layer_name: str, arrays, source: str, what: str) -> None:
    """Set ``layer_name``'s weights to ``arrays`` (Keras layouts), checking every shape first."""
    layer = find_layer(model, layer_name)
    current = layer.get_weights()
    if len(current) != len(arrays):
        raise ShapeMismatchError(f"{source}: {what} has {len(arrays)} tensors, layer {layer_name} needs {len(current)}")
    for have, want in zip(arrays, current):
        if tuple(have.shape) != tuple(want.shape):
            raise ShapeMismatchError(
                f"{source}: {what} has shape {tuple(have.shape)}, layer {layer_name} needs {tuple(want.shape)}"
            )
    layer.set_weights([np.asarray(a, dtype=np.float32) for a in arrays])


def conv_arrays(weight, bias, shuffle: int = 0):
    """Keras [kernel, bias] of a PyTorch-layout conv; ``shuffle`` > 1 reorders for a following shuffle."""
    k = oihw_to_hwio(np.asarray(weight, dtype=np.float32))
    b = np.asarray(bias, dtype=np.float32)
    if shuffle > 1:
        p = crd_to_dcr(k.shape[-1], shuffle)
        k, b = k[..., p], b[p]
    return [k, b]


def rrdbnet_conv_names(num_blocks: int, stages: int = 2) -> list[str]:
    """The Keras conv layer names of :func:`srkeras.models.esrgan.build_rrdbnet`, in graph order."""
    names = ["conv_first"]
    for b in range(num_blocks):
        for d in range(3):
            names += [f"rrdb{b}_rdb{d}_conv{i}" for i in range(1, 6)]
    names += ["conv_body"] + [f"up{i}_conv" for i in range(stages)] + ["conv_hr", "conv_last"]
    return names
