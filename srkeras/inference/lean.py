"""TensorFlow imported without Keras, for command lines that may never build a Keras model.

``import tensorflow`` imports Keras eagerly (``keras.src.optimizers``, for registrations a
SavedModel of Keras optimizers needs), and Keras pulls in pandas, pyarrow and matplotlib: over a
CPU second of a thumbnail's ``pipelines.upscale`` that runs from a serving artifact
(:mod:`srkeras.inference.compiled`) and never touches Keras. :func:`defer_keras` makes the first
``import tensorflow`` (whoever does it, when it happens) skip that eager import; ``import keras``
works as usual afterwards (TensorFlow's ``tf.keras`` is a lazy loader already), it is only paid
for when a Keras model is built. Command lines call it first; library code never does.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys


class _DeferKerasLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run while ``import keras`` fails (TensorFlow catches the ImportError)."""

    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        if "keras" in sys.modules:  # Keras is here already: nothing to save
            self.inner.exec_module(module)
            return
        sys.modules["keras"] = None  # makes `import keras` raise ImportError
        try:
            self.inner.exec_module(module)
        finally:
            if sys.modules.get("keras", 0) is None:
                del sys.modules["keras"]


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


def defer_keras() -> None:
    """Make the first ``import tensorflow`` skip its eager import of Keras (module docstring); nothing is imported now."""
    if "tensorflow" in sys.modules or any(isinstance(f, _DeferKerasFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _DeferKerasFinder())


__all__ = ["defer_keras"]
