"""SRResNet generator and SRGAN discriminator (Ledig et al., "Photo-Realistic Single Image
Super-Resolution Using a Generative Adversarial Network", CVPR 2017, Fig. 4 and sec. 3).

Generator (SRResNet, also SRGAN's G): conv9 (64) + PReLU; B = 16 residual blocks
[conv3 - BN - PReLU - conv3 - BN, + identity]; conv3 - BN + the long skip from the first conv;
two sub-pixel stages [conv3 (256) - PixelShuffle x2 - PReLU] for x4 (one x3 stage for x3, one x2
stage for x2); conv9 to C channels. PReLU is per channel with ``shared_axes=[1, 2]`` so it runs on
dynamic H, W. The x4 model has 1,550,659 trainable parameters: convolutions with biases, BN
gamma/beta (moving mean/variance are non-trainable), one 64-parameter PReLU per block, after the
first conv and after each shuffle.

Ranges: the paper scales LR inputs to [0, 1] and HR targets to [-1, 1] (sec. 3.2); the generator
takes the [0, 1] LR image and its last conv predicts the [-1, 1] image, mapped to [0, 1] by a final
``Rescaling(0.5, offset=0.5)`` layer, so the model obeys the toolkit's [0, 1] -> [0, 1] convention.

Discriminator (Fig. 4, bottom): eight 3x3 convs, 64 -> 512 channels doubling every two layers,
strides 1, 2, 1, 2, ...; LeakyReLU(0.2); BN after every conv but the first; Dense(1024), LeakyReLU,
Dense(1). It returns a logit (no sigmoid; the adversarial losses take logits). Input: an HR image
in [0, 1] of fixed size ``input_size`` (96 in the paper; the dense layer needs a fixed size),
mapped to the paper's [-1, 1] by a ``Rescaling`` layer.
"""

from __future__ import annotations

import keras

from srkeras.models.layers import PixelShuffle, upsample_stages

_BN = {"momentum": 0.9, "epsilon": 1e-5}  # PyTorch defaults (momentum 0.1 there), as in SRGAN ports


def _prelu(name):
    # alpha 0.25 as in He et al. 2015 (and PyTorch's default); Keras' default would start as ReLU.
    return keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25), shared_axes=[1, 2], name=name)


def build_srresnet(scale: int = 4, channels: int = 3, num_blocks: int = 16, num_features: int = 64, name=None):
    """SRResNet (Ledig et al. 2017, Fig. 4 top); ``num_blocks``/``num_features`` shrink it for tests."""
    inputs = keras.Input(shape=(None, None, channels), name="lr")
    x = keras.layers.Conv2D(num_features, 9, padding="same", name="conv_first")(inputs)
    x = skip = _prelu("prelu_first")(x)
    for b in range(num_blocks):
        y = keras.layers.Conv2D(num_features, 3, padding="same", name=f"block{b}_conv1")(x)
        y = keras.layers.BatchNormalization(**_BN, name=f"block{b}_bn1")(y)
        y = _prelu(f"block{b}_prelu")(y)
        y = keras.layers.Conv2D(num_features, 3, padding="same", name=f"block{b}_conv2")(y)
        y = keras.layers.BatchNormalization(**_BN, name=f"block{b}_bn2")(y)
        x = keras.layers.Add(name=f"block{b}_add")([x, y])
    x = keras.layers.Conv2D(num_features, 3, padding="same", name="conv_body")(x)
    x = keras.layers.BatchNormalization(**_BN, name="bn_body")(x)
    x = keras.layers.Add(name="long_skip")([skip, x])
    for i, r in enumerate(upsample_stages(scale)):
        x = keras.layers.Conv2D(num_features * r * r, 3, padding="same", name=f"up{i}_conv")(x)
        x = PixelShuffle(r, name=f"up{i}_shuffle")(x)
        x = _prelu(f"up{i}_prelu")(x)
    x = keras.layers.Conv2D(channels, 9, padding="same", name="conv_last")(x)
    outputs = keras.layers.Rescaling(0.5, offset=0.5, name="to_unit_range")(x)
    return keras.Model(inputs, outputs, name=name or f"srresnet_x{scale}")


def build_srgan_discriminator(input_size: int = 96, channels: int = 3, num_features: int = 64, name=None):
    """SRGAN discriminator (Ledig et al. 2017, Fig. 4 bottom) for ``input_size`` x ``input_size`` HR
    patches in [0, 1]; outputs one logit per image."""
    inputs = keras.Input(shape=(input_size, input_size, channels), name="hr")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_signed_range")(inputs)
    for i in range(8):
        filters = num_features * 2 ** (i // 2)
        strides = 1 if i % 2 == 0 else 2
        x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", name=f"conv{i}")(x)
        if i > 0:
            x = keras.layers.BatchNormalization(**_BN, name=f"bn{i}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"lrelu{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(1024, name="dense1")(x)
    x = keras.layers.LeakyReLU(0.2, name="lrelu_dense")(x)
    outputs = keras.layers.Dense(1, name="logit")(x)
    return keras.Model(inputs, outputs, name=name or f"srgan_discriminator_{input_size}")
