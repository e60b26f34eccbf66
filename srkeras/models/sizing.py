"""Size rules inside the networks: pad the LR input at the bottom/right to a multiple of a window
(OmniSR, DAT), replicate-pad it as the waifu2x / SRMD ncnn runtimes do (:class:`EdgePad`), and crop the
output back to ``scale`` times the input size (:class:`CropToScale`; also Real-CUGAN)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="srkeras")
class PadToMultiple(keras.layers.Layer):
    """Pad H and W at the end to multiples of ``multiple`` (``mode``: ``constant`` zeros or
    ``reflect``), as PyTorch's ``F.pad(x, (0, pw, 0, ph), mode)``."""

    def __init__(self, multiple: int, mode: str = "constant", **kwargs):
        super().__init__(**kwargs)
        self.multiple, self.mode = int(multiple), mode

    def call(self, x):
        m = self.multiple
        ph, pw = (m - ops.shape(x)[1] % m) % m, (m - ops.shape(x)[2] % m) % m
        return ops.pad(x, [[0, 0], [0, ph], [0, pw], [0, 0]], mode=self.mode)

    def compute_output_shape(self, input_shape):
        def grow(n):  # known sizes stay known (the receptive-field walk infers shapes for a fixed size)
            return None if n is None else n + (-n) % self.multiple

        return (input_shape[0], grow(input_shape[1]), grow(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple, "mode": self.mode}


@keras.saving.register_keras_serializable(package="srkeras")
class CropToScale(keras.layers.Layer):
    """``y[:, :H*scale, :W*scale]`` for the input ``x`` of size H x W: call with ``[y, x]``."""

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, inputs):
        y, x = inputs
        return y[:, : ops.shape(x)[1] * self.scale, : ops.shape(x)[2] * self.scale, :]

    def compute_output_shape(self, input_shapes):
        (n, _, _, c), (_, h, w, _) = input_shapes
        return (n, None if h is None else h * self.scale, None if w is None else w * self.scale, c)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="srkeras")
class EdgePad(keras.layers.Layer):
    """Replicate padding (``BORDER_REPLICATE``): ``pad`` px on every side, plus bottom/right rows and
    columns that make ``h`` and ``w`` multiples of ``multiple`` (waifu2x-ncnn-vulkan's ``prepadding``)."""

    def __init__(self, pad: int, multiple: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.pad = int(pad)
        self.multiple = int(multiple)

    def _index(self, n):
        extra = (self.multiple - n % self.multiple) % self.multiple
        idx = ops.arange(-self.pad, n + self.pad + extra, dtype="int32")
        return ops.clip(idx, 0, n - 1)

    def call(self, x):
        shape = ops.shape(x)
        x = ops.take(x, self._index(shape[1]), axis=1)
        return ops.take(x, self._index(shape[2]), axis=2)

    def compute_output_shape(self, input_shape):
        def grow(n):
            return None if n is None else n + 2 * self.pad + (-n) % self.multiple

        n, h, w, c = input_shape
        return (n, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "pad": self.pad, "multiple": self.multiple}
