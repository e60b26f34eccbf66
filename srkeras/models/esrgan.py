"""RRDBNet generator and VGG-style discriminator of ESRGAN (Wang et al., "ESRGAN: Enhanced
Super-Resolution Generative Adversarial Networks", ECCV Workshops 2018), following the official
code (xinntao/ESRGAN ``RRDBNet_arch.py``, BasicSR ``rrdbnet_arch.py`` / ``discriminator_arch.py``).

RRDBNet (Fig. 4): conv_first; 23 Residual-in-Residual Dense Blocks, each three dense blocks of five
3x3 convs (growth 32, LeakyReLU 0.2, no BN) whose output is scaled by beta = 0.2 before the residual
add (sec. 3.1), and the RRDB output scaled by 0.2 again; conv_body + long skip; upsampling stages of
nearest-neighbour x2 + conv + LeakyReLU (x4 = two stages); conv_hr + LeakyReLU; conv_last.
16,697,987 parameters at x4. Dense-block convs are initialised with He-normal weights multiplied by
0.1 (sec. 3.3, "smaller initialization"; :class:`~srkeras.models.layers.ScaledHeNormal`), the other
convs with Keras defaults (the official code keeps PyTorch defaults there).

Scales: x4 as in the paper; x2 is one nearest x2 stage and x3 one nearest x3 stage. (BasicSR
instead pixel-unshuffles the LR input for x2 and keeps two x2 stages; that needs even LR sizes, so
we use the single-stage form to keep odd sizes working.) ``pixel_unshuffle=True`` builds BasicSR's /
Real-ESRGAN's form for x2 and x1 (RealESRGAN_x2plus): :class:`PixelUnshuffle` by 4/s, conv_first on
``channels * (4/s)^2`` channels, two x2 stages; its LR sizes must be multiples of 4/s. Input and
output in [0, 1], as in BasicSR.

VGG-style discriminator (BasicSR ``VGGStyleDiscriminator``, input 128): five stages of
[conv3 s1, conv4 s2] with 64, 128, 256, 512, 512 channels, BN after every conv except the first,
LeakyReLU 0.2, then Dense(100), LeakyReLU, Dense(1) on the 4x4x512 map. Convs before BN have no
bias, as in BasicSR. Returns a logit; takes HR images in [0, 1] (no normalisation, as in BasicSR).
``input_size=256`` adds a sixth stage (BasicSR's 256 variant).
"""

from __future__ import annotations

import keras
from keras import ops

from srkeras.models.layers import ScaledHeNormal, upsample_stages

_BN = {"momentum": 0.9, "epsilon": 1e-5}


def _conv(filters, name, init=None, kernel_size=3, **kw):
    if init is not None:
        kw["kernel_initializer"] = init
    return keras.layers.Conv2D(filters, kernel_size, padding="same", name=name, **kw)


def _lrelu(name):
    return keras.layers.LeakyReLU(0.2, name=name)


def _dense_block(x, prefix, num_features, growth, residual_scale, init_scale):
    """Residual dense block (ESRGAN Fig. 4, right): 5 densely connected convs, out*beta + x."""
    features = [x]
    for i in range(1, 6):
        inp = features[0] if i == 1 else keras.layers.Concatenate(name=f"{prefix}_cat{i}")(features)
        out_ch = num_features if i == 5 else growth
        y = _conv(out_ch, f"{prefix}_conv{i}", ScaledHeNormal(init_scale))(inp)
        if i < 5:
            y = _lrelu(f"{prefix}_lrelu{i}")(y)
            features.append(y)
    y = keras.layers.Rescaling(residual_scale, name=f"{prefix}_beta")(y)
    return keras.layers.Add(name=f"{prefix}_add")([x, y])


