"""The serving artifact of an installed model: its float32 forward pass as one TensorFlow function.

Why. A fresh ``pipelines.upscale`` of a thumbnail spent most of its CPU seconds building the Keras
model: deserialising a ``.keras`` file of 1,000+ layers (RRDBNet: ~7 CPU-s) and running it eagerly
layer by layer. The artifact holds what the tiled path runs instead: the traced forward pass
(:func:`srkeras.inference.runtime.traced_runner`'s, with the weights as *arguments*: Keras'
``stateless_call``) as a serialised ``FunctionDef``, and the weights as arrays. Loading it reads its
``meta``; the first model call registers the function with the eager runtime and converts the arrays
to tensors (a fraction of a second; a large image, tiled by trunk and tail from the Keras model,
never does); calling it runs the same kernels on the same weights as the Keras model, so outputs are
bit-identical (tests/test_inference_compiled.py). The Keras model is still loaded when something
needs it (a trunk/tail split, costs of a large image, a rewrite): :class:`Compiled` is only a runner.

Where. ``.NAME.keras.serving.npz`` beside an installed model ``NAME.keras`` (hidden: not a model of
the store), made on its first float32 load (:func:`srkeras.inference.load_generator`) and written
atomically (:func:`srkeras.files.write_atomically`: two processes making it at once each rename a
whole file). Its ``meta`` records the model file's size, mtime, ctime, inode and sha256, the TensorFlow and Keras
versions, and the sha256 of the srkeras sources defining the model's layers; :func:`load` returns
None (the caller serves the ``.keras`` and rewrites the artifact) when any of them changed, or when
the file is unreadable or corrupt (zip CRCs, the function's signature against the arrays; found
when the function is first read: the Keras model runs instead and the artifact is removed). A
model whose forward pass cannot be held so gets an artifact recording that (:func:`declined`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from srkeras.files import sha256_file, write_atomically

FORMAT = 1  # bump when what the artifact holds or how the function is traced changes
_names = itertools.count()


def artifact_path(model_path) -> Path:
    """Where the serving artifact of the model file ``model_path`` lives (module docstring)."""
    p = Path(model_path)
    return p.with_name(f".{p.name}.serving.npz")


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import tensorflow as tf

    try:
        keras_version = version("keras")
    except PackageNotFoundError:  # keras from a source tree
        keras_version = "unknown"
    return {"tensorflow": tf.__version__, "keras": keras_version}


def _package_root() -> Path:
    return Path(__file__).resolve().parents[1]  # the srkeras package folder


def _sources_of(model) -> dict:
    """{path relative to srkeras: sha256} of the srkeras modules defining ``model``'s layers."""
    from srkeras.models.graph import all_layers

    root = _package_root()
    files = set()
    for layer in all_layers(model):
        module = type(layer).__module__
        if module.split(".")[0] == "srkeras":
            f = getattr(sys.modules.get(module), "__file__", None)
            if f:
                files.add(Path(f).resolve().relative_to(root).as_posix())
    return {f: _sha256_bytes((root / f).read_bytes()) for f in sorted(files)}


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_key(path: Path) -> dict:
    """What changes when the file is rewritten (install renames a new file in: a new inode and ctime)."""
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino}


def _forward(model, chans):
    """The forward pass of :func:`srkeras.inference.runtime.traced_runner` with the weights as arguments."""
    import tensorflow as tf

    trainable, other = model.trainable_variables, model.non_trainable_variables
    n = len(trainable)

    def forward(x, *weights):
        xs = x if len(chans) == 1 else tf.split(x, chans, axis=-1)
        y, _ = model.stateless_call(list(weights[:n]), list(weights[n:]), xs, training=False)
        ys = [tf.cast(t, tf.float32) for t in (y if isinstance(y, (list, tuple)) else [y])]
        return ys[0] if len(ys) == 1 else tf.concat(ys, axis=-1)

    return forward, [np.asarray(v) for v in trainable + other]


def save(model_path, model, model_sha256: str | None = None) -> Path | None:
    """Write the serving artifact of the float32 Keras ``model`` loaded from ``model_path``; its path, or
    None where the folder is not writable. A model the artifact cannot hold (nested functions, a failed
    trace) gets an artifact that says so (:func:`declined`), so later loads do not trace it again."""
    import tensorflow as tf

    from srkeras.inference.runtime import input_channels
    from srkeras.inference.served import ServedModel  # size_multiple: one reading of the layers

    model_path = Path(model_path)
    if not os.access(model_path.parent, os.W_OK):  # a read-only store: serve from the .keras, trace nothing
        return None
    meta = {"format": FORMAT, **_versions(), "model": {**_file_key(model_path), "sha256": model_sha256 or sha256_file(model_path)},
            "sources": _sources_of(model)}  # fmt: skip
    arrays = {}
    try:
        chans = input_channels(model)
        forward, weights = _forward(model, chans)
        specs = [tf.TensorSpec([None, None, None, sum(chans)], tf.float32)]
        specs += [tf.TensorSpec(w.shape, tf.as_dtype(w.dtype)) for w in weights]
        traced = tf.function(forward, input_signature=specs).get_concrete_function()
        if traced.graph.as_graph_def().library.function:  # their names would clash with another model's when loaded
            raise ValueError("the forward pass calls nested functions")
        meta.update(channels=chans, size_multiple=ServedModel(model).size_multiple, weights=len(weights))
        arrays["function"] = np.frombuffer(traced.function_def.SerializeToString(), np.uint8)
        arrays.update({f"w{i}": w for i, w in enumerate(weights)})
    except Exception as e:  # noqa: BLE001 - any model that cannot be traced so is served from its .keras
        meta["declined"] = f"{type(e).__name__}: {e}"[:500]
        arrays = {}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    try:
        return write_atomically(artifact_path(model_path), write)
    except OSError:  # disk full, a folder that became read-only: serve from the .keras as before
        return None


