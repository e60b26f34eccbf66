"""ESPCN (Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
Convolutional Neural Network", CVPR 2016).

All convolutions run at LR resolution; the last one outputs ``s^2 * C`` channels that the periodic
shuffling operator PS (eq. 4) rearranges into the HR image. Configuration of sec. 3.2:
(f1, n1) = (5, 64), (f2, n2) = (3, 32), f3 = 3, tanh activations. Linear output (PS of the last conv),
input and output in [0, 1]. The paper trains on the Y channel (``channels=1``, default), which also
makes it the cheapest model in the zoo (about 0.02 M parameters): the fast CPU default.
"""

from __future__ import annotations

import keras

from srkeras.models.layers import PixelShuffle


def build_espcn(scale: int = 3, channels: int = 1, n1: int = 64, n2: int = 32, activation: str = "tanh", name=None):
    """ESPCN: conv5 (n1) - conv3 (n2) - conv3 (s^2*C) - PixelShuffle(s)."""
    colour = "y" if channels == 1 else "rgb"
    inputs = keras.Input(shape=(None, None, channels), name="lr")
    x = keras.layers.Conv2D(n1, 5, padding="same", activation=activation, name="conv1")(inputs)
    x = keras.layers.Conv2D(n2, 3, padding="same", activation=activation, name="conv2")(x)
    x = keras.layers.Conv2D(scale * scale * channels, 3, padding="same", name="conv3")(x)
    outputs = PixelShuffle(scale, name="pixel_shuffle")(x)
    return keras.Model(inputs, outputs, name=name or f"espcn_{colour}_x{scale}")
