"""SRMD and SRMDNF (Zhang, Zuo, Zhang, "Learning a Single Convolutional Super-Resolution Network for
Multiple Degradations", CVPR 2018; github.com/cszn/SRMD) as srmd-ncnn-vulkan (nihui) runs them.

The network sees the LR image concatenated with a degradation map (paper sec. 3.1, fig. 2): the
blur kernel's PCA projection (15 values; the runtime uses the one of its fixed bicubic-like
kernel, :data:`DEGRADATION_VECTOR`) stretched to the LR size, and, for SRMD, the noise level
``sigma / 255`` as one more channel (SRMDNF, "noise-free", has none). Then 12 conv 3x3 layers
(128 features, ReLU after all but the last) and a pixel shuffle to RGB.

The runtime replicate-pads the LR tile by 12 px (the receptive field of 12 convs) and crops
``12 * scale`` px from the output: :class:`~srkeras.models.sizing.EdgePad` does it here, so the
model maps ``h x w`` to ``s*h x s*w`` with the runtime's borders. Input and output RGB in [0, 1].
"""

from __future__ import annotations

import keras
from keras import ops

from srkeras.models.layers import PixelShuffle
from srkeras.models.sizing import EdgePad

# srmd-ncnn-vulkan src/srmd_preproc.comp ``degradation_vector``
DEGRADATION_VECTOR = (
    -1.12360956e-08, -1.36899159e-08, 1.85637958e-02, 2.86066886e-08, 3.35292965e-02,
    8.37272935e-08, -2.54424009e-07, -3.16234976e-02, -1.35169253e-02, -1.10466090e-08,
    3.84753793e-02, 3.79465739e-08, -2.44916752e-01, -8.02213490e-01, -5.40549755e-01,
)  # fmt: skip
PREPADDING = 12
MAX_NOISE_LEVEL = 75  # the paper's range of sigma (the ncnn runtime exposes 0..10)


@keras.saving.register_keras_serializable(package="srkeras")
class ConstantChannels(keras.layers.Layer):
    """Append channels holding the constants ``values`` at every pixel (SRMD's degradation maps)."""

    def __init__(self, values, **kwargs):
        super().__init__(**kwargs)
        self.values = [float(v) for v in values]

    def call(self, x):
        shape = ops.shape(x)
        maps = ops.ones((shape[0], shape[1], shape[2], 1), dtype=x.dtype) * ops.convert_to_tensor(self.values, x.dtype)
        return ops.concatenate([x, maps], axis=-1)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, h, w, None if c is None else c + len(self.values))

    def get_config(self):
        return {**super().get_config(), "values": list(self.values)}


def degradation_values(noise_level: int | None) -> list[float]:
    """The constant channels after RGB: the kernel PCA vector, then ``sigma/255`` (SRMD) or nothing (SRMDNF)."""
    if noise_level is None:
        return list(DEGRADATION_VECTOR)
    if isinstance(noise_level, bool) or int(noise_level) != noise_level or not 0 <= noise_level <= MAX_NOISE_LEVEL:
        raise ValueError(f"SRMD noise_level must be an integer sigma in 0..{MAX_NOISE_LEVEL} (or None: SRMDNF), got {noise_level!r}")
    return [*DEGRADATION_VECTOR, int(noise_level) / 255.0]


def build_srmd(scale: int = 4, noise_level: int | None = 3, num_feat: int = 128, num_conv: int = 12, name=None):
    """SRMD (``noise_level`` sigma in 0..75, the runtime's default 3) or SRMDNF (``noise_level=None``)."""
    inputs = keras.Input(shape=(None, None, 3), name="lr")
    x = EdgePad(PREPADDING, name="prepad")(inputs)
    x = ConstantChannels(degradation_values(noise_level), name="degradation_map")(x)
    for i in range(num_conv - 1):
        x = keras.layers.Conv2D(num_feat, 3, padding="same", activation="relu", name=f"conv{i}")(x)
    x = keras.layers.Conv2D(3 * scale * scale, 3, padding="same", name=f"conv{num_conv - 1}")(x)
    x = PixelShuffle(scale, name="shuffle")(x)
    outputs = keras.layers.Cropping2D(PREPADDING * scale, name="crop")(x)
    kind = "srmdnf" if noise_level is None else "srmd"
    return keras.Model(inputs, outputs, name=name or f"{kind}_x{scale}")