def _read_meta(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return json.loads(z["meta"].tobytes())


def declined(model_path) -> bool:
    """Whether the current artifact of ``model_path`` records that the model cannot be served from one."""
    model_path = Path(model_path)
    try:
        meta = _read_meta(artifact_path(model_path))
        return "declined" in meta and _current(meta, model_path)
    except Exception:  # noqa: BLE001 - missing or corrupt: not declined, (re)write it
        return False


@dataclass(eq=False)
class Compiled:
    """A current serving artifact, read as far as its ``meta``: :meth:`runner` loads the function and the
    weights (first call), :meth:`load_model` builds the Keras model (only when something needs it)."""

    model_path: Path
    model_sha256: str
    channels: int
    size_multiple: int
    meta: dict = field(repr=False)
    inode: int = 0  # of the artifact read (a corrupt one is removed only if it was not replaced meanwhile)
    loader: object = None  # callable() -> keras.Model (set by srkeras.inference.loading)
    precision: str = "float32"
    failed: str | None = None  # why the function could not be loaded: the caller runs the Keras model

    def load_model(self):
        return self.loader()

    def runner(self):
        """The forward pass: callable (N, H, W, C) float32 -> (N, H*s, W*s, C') tensor; None when the
        function or the weights are corrupt (:attr:`failed`; the artifact is removed, the next load rewrites it)."""
        try:
            return self._runner()
        except Exception as e:  # noqa: BLE001 - BadZipFile, a CRC error, protobuf's DecodeError, TensorFlow's errors
            self.failed = f"{type(e).__name__}: {e}"
            path = artifact_path(self.model_path)
            try:
                if path.stat().st_ino == self.inode:
                    path.unlink()
            except OSError:
                pass
            return None

    def _runner(self):
        import tensorflow as tf
        from tensorflow.core.framework import function_pb2
        from tensorflow.python.eager import context, execute

        with np.load(artifact_path(self.model_path), allow_pickle=False) as z:  # zipfile checks each member's CRC
            function = z["function"].tobytes()
            weights = [z[f"w{i}"] for i in range(int(self.meta["weights"]))]
        fdef = function_pb2.FunctionDef()
        fdef.ParseFromString(function)
        args = fdef.signature.input_arg
        if len(args) != 1 + len(weights) or len(fdef.signature.output_arg) != 1:
            raise ValueError("the function's signature does not match the weights")
        if any(tf.as_dtype(a.type) != tf.as_dtype(w.dtype) for a, w in zip(args[1:], weights)):
            raise ValueError("the function's argument types do not match the weights")
        # a name of its own: another artifact loaded in this process may have been traced under the same one
        fdef.signature.name = f"srkeras_serving_{self.model_sha256[:16]}_{os.getpid()}_{next(_names)}"
        ctx = context.context()
        ctx.ensure_initialized()
        ctx.add_function_def(fdef)
        tensors = [tf.constant(w) for w in weights]
        name = fdef.signature.name.encode()

        def run(x):
            return execute.execute(name, 1, [tf.convert_to_tensor(x, tf.float32), *tensors], (), ctx)[0]

        return run


def _current(meta: dict, model_path: Path) -> bool:
    """Whether ``meta`` describes this model file, these versions and these layer sources."""
    if meta.get("format") != FORMAT or {k: meta.get(k) for k in ("tensorflow", "keras")} != _versions():
        return False
    recorded = meta.get("model") or {}
    key = _file_key(model_path)
    if {k: recorded.get(k) for k in key} != key:
        return False
    root = _package_root()
    for rel, sha in (meta.get("sources") or {}).items():
        try:
            if _sha256_bytes((root / rel).read_bytes()) != sha:
                return False
        except OSError:
            return False
    return True


def load(model_path) -> Compiled | None:
    """The serving artifact of ``model_path`` (its function and weights are read on first use:
    :meth:`Compiled.runner`), or None when it is missing, stale, declined or unreadable (module docstring)."""
    model_path = Path(model_path)
    path = artifact_path(model_path)
    try:
        inode = path.stat().st_ino
        meta = _read_meta(path)
        if "declined" in meta or not _current(meta, model_path):
            return None
        sha, chans, multiple = meta["model"]["sha256"], meta["channels"], int(meta["size_multiple"])
        int(meta["weights"])
    except Exception:  # noqa: BLE001 - missing, unreadable or corrupt (OSError, BadZipFile, JSON, a missing key):
        return None  # the caller serves the .keras and rewrites the artifact
    return Compiled(model_path, sha, int(chans[0]), multiple, meta, inode)


__all__ = ["FORMAT", "Compiled", "artifact_path", "declined", "load", "save"]
