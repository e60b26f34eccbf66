"""waifu2x (nagadomi, https://github.com/nagadomi/waifu2x, MIT): ``upconv_7`` and ``cunet`` as the
ncnn runtime (waifu2x-ncnn-vulkan, nihui) runs them.

Both networks use unpadded ("valid") convolutions: the runtime replicate-pads the LR tile by
``prepadding`` px (7 for upconv_7; cunet: 18 at x2, 28 at x1), plus bottom/right rows that make the
tile a multiple of 2 (x2) or 4 (x1) for cunet's stride-2 levels, and crops the output to ``s*h x s*w``.
:class:`EdgePad` and :class:`CropToScale` do the same inside the model, so a model maps ``h x w`` to
``s*h x s*w`` like every other generator and serving needs no pre-padding.

* ``upconv_7`` (waifu2x ``lib/srcnn.lua`` ``upconv_7``): six 3x3 convs (16, 32, 64, 128, 128, 256)
  with LeakyReLU(0.1), then a 4x4 stride-2 transposed conv cropped by 3 px (552,480 params).
* ``cunet`` (waifu2x ``cunet``/``upcunet``, also nunif ``waifu2x/models/cunet.py``): UNet1 (one
  stride-2 level, SE block) then UNet2 (two levels, three SE blocks) on UNet1's output, summed with
  UNet1's output cropped by 20 px. SE (Hu et al. 2018): global average pool, 1x1 conv to C/8, ReLU,
  1x1 conv, sigmoid, channel scaling; the pool makes the output depend on the whole (padded) image.

Input and output RGB in [0, 1]; output unclipped (the runtime clips when it writes 8-bit pixels).
"""

from __future__ import annotations

import keras

from srkeras.models.sizing import CropToScale, EdgePad

_LRELU = 0.1


def _conv(x, filters, name, kernel=3, strides=1, act=True):
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="valid", name=name)(x)
    return keras.layers.LeakyReLU(_LRELU, name=f"{name}_lrelu")(x) if act else x


def _deconv(x, filters, name, kernel=2, crop=0, act=True):
    x = keras.layers.Conv2DTranspose(filters, kernel, strides=2, padding="valid", name=name)(x)
    if crop:
        x = keras.layers.Cropping2D(crop, name=f"{name}_crop")(x)
    return keras.layers.LeakyReLU(_LRELU, name=f"{name}_lrelu")(x) if act else x


def build_waifu2x_upconv7(scale: int = 2, name=None):
    """waifu2x upconv_7 (x2 only): EdgePad(7), six valid 3x3 convs, 4x4/2 deconv cropped by 3."""
    if scale != 2:
        raise ValueError(f"waifu2x upconv_7 is x2 only, got scale {scale}")
    inputs = keras.Input(shape=(None, None, 3), name="lr")
    x = EdgePad(7, name="prepad")(inputs)
    for i, f in enumerate((16, 32, 64, 128, 128, 256), start=1):
        x = _conv(x, f, f"conv{i}")
    x = _deconv(x, 3, "conv7", kernel=4, crop=3, act=False)
    outputs = CropToScale(2, name="crop")([x, inputs])
    return keras.Model(inputs, outputs, name=name or "waifu2x_upconv7_x2")


def _se(x, channels, name):
    """Squeeze-and-excitation (reduction 8; the ncnn files' Pooling + two InnerProducts + Scale)."""
    z = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    z = keras.layers.Conv2D(channels // 8, 1, activation="relu", name=f"{name}_fc1")(z)
    z = keras.layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_fc2")(z)
    return keras.layers.Multiply(name=f"{name}_scale")([x, z])


def _unet1(x, deconv: bool):
    x1 = _conv(_conv(x, 32, "u1_conv1a"), 64, "u1_conv1b")
    x2 = _conv(x1, 64, "u1_down1", kernel=2, strides=2)
    x2 = _se(_conv(_conv(x2, 128, "u1_conv2a"), 64, "u1_conv2b"), 64, "u1_se2")
    x2 = _deconv(x2, 64, "u1_up2")
    x = keras.layers.Add(name="u1_skip1")([keras.layers.Cropping2D(4, name="u1_crop1")(x1), x2])
    x = _conv(x, 64, "u1_conv3")
    if deconv:
        return _deconv(x, 3, "u1_bottom", kernel=4, crop=3, act=False)
    return _conv(x, 3, "u1_bottom", act=False)


def _unet2(x):
    x1 = _conv(_conv(x, 32, "u2_conv1a"), 64, "u2_conv1b")
    x2 = _conv(x1, 64, "u2_down1", kernel=2, strides=2)
    x2 = _se(_conv(_conv(x2, 64, "u2_conv2a"), 128, "u2_conv2b"), 128, "u2_se2")
    x3 = _conv(x2, 128, "u2_down2", kernel=2, strides=2)
    x3 = _se(_conv(_conv(x3, 256, "u2_conv3a"), 128, "u2_conv3b"), 128, "u2_se3")
    x3 = _deconv(x3, 128, "u2_up3")
    x4 = keras.layers.Add(name="u2_skip2")([keras.layers.Cropping2D(4, name="u2_crop2")(x2), x3])
    x4 = _se(_conv(_conv(x4, 64, "u2_conv4a"), 64, "u2_conv4b"), 64, "u2_se4")
    x4 = _deconv(x4, 64, "u2_up4")
    x5 = keras.layers.Add(name="u2_skip1")([keras.layers.Cropping2D(16, name="u2_crop1")(x1), x4])
    return _conv(_conv(x5, 64, "u2_conv5"), 3, "u2_bottom", act=False)


def build_waifu2x_cunet(scale: int = 2, name=None):
    """waifu2x cunet: x2 (UpCUNet, prepadding 18, even tiles) or x1 (CUNet denoiser, 28, tiles of 4)."""
    if scale not in (1, 2):
        raise ValueError(f"waifu2x cunet is x1 or x2, got scale {scale}")
    inputs = keras.Input(shape=(None, None, 3), name="lr")
    x = EdgePad(18 if scale == 2 else 28, multiple=2 if scale == 2 else 4, name="prepad")(inputs)
    z = _unet1(x, deconv=scale == 2)
    y = _unet2(z)
    y = keras.layers.Add(name="residual")([keras.layers.Cropping2D(20, name="u1_crop_out")(z), y])
    outputs = CropToScale(scale, name="crop")([y, inputs])
    return keras.Model(inputs, outputs, name=name or f"waifu2x_cunet_x{scale}")
