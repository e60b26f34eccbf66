"""Load a generator for serving: a training run folder, a ``.keras`` file, a SavedModel, or an installed name.

Where ``spec`` points is decided by :func:`srkeras.inference.store.find_model`. A ``.keras`` file's
JSON sidecar (:mod:`srkeras.inference.sidecar`) seeds the served model's facts (scale, receptive
field, the original runtime's pre-padding), so a pretrained model starts in seconds and is served
exactly as its original runtime serves it. An installed model served in float32 on CPU runs from its
serving artifact (:mod:`srkeras.inference.compiled`; written on its first such load) without
building the Keras model until something needs it: the same outputs, a fraction of the start-up.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from srkeras.inference import compiled
from srkeras.inference.served import NetworkFacts, ServedModel, serve
from srkeras.inference.sidecar import ModelSidecar
from srkeras.inference.store import ModelNotFoundError, find_model


def _register_custom_objects():
    try:  # registers PixelShuffle, BicubicUpsample... so .keras files using them deserialise
        import srkeras.models  # noqa: F401
    except ImportError:
        pass


def _load_savedmodel(path: Path):
    import keras
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    sig = loaded.signatures["serving_default"]
    spec = list(sig.structured_input_signature[1].values())[0]
    c = int(spec.shape[-1])
    inp = keras.Input((None, None, c))
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
    out = layer(inp)
    if isinstance(out, dict):
        out = list(out.values())[0]
    return keras.Model(inp, out, name=path.name)


def _load_keras(path: Path):
    """(keras.Model, facts from its sidecar) of a ``.keras`` file."""
    import keras

    _register_custom_objects()
    try:
        model = keras.saving.load_model(str(path), compile=False)
    except Exception as e:  # noqa: BLE001 - the message must name the file
        raise ModelNotFoundError(f"{path}: could not load model ({type(e).__name__}: {e})") from e
    sidecar = ModelSidecar.read(path)
    return model, (sidecar.network_facts() if sidecar else NetworkFacts())


def _installed(path: Path) -> bool:
    """Whether ``path`` is a model of the store (``NAME.keras`` or ``NAME/model.keras`` in the models
    directory): only those get a serving artifact written beside them."""
    from srkeras.inference.store import models_dir

    try:
        d = models_dir().resolve()
        p = path.resolve()
    except OSError:
        return False
    return p.suffix == ".keras" and (p.parent == d or p.parent.parent == d)


def _float32_keras(path: Path):
    from srkeras.inference.precision import as_float32

    return as_float32(_load_keras(path)[0])


def _load_served_float32(path: Path) -> ServedModel:
    """An installed model served in float32 on CPU: from its serving artifact when it is current, else
    from the ``.keras`` (the artifact is then written for the next process)."""
    comp = compiled.load(path)
    if comp is not None:
        comp.loader = lambda: _float32_keras(path)
        sidecar = ModelSidecar.read(path, file_sha256=comp.model_sha256)
        return ServedModel(None, sidecar.network_facts() if sidecar else NetworkFacts(), compiled=comp)
    from srkeras.inference.precision import as_float32

    model, facts = _load_keras(path)
    model = as_float32(model)
    if not compiled.declined(path):
        compiled.save(path, model)
    return ServedModel(model, facts)


def load_generator(spec, dtype: str | None = "float32", precision: str | None = None, purpose: str = "serve") -> ServedModel:
    """Load the generator ``spec`` (RUN_DIR, PATH.keras, SavedModel dir, NAME, a keras.Model or a
    ServedModel) as a :class:`~srkeras.inference.served.ServedModel`.

    ``dtype="float32"`` (default; what CPUs need) replaces a float16/bfloat16-policy model by a
    float32 clone; ``dtype=None`` keeps the policy it was saved with (e.g. mixed_float16 on GPU).
    ``precision`` ("float32", "bfloat16", "auto"; None: as ``dtype`` says) then sets the compute
    precision for ``purpose`` ("serve" or "score"): :mod:`srkeras.inference.precision`
    (:class:`~srkeras.inference.precision.PrecisionError`, a ValueError, where bfloat16 is not native).
    """
    if isinstance(spec, (str, os.PathLike)) and dtype == "float32":
        from srkeras.inference.precision import resolve_precision

        path = find_model(spec)
        # float32 whatever the model (auto: no bfloat16 here or not serving): the artifact can serve it
        if path.is_file() and _installed(path) and resolve_precision(precision, purpose, "cpu") == "float32":
            return _load_served_float32(path)
    import keras

    if isinstance(spec, (ServedModel, keras.Model)):
        served = serve(spec)
        model, facts = served.model, served.facts
    else:
        path = find_model(spec)
        if path.is_dir():
            return ServedModel(_load_savedmodel(path))
        model, facts = _load_keras(path)
    if dtype == "float32":
        from srkeras.inference.precision import as_float32

        model = as_float32(model)
    if precision is not None:
        from srkeras.inference.precision import as_precision, resolve_precision

        model = as_precision(model, resolve_precision(precision, purpose, "cpu" if dtype else "gpu", model))
    return ServedModel(model, dataclasses.replace(facts))


__all__ = ["load_generator"]
