"""Walking and copying Keras model graphs: one helper for every caller (training, serving, export)."""

from __future__ import annotations

from collections.abc import Callable, Iterator


def all_layers(model) -> Iterator:
    """Every layer of ``model``, depth first, nested models' layers included (after the model itself)."""
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from all_layers(layer)


def rebuild(
    model,
    config_of: Callable[[object], dict | None] | None = None,
    weights: bool = True,
    layer_of: Callable[[object], object | None] | None = None,
):
    """Copy of ``model`` with every layer rebuilt from its (possibly edited) config.

    ``config_of(layer)`` returns the config to build the layer's copy from (``None``: its own config
    unchanged); ``layer_of(layer)``, tried first, may return a replacement layer of any class
    (``None``: rebuild from the config). The copy gets ``model``'s weights unless ``weights=False``
    (replacements that change the weights need ``weights=False``). Functional and Sequential models
    only (``keras.models.clone_model``).
    """
    import keras
    import numpy as np

    def clone(layer):
        replacement = layer_of(layer) if layer_of else None
        if replacement is not None:
            return replacement
        cfg = config_of(layer) if config_of else None
        return layer.__class__.from_config(layer.get_config() if cfg is None else cfg)

    copy = keras.models.clone_model(model, clone_function=clone)
    if weights:
        copy.set_weights([np.asarray(w) for w in model.get_weights()])
    return copy


__all__ = ["all_layers", "rebuild"]
