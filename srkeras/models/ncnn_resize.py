"""ncnn's ``Interp`` bicubic resize (``resize_type=3``, ``align_corner=0``) as a Keras layer.

Real-ESRGAN's realesr-animevideov3 x2 / x3 ncnn models are the x4 network followed by this resize
by 1/2 / 3/4 (``Interp 0=3 1=0.5``): output pixel ``d`` samples ``f = (d + 0.5) * in/out - 0.5`` with
Keys' cubic kernel at ``A = -0.75`` on the taps ``floor(f) - 1 .. floor(f) + 2``, indices clamped to
the image (ncnn ``interp.cpp``: ``cubic_coeffs``, whose border cases reduce to clamping); no
antialiasing. Output size ``in * num // den``.
"""

from __future__ import annotations

import keras
from keras import ops

_A = -0.75


def _taps(t):
    """Keys' cubic weights of the taps at offsets -1, 0, 1, 2 for a fractional position ``t``."""
    f0, f1, f2 = t + 1.0, t, 1.0 - t
    w0 = _A * f0 * f0 * f0 - 5 * _A * f0 * f0 + 8 * _A * f0 - 4 * _A
    w1 = (_A + 2) * f1 * f1 * f1 - (_A + 3) * f1 * f1 + 1
    w2 = (_A + 2) * f2 * f2 * f2 - (_A + 3) * f2 * f2 + 1
    return [w0, w1, w2, 1.0 - w0 - w1 - w2]


@keras.saving.register_keras_serializable(package="srkeras")
class NcnnBicubicResize(keras.layers.Layer):
    """Resize H and W by ``num / den`` exactly as ncnn's bicubic ``Interp`` (module docstring)."""

    def __init__(self, num: int, den: int, **kwargs):
        super().__init__(**kwargs)
        self.num, self.den = int(num), int(den)

    def _axis(self, x, axis):
        n_in = ops.shape(x)[axis]
        n_out = n_in * self.num // self.den
        ratio = ops.cast(n_in, "float32") / ops.cast(n_out, "float32")
        f = (ops.cast(ops.arange(n_out), "float32") + 0.5) * ratio - 0.5
        base = ops.floor(f)
        weights = _taps(f - base)
        base = ops.cast(base, "int32")
        shape = [1, 1, 1, 1]
        shape[axis] = -1
        out = 0.0
        for k, w in enumerate(weights):
            idx = ops.clip(base + (k - 1), 0, n_in - 1)
            out = out + ops.take(x, idx, axis=axis) * ops.reshape(w, shape)
        return out

    def call(self, x):
        return self._axis(self._axis(x, 2), 1)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.num // self.den, None if w is None else w * self.num // self.den, c)

    def get_config(self):
        return {**super().get_config(), "num": self.num, "den": self.den}