@keras.saving.register_keras_serializable(package="srkeras")
class PixelUnshuffle(keras.layers.Layer):
    """(N, H, W, C) -> (N, H/r, W/r, C*r^2) in PyTorch's ``pixel_unshuffle`` channel order
    (``c_out = c*r^2 + dy*r + dx``), so PyTorch conv weights that follow it port unchanged."""

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, x):
        r = self.scale
        shape = ops.shape(x)
        c = x.shape[-1]
        y = ops.reshape(x, (shape[0], shape[1] // r, r, shape[2] // r, r, c))
        y = ops.transpose(y, (0, 1, 3, 5, 2, 4))  # N, H/r, W/r, C, dy, dx
        return ops.reshape(y, (shape[0], shape[1] // r, shape[2] // r, c * r * r))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.scale
        return (n, None if h is None else h // r, None if w is None else w // r, c * r * r)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def build_rrdbnet(
    scale: int = 4,
    channels: int = 3,
    num_features: int = 64,
    num_blocks: int = 23,
    growth: int = 32,
    residual_scale: float = 0.2,
    init_scale: float = 0.1,
    pixel_unshuffle: bool = False,
    name=None,
):
    """RRDBNet (Wang et al. 2018); ``num_blocks`` / ``num_features`` shrink it for tests (6 blocks is
    RealESRGAN_x4plus_anime_6B); ``pixel_unshuffle`` is Real-ESRGAN's x2/x1 input (see module doc)."""
    inputs = keras.Input(shape=(None, None, channels), name="lr")
    x = inputs
    if pixel_unshuffle:
        if scale not in (1, 2):
            raise ValueError(f"rrdbnet pixel_unshuffle applies to scales 1 and 2 (Real-ESRGAN), got {scale}")
        x = PixelUnshuffle(4 // scale, name="pixel_unshuffle")(x)
    stages = [2, 2] if pixel_unshuffle else upsample_stages(scale)
    feat = _conv(num_features, "conv_first")(x)
    x = feat
    for b in range(num_blocks):
        y = x
        for d in range(3):
            y = _dense_block(y, f"rrdb{b}_rdb{d}", num_features, growth, residual_scale, init_scale)
        y = keras.layers.Rescaling(residual_scale, name=f"rrdb{b}_beta")(y)
        x = keras.layers.Add(name=f"rrdb{b}_add")([x, y])
    x = _conv(num_features, "conv_body")(x)
    x = keras.layers.Add(name="long_skip")([feat, x])
    for i, r in enumerate(stages):
        x = keras.layers.UpSampling2D(r, interpolation="nearest", name=f"up{i}_nearest")(x)
        x = _lrelu(f"up{i}_lrelu")(_conv(num_features, f"up{i}_conv")(x))
    x = _lrelu("hr_lrelu")(_conv(num_features, "conv_hr")(x))
    outputs = _conv(channels, "conv_last")(x)
    return keras.Model(inputs, outputs, name=name or f"rrdbnet_x{scale}")


def build_esrgan_discriminator(input_size: int = 128, channels: int = 3, num_features: int = 64, name=None):
    """VGG-style discriminator (BasicSR ``VGGStyleDiscriminator``) for 128x128 (or 256x256) HR patches."""
    if input_size not in (128, 256):
        raise ValueError(f"esrgan_discriminator input_size must be 128 or 256 (BasicSR), got {input_size}")
    stages = 5 if input_size == 128 else 6
    inputs = keras.Input(shape=(input_size, input_size, channels), name="hr")
    x = inputs
    for s in range(stages):
        filters = min(num_features * 2**s, num_features * 8)
        if s == 0:
            x = _conv(filters, "conv0_0")(x)
        else:
            x = _conv(filters, f"conv{s}_0", use_bias=False)(x)
            x = keras.layers.BatchNormalization(**_BN, name=f"bn{s}_0")(x)
        x = _lrelu(f"lrelu{s}_0")(x)
        # k4 s2 'same' pads 1 on each side of an even input: PyTorch's padding=1.
        x = _conv(filters, f"conv{s}_1", kernel_size=4, strides=2, use_bias=False)(x)
        x = keras.layers.BatchNormalization(**_BN, name=f"bn{s}_1")(x)
        x = _lrelu(f"lrelu{s}_1")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = _lrelu("lrelu_dense")(keras.layers.Dense(100, name="dense1")(x))
    outputs = keras.layers.Dense(1, name="logit")(x)
    return keras.Model(inputs, outputs, name=name or f"esrgan_discriminator_{input_size}")
