"""Image transformation network of Johnson et al., "Perceptual Losses for Real-Time Style Transfer
and Super-Resolution", ECCV 2016 (super-resolution network, supplementary material Table 2).

conv9 (64) - BN - ReLU; 4 residual blocks [conv3 - BN - ReLU - conv3 - BN, + identity] (the
supplementary's residual block, after Gross & Wilber); log2(f) fractionally-strided 3x3 convs of
stride 1/2 (``Conv2DTranspose(64, 3, strides=2)``) each followed by BN - ReLU; conv9 to 3 channels
and a scaled tanh, here ``(tanh(x) + 1) / 2`` so the output lies in [0, 1] (the paper scales to
[0, 255]). f = 4 and 8 in the paper; f = 2 (one upsampling block) is also accepted.

Padding is 'same' everywhere (the style-transfer variant's valid convs with cropped residuals are not
used for SR), so the output is exactly f times the LR size for any H, W. The input is used in [0, 1]
as is: BN after the first conv makes a fixed input affine normalisation redundant.
"""

from __future__ import annotations

import keras

_BN = {"momentum": 0.9, "epsilon": 1e-5}


def build_johnson(scale: int = 4, channels: int = 3, num_blocks: int = 4, num_features: int = 64, name=None):
    """Johnson et al. 2016 SR network for upsampling factor ``scale`` (2, 4 or 8)."""
    inputs = keras.Input(shape=(None, None, channels), name="lr")
    x = keras.layers.Conv2D(num_features, 9, padding="same", name="conv_first")(inputs)
    x = keras.layers.BatchNormalization(**_BN, name="bn_first")(x)
    x = keras.layers.ReLU(name="relu_first")(x)
    for b in range(num_blocks):
        y = keras.layers.Conv2D(num_features, 3, padding="same", name=f"block{b}_conv1")(x)
        y = keras.layers.BatchNormalization(**_BN, name=f"block{b}_bn1")(y)
        y = keras.layers.ReLU(name=f"block{b}_relu")(y)
        y = keras.layers.Conv2D(num_features, 3, padding="same", name=f"block{b}_conv2")(y)
        y = keras.layers.BatchNormalization(**_BN, name=f"block{b}_bn2")(y)
        x = keras.layers.Add(name=f"block{b}_add")([x, y])
    for i in range(int(scale).bit_length() - 1):
        x = keras.layers.Conv2DTranspose(num_features, 3, strides=2, padding="same", name=f"up{i}_deconv")(x)
        x = keras.layers.BatchNormalization(**_BN, name=f"up{i}_bn")(x)
        x = keras.layers.ReLU(name=f"up{i}_relu")(x)
    x = keras.layers.Conv2D(channels, 9, padding="same", activation="tanh", name="conv_last")(x)
    outputs = keras.layers.Rescaling(0.5, offset=0.5, name="to_unit_range")(x)
    return keras.Model(inputs, outputs, name=name or f"johnson_x{scale}")
