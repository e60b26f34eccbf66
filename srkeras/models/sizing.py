"""Size rules of window-attention networks (OmniSR, DAT): pad the LR input at the bottom/right to a
multiple of the window, crop the output back to ``scale`` times the input size."""

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
        return (input_shape[0], None, None, input_shape[3])

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
        return (input_shapes[0][0], None, None, input_shapes[0][3])

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
