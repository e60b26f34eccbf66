"""Find and load a generator: a training run folder, a ``.keras`` file, a SavedModel, or a zoo name.

An existing path wins. Otherwise ``NAME`` is looked up as ``NAME.keras`` (or ``NAME/model.keras``)
in the models directory (``$SRKERAS_MODEL_DIR``, default ``~/.srkeras/models``), where
``python -m pipelines.pretrained fetch NAME`` installs the pretrained models of the catalogue
(``realesrgan_x4plus``...) and where trained or imported models can be put; if absent the error
says how to get it. A zoo *name* (``srresnet``, ``rrdbnet``...) names an architecture, not weights:
random weights are never used silently.

A ``.keras`` file's JSON sidecar (:mod:`srkeras.inference.sidecar`) seeds the per-model facts
(scale, receptive field, the original runtime's pre-padding), so a pretrained model starts in
seconds and is served exactly as its original runtime serves it.
"""

from __future__ import annotations

import os
from pathlib import Path

from srkeras.inference.sidecar import apply_sidecar, read_sidecar


class ModelNotFoundError(FileNotFoundError):
    """No usable model at the given spec; the message says what was looked for."""


def models_dir() -> Path:
    return Path(os.environ.get("SRKERAS_MODEL_DIR") or Path.home() / ".srkeras" / "models").expanduser()


def _register_custom_objects():
    try:  # registers PixelShuffle, BicubicUpsample... so .keras files using them deserialise
        import srkeras.models  # noqa: F401
    except ImportError:
        pass


def list_models(directory=None) -> list[Path]:
    """``*.keras`` files and run folders (with ``model.keras``) directly inside ``directory``."""
    d = Path(directory) if directory else models_dir()
    if not d.is_dir():
        return []
    found = []
    for p in sorted(d.iterdir()):
        if p.suffix == ".keras" and p.is_file():
            found.append(p)
        elif p.is_dir() and (p / "model.keras").is_file():
            found.append(p)
    return found


def resolve(spec) -> Path:
    """Path of the model file/folder that ``spec`` refers to (see module docstring)."""
    p = Path(str(spec)).expanduser()
    if p.is_dir():
        if (p / "model.keras").is_file():
            return p / "model.keras"
        if (p / "saved_model.pb").is_file():
            return p
        raise ModelNotFoundError(f"{p}: folder has neither model.keras (a training run) nor saved_model.pb")
    if p.is_file():
        if p.suffix != ".keras":
            raise ModelNotFoundError(f"{p}: not a .keras model file")
        return p
    if p.suffix == ".keras" or os.sep in str(spec):
        raise ModelNotFoundError(f"{p}: no such model file or run folder")
    d = models_dir()
    for cand in (d / f"{spec}.keras", d / str(spec) / "model.keras"):
        if cand.is_file():
            return cand
    raise ModelNotFoundError(
        f"model {spec!r} is not installed (no {d / (str(spec) + '.keras')}). A pretrained model of the "
        f"catalogue (`python -m pipelines.pretrained list`) is installed with `python -m pipelines.pretrained "
        f"fetch {spec}`. A trained one (`python -m pipelines.train ...`) is used by passing its run folder "
        f"or .keras path, or by copying its model.keras there as {spec}.keras (or set SRKERAS_MODEL_DIR to "
        f"a folder holding {spec}.keras)."
    )


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


def load_generator(spec, dtype: str | None = "float32"):
    """Load a generator from ``spec`` (RUN_DIR, PATH.keras, SavedModel dir, NAME or a keras.Model).

    ``dtype="float32"`` (default; what CPUs need) replaces a float16/bfloat16-policy model by a
    float32 clone; ``dtype=None`` keeps the policy it was saved with (e.g. mixed_float16 on GPU).
    """
    import keras

    meta = None
    if isinstance(spec, keras.Model):
        model = spec
    else:
        path = resolve(spec)
        if path.is_dir():
            return _load_savedmodel(path)
        _register_custom_objects()
        try:
            model = keras.saving.load_model(str(path), compile=False)
        except Exception as e:  # noqa: BLE001 - the message must name the file
            raise ModelNotFoundError(f"{path}: could not load model ({type(e).__name__}: {e})") from e
        meta = read_sidecar(path)
    if dtype == "float32":
        from srkeras.inference.serving import as_float32

        model = as_float32(model)
    apply_sidecar(model, meta)  # after the float32 clone: the facts belong to the model returned
    return model
