"""Load a PyTorch state dict into a Keras model whose layers are named after the state-dict prefixes
(OmniSR, DAT-light): every weight the model has is looked up by ``<layer name>.<torch name>``, its
shape checked, and converted from PyTorch's layout (conv OIHW -> HWIO, depthwise (C, 1, kh, kw) ->
(kh, kw, C, 1), linear (out, in) -> (in, out); the conv before a pixel shuffle reordered CRD -> DCR).
"""

from __future__ import annotations

import keras
import numpy as np

from srkeras.pretrained.convert import crd_to_dcr
from srkeras.pretrained.errors import ShapeMismatchError, UnknownArchitectureError

#: Keras weight name -> PyTorch parameter name (custom layers name theirs after PyTorch's).
_TORCH_NAME = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias", "depthwise_kernel": "weight",
               "rel_pos_bias": "rel_pos_bias.weight", "moving_mean": "running_mean", "moving_variance": "running_var"}


def _torch_array(layer, weight, sd, key: str, source: str) -> np.ndarray:
    t = np.asarray(sd[key], np.float32)
    if isinstance(layer, keras.layers.DepthwiseConv2D) and t.ndim == 4:
        return np.transpose(t, (2, 3, 0, 1))
    if isinstance(layer, keras.layers.Conv2D):
        return np.transpose(t, (2, 3, 1, 0)) if t.ndim == 4 else t
    if isinstance(layer, keras.layers.Dense) and t.ndim == 2:
        return t.T
    return t.reshape(tuple(weight.shape)) if t.size == int(np.prod(weight.shape)) else t


def expected_keys(model) -> dict[str, tuple]:
    """``{torch key: keras weight shape}`` for every weight of ``model``."""
    out = {}
    for layer in model.layers:
        for w in layer.weights:
            out[f"{layer.name}.{_TORCH_NAME.get(w.name, w.name)}"] = tuple(w.shape)
    return out


def load_named(model, sd: dict, source: str, shuffle: dict | None = None) -> list[str]:
    """Set every weight of ``model`` from ``sd``; returns the keys of ``sd`` no weight took.
    ``shuffle``: ``{layer name: r}`` for convs followed by a pixel shuffle by ``r``."""
    shuffle = shuffle or {}
    missing = [k for k in expected_keys(model) if k not in sd]
    if missing:
        raise UnknownArchitectureError(f"{source}: missing key(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        arrays = []
        for w in layer.weights:
            key = f"{layer.name}.{_TORCH_NAME.get(w.name, w.name)}"
            a = _torch_array(layer, w, sd, key, source)
            if tuple(a.shape) != tuple(w.shape):
                raise ShapeMismatchError(f"{source}: {key} has shape {np.shape(sd[key])}, layer {layer.name} needs {tuple(w.shape)}")
            if layer.name in shuffle:
                a = a[..., crd_to_dcr(a.shape[-1], shuffle[layer.name])]
            arrays.append(a)
            used.add(key)
        layer.set_weights(arrays)
    return sorted(set(sd) - used)
