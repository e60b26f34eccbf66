"""Read TF.js layers models (``model.json`` + binary weight shards) and load them by layer name.

The manifest lists, per group, the shard files (concatenated in order) and the weights they hold
(``name`` ``layer/kernel`` or ``layer/bias``, ``shape``, ``dtype`` float32; quantised weights are
refused). Keras and TF.js share the HWIO kernel layout, so weights load unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from srkeras.pretrained.convert import assign
from srkeras.pretrained.errors import ShapeMismatchError


def read_weights(model_json) -> dict[str, np.ndarray]:
    """``{'layer/kernel': array, ...}`` from a TF.js ``model.json`` and its shards beside it."""
    path = Path(model_json)
    manifest = json.loads(path.read_text())["weightsManifest"]
    out = {}
    for group in manifest:
        data = b"".join((path.parent / p).read_bytes() for p in group["paths"])
        pos = 0
        for w in group["weights"]:
            if w.get("dtype", "float32") != "float32" or "quantization" in w:
                raise ShapeMismatchError(f"{path}: weight {w['name']} is not plain float32")
            n = int(np.prod(w["shape"], dtype=np.int64)) if w["shape"] else 1
            if pos + 4 * n > len(data):
                raise ShapeMismatchError(f"{path}: shards end inside weight {w['name']} (truncated)")
            out[w["name"]] = np.frombuffer(data, "<f4", n, pos).reshape(w["shape"])
            pos += 4 * n
        if pos != len(data):
            raise ShapeMismatchError(f"{path}: {len(data) - pos} unused bytes in shards {group['paths']}")
    return out


def load_by_name(model, weights: dict, source: str) -> None:
    """Assign ``weights`` to the model's layers by name; every weighted layer and every weight must match."""
    layers = {layer.name: layer for layer in model.layers if layer.weights}
    groups: dict[str, dict] = {}
    for key, arr in weights.items():
        layer, _, var = key.rpartition("/")
        groups.setdefault(layer, {})[var] = arr
    extra = sorted(set(groups) - set(layers))
    missing = sorted(set(layers) - set(groups))
    if extra or missing:
        raise ShapeMismatchError(f"{source}: layers in file but not in model {extra[:5]}, in model but not in file {missing[:5]}")
    for name, layer in layers.items():
        order = [v.path.rpartition("/")[2] for v in layer.weights]
        arrays = [groups[name].get(v) for v in order]
        if any(a is None for a in arrays):
            raise ShapeMismatchError(f"{source}: layer {name} needs {order}, file has {sorted(groups[name])}")
        assign(model, name, arrays, source, name)
