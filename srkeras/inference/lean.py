"""TensorFlow imported lean (without Keras, without garbage collection), for command lines that may never build a Keras model.

``import tensorflow`` imports Keras eagerly (``keras.src.optimizers``, for registrations a
SavedModel of Keras optimizers needs), and Keras pulls in pandas, pyarrow and matplotlib: over a
CPU second of a thumbnail's ``pipelines.upscale`` that runs from a serving artifact
(:mod:`srkeras.inference.compiled`) and never touches Keras; its legacy v1 Keras looks for SciPy
(a quarter second more). :func:`lean_tensorflow` makes the first ``import tensorflow`` (whoever does it,
when it happens) skip those optional imports (:data:`DEFERRED`: TensorFlow catches their
ImportError); ``import keras`` and ``import scipy`` work as usual afterwards (TensorFlow's
``tf.keras`` is a lazy loader already), paid for only when a Keras model is built. The import also
runs without garbage collection, and what it made is then frozen (``gc.freeze``): collections
during it, and the final one at exit walking every object TensorFlow made, cost ~0.9 CPU s and
freed nothing. Command lines call it first; library code never does.
"""

from __future__ import annotations

import gc
import importlib.abc
import importlib.util
import sys

# Imported by TensorFlow's __init__ inside try/except ImportError, for what serving never uses: Keras
# (module docstring); SciPy, for scipy.sparse inputs to the legacy tf.compat.v1 Keras training loops.
DEFERRED = ("keras", "scipy")


class _DeferKerasLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run while ``import keras`` fails (TensorFlow catches the ImportError)."""

    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        hidden = [name for name in DEFERRED if name not in sys.modules]  # one imported already: nothing to save
        for name in hidden:
            sys.modules[name] = None  # makes `import name` raise ImportError
        collecting = gc.isenabled()
        gc.disable()  # the import makes millions of objects that live as long as the process: collections free nothing
        try:
            self.inner.exec_module(module)
        finally:
            for name in hidden:
                if sys.modules.get(name, 0) is None:
                    del sys.modules[name]
            if collecting:
                gc.enable()
            gc.freeze()  # ... and later collections (the one at exit included) skip them


class _DeferKerasFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once and wraps its loader (the other finders, :mod:`srkeras.inference.quiet`'s included, still apply)."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _DeferKerasLoader(spec.loader)
        return spec


def lean_tensorflow() -> None:
    """Make the first ``import tensorflow`` skip its optional imports and collections (module docstring); nothing is imported now."""
    if "tensorflow" in sys.modules or any(isinstance(f, _DeferKerasFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _DeferKerasFinder())


__all__ = ["DEFERRED", "lean_tensorflow"]
