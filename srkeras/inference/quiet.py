"""TensorFlow without its start-up log lines (unless ``--verbose``).

Importing TensorFlow 2.2x prints "WARNING: All log messages before absl::InitializeLog() is called
are written to STDERR" and oneDNN / CPU-feature notices from C++, before ``TF_CPP_MIN_LOG_LEVEL`` is
read by absl, so the variable alone does not silence them. :func:`quiet_tensorflow` makes the first
``import tensorflow`` (whoever does it, when it happens: commands that never need TensorFlow do not
pay for it) run with file descriptor 2 pointed at a temporary file, then writes back every line
that is not one of those notices (a real error during the import is still shown). Command lines
call it first, with their ``--verbose`` flag; library code never redirects anything.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

NOISE = re.compile(
    r"(All log messages before absl::InitializeLog|port\.cc:\d+\] oneDNN custom operations|"
    r"cpu_feature_guard\.cc|To enable the following instructions:|rebuild TensorFlow with the appropriate compiler|"
    r"Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered|"
    r"TF-TRT Warning|cuda_(executor|dnn|blas|fft|diagnostics)\.cc|Could not find cuda drivers|"
    r"failed call to cuInit|This TensorFlow binary is optimized)"
)


@contextlib.contextmanager
def stderr_filtered():
    """File descriptor 2 pointed at a temporary file; its lines that are not :data:`NOISE` are written back."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):  # no real stderr
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode("utf-8", "replace").splitlines() if ln.strip() and not NOISE.search(ln)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run with :func:`stderr_filtered`."""

    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        with stderr_filtered():
            self.inner.exec_module(module)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once (whoever imports it first: keras, srkeras) and wraps its loader."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow(verbose: bool = False) -> None:
    """Silence TensorFlow's start-up notices (module docstring) unless ``verbose``: nothing is imported
    now; the first ``import tensorflow`` (wherever it happens) runs with standard error filtered."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())


__all__ = ["NOISE", "quiet_tensorflow", "stderr_filtered"]
