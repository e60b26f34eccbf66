"""TensorFlow without its start-up log lines (unless ``--verbose``).

Importing TensorFlow 2.2x prints "WARNING: All log messages before absl::InitializeLog() is called
are written to STDERR" and oneDNN / CPU-feature notices from C++, before ``TF_CPP_MIN_LOG_LEVEL`` is
read by absl, so the variable alone does not silence them. :func:`import_tensorflow` imports it
with file descriptor 2 pointed at a temporary file, then writes back every line that is not one of
those notices (a real error during the import is still shown). Command lines call it, with their
``--verbose`` flag, before the first import of TensorFlow; library code never redirects anything.
"""

from __future__ import annotations

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


def import_tensorflow(verbose: bool = False):
    """``import tensorflow`` (and keras), silencing its start-up notices unless ``verbose`` (module docstring)."""
    if verbose:
        import keras  # noqa: F401
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):  # no real stderr (an app, a test capture)
        import tensorflow as tf

        return tf
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow as tf
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode("utf-8", "replace").splitlines() if ln.strip() and not NOISE.search(ln)]
            if kept:
                print("\n".join(kept), file=sys.stderr)
    return tf


__all__ = ["NOISE", "import_tensorflow"]
