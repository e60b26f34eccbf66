"""SwinIR (Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCVW 2021;
github.com/JingyunLiang/SwinIR ``models/network_swinir.py``, as copied in spandrel): exact to the
original forward pass, every upsampler.

The input is reflect-padded at the bottom/right to a multiple of ``window_size`` (``check_image_size``),
``(x - mean) * img_range`` (DIV2K RGB mean for 3 channels, 0 otherwise), optionally pixel-unshuffled
(``start_unshuffle``, spandrel's extension), ``conv_first``; patch embedding (LayerNorm over channels,
``patch_norm``); residual Swin transformer blocks (RSTB): Swin layers, a conv (``1conv`` / ``3conv``)
and a skip; LayerNorm, ``conv_after_body`` + skip; the tail; ``/ img_range + mean``; crop to
``scale`` x the input. A Swin layer (Liu et al., ICCV 2021, eqs. 3-4): pre-norm window multi-head
self-attention over ``window_size``-square windows with a relative position bias table, the odd
layers on windows shifted by half a window (cyclic roll + the attention mask of the padded size), then
a pre-norm MLP (exact GELU); LayerNorm eps 1e-5. Tails (``upsampler``): ``pixelshuffle`` (conv +
LeakyReLU 0.01, conv + pixel shuffle x2 per octave or one x3, conv), ``pixelshuffledirect`` (one conv
+ pixel shuffle, lightweight SR), ``nearest+conv`` (real-world SR: nearest x2 + conv + LeakyReLU 0.2 per
octave, conv, LeakyReLU, conv), ``''`` (x1 denoising / JPEG: the input plus a conv of the features).

Windows are anchored at the padded image's origin and the padding depends on the image size, so an
output pixel depends on where it lies in the image, not only on its neighbourhood: tiles do not
reproduce the untiled output (the attention layer declares ``reads_whole_image``; serve untiled).
Layer names are the PyTorch state-dict prefixes (:mod:`srkeras.pretrained.pth_named`). NHWC, [0, 1].
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from srkeras.models import windows
from srkeras.models.dat import RGB_MEAN, residual_conv
from srkeras.models.esrgan import PixelUnshuffle
from srkeras.models.layers import PixelShuffle
from srkeras.models.sizing import CropToScale, PadToMultiple

UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv", "")


@keras.saving.register_keras_serializable(package="srkeras")
class SwinWindowAttention(keras.layers.Layer):
    """(Shifted) window multi-head self-attention of one Swin layer on projected ``qkv`` (B, H, W, 3C),
    H and W multiples of ``window_size``: softmax(q k^T / sqrt(d) + B + mask) v per window, B from the
    ``relative_position_bias_table`` ((2w-1)^2, heads); ``shift``: windows rolled by -shift first (and the
    output rolled back), with the -100 mask between tokens the roll brought together."""

    #: Windows are anchored at the image origin: the output at a pixel depends on its position and on
    #: the image size (padding, masks), so tiles placed anywhere with a receptive-field margin do not
    #: reproduce the untiled output (:func:`srkeras.inference.receptive.reads_whole_image`; the model card).
    reads_whole_image = True

    def __init__(self, num_heads: int, window_size: int, shift: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.window_size, self.shift = int(num_heads), int(window_size), int(shift)

    def build(self, input_shape):
        n = (2 * self.window_size - 1) ** 2
        self.relative_position_bias_table = self.add_weight(
            name="relative_position_bias_table", shape=(n, self.num_heads),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02))  # fmt: skip

    def call(self, qkv):
        w, s, heads = self.window_size, self.shift, self.num_heads
        b, h, wd = ops.shape(qkv)[0], ops.shape(qkv)[1], ops.shape(qkv)[2]
        c, n = qkv.shape[-1] // 3, w * w
        if s:
            qkv = ops.roll(ops.roll(qkv, -s, axis=1), -s, axis=2)
        t = ops.transpose(ops.reshape(windows.partition(qkv, w, w), (-1, n, 3, heads, c // heads)), (2, 0, 3, 1, 4))
        q, k, v = t[0] * (c // heads) ** -0.5, t[1], t[2]
        bias = ops.take(self.relative_position_bias_table, windows.relative_position_index(w, w).reshape(-1), axis=0)
        attn = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
        attn = attn + ops.cast(ops.transpose(ops.reshape(bias, (n, n, heads)), (2, 0, 1))[None], attn.dtype)
        if s:
            mask = windows.shift_mask(h, wd, w, w, s, s, attn.dtype)  # of the padded size, as calculate_mask(x_size)
            attn = ops.reshape(
                ops.reshape(attn, (b, ops.shape(mask)[0], heads, n, n)) + mask[None, :, None], (-1, heads, n, n)
            )
        out = ops.reshape(ops.transpose(ops.matmul(ops.softmax(attn, axis=-1), v), (0, 2, 1, 3)), (-1, n, c))
        y = windows.merge(out, b, h, wd, w, w)
        return ops.roll(ops.roll(y, s, axis=1), s, axis=2) if s else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], input_shape[3] // 3)

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "window_size": self.window_size,
            "shift": self.shift,
        }


def _gelu(x):
    return keras.activations.gelu(x, approximate=False)


def _ln(name):
    return keras.layers.LayerNormalization(epsilon=1e-5, name=name)


def _conv(c, name, k=3):
    return keras.layers.Conv2D(c, k, padding="same", name=name)


def _swin_layer(x, p, dim, heads, window, shift, hidden, qkv_bias):
    """One SwinTransformerBlock: x + proj(W-MSA(norm1(x))); x + fc2(GELU(fc1(norm2(x)))). The linear
    maps act per pixel, so they commute with the roll and the window partition."""
    qkv = keras.layers.Dense(3 * dim, use_bias=qkv_bias, name=f"{p}.attn.qkv")(_ln(f"{p}.norm1")(x))
    a = SwinWindowAttention(heads, window, shift, name=f"{p}.attn")(qkv)
    x = keras.layers.Add(name=f"{p}.add1")([x, keras.layers.Dense(dim, name=f"{p}.attn.proj")(a)])
    y = _gelu(keras.layers.Dense(hidden, name=f"{p}.mlp.fc1")(_ln(f"{p}.norm2")(x)))
    return keras.layers.Add(name=f"{p}.add2")([x, keras.layers.Dense(dim, name=f"{p}.mlp.fc2")(y)])


def _tail(x, upsampler, tail_scale, dim, num_feat, out_ch):
    lrelu = keras.layers.LeakyReLU
    if upsampler == "pixelshuffledirect":
        return PixelShuffle(tail_scale, name="shuffle")(_conv(out_ch * tail_scale**2, "upsample.0")(x))
    x = lrelu(0.01)(_conv(num_feat, "conv_before_upsample.0")(x))  # nn.LeakyReLU() default slope
    if upsampler == "pixelshuffle":
        steps = [3] if tail_scale == 3 else [2] * (tail_scale.bit_length() - 1)
        for i, r in enumerate(steps):
            x = PixelShuffle(r, name=f"shuffle{i}")(_conv(num_feat * r * r, f"upsample.{2 * i}")(x))
        return _conv(out_ch, "conv_last")(x)
    for i in range(tail_scale.bit_length() - 1):  # nearest+conv
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"nearest{i + 1}")(x)
        x = lrelu(0.2)(_conv(num_feat, f"conv_up{i + 1}")(x))
    return _conv(out_ch, "conv_last")(lrelu(0.2)(_conv(num_feat, "conv_hr")(x)))


def build_swinir(scale: int = 4, in_chans: int = 3, embed_dim: int = 180, depths=(6, 6, 6, 6, 6, 6),
                 num_heads=(6, 6, 6, 6, 6, 6), window_size: int = 8, mlp_ratio: float = 2.0, qkv_bias: bool = True,
                 patch_norm: bool = True, upsampler: str | None = None, resi_connection: str = "1conv",
                 num_feat: int = 64, img_range: float = 1.0, start_unshuffle: int = 1, name=None):  # fmt: skip
    """SwinIR upscaling by ``scale`` (the tail upscales ``scale * start_unshuffle``). The defaults are
    classical SR (Liang et al. 2021, Table 2: 180 channels, 6 RSTBs of 6 layers, 6 heads, window 8);
    lightweight SR: ``embed_dim=60, depths=(6,)*4, num_heads=(6,)*4, upsampler='pixelshuffledirect'``;
    real-world SR: ``upsampler='nearest+conv'`` (x4; x8 large: 240 channels, 9 RSTBs, ``3conv``);
    denoising / JPEG (x1): ``upsampler=''`` (JPEG: window 7, ``img_range=255``).
    ``upsampler=None``: ``pixelshuffle``, or ``''`` at x1."""
    u = int(start_unshuffle)
    tail_scale = int(scale) * u
    upsampler = ("pixelshuffle" if tail_scale > 1 else "") if upsampler is None else upsampler
    ok = {"pixelshuffle": tail_scale == 3 or (tail_scale >= 2 and tail_scale & (tail_scale - 1) == 0),
          "pixelshuffledirect": tail_scale >= 1, "nearest+conv": tail_scale in (2, 4, 8),
          "": tail_scale == 1}.get(upsampler)  # fmt: skip
    if not ok:
        raise ValueError(f"swinir: upsampler {upsampler!r} does not upscale x{tail_scale} "
                         f"(known upsamplers: {', '.join(map(repr, UPSAMPLERS))})")  # fmt: skip
    if resi_connection not in ("1conv", "3conv") or len(depths) != len(num_heads):
        raise ValueError(
            f"swinir: resi_connection {resi_connection!r} (1conv, 3conv), depths {depths}, num_heads {num_heads}"
        )
    if any(embed_dim % h for h in num_heads):
        raise ValueError(f"swinir: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
    inputs = keras.Input(shape=(None, None, in_chans), name="lr")
    mean = np.asarray(RGB_MEAN if in_chans == 3 else (0.0,) * in_chans, np.float32)
    # check_image_size: reflect to a multiple of the window (times the unshuffle, so the features are too)
    x = (PadToMultiple(window_size * u, "reflect", name="check_image_size")(inputs) - mean) * img_range
    if u > 1:
        x = PixelUnshuffle(u, name="start_unshuffle")(x)
    first = _conv(embed_dim, "conv_first.1" if u > 1 else "conv_first")(
        x
    )  # the checkpoints' Sequential(unshuffle, conv)
    f = _ln("patch_embed.norm")(first) if patch_norm else first
    hidden = int(embed_dim * mlp_ratio + 1e-6)  # int(dim * mlp_ratio), robust to a ratio read back as hidden/dim
    for i, (depth, heads) in enumerate(zip(depths, num_heads)):
        res = f
        for j in range(depth):
            shift = window_size // 2 if j % 2 else 0
            f = _swin_layer(
                f, f"layers.{i}.residual_group.blocks.{j}", embed_dim, heads, window_size, shift, hidden, qkv_bias
            )
        f = keras.layers.Add(name=f"layers.{i}.add")(
            [res, residual_conv(f, f"layers.{i}.conv", embed_dim, resi_connection)]
        )
    f = _ln("norm")(f)
    f = keras.layers.Add(name="skip")([residual_conv(f, "conv_after_body", embed_dim, resi_connection), first])
    if upsampler == "":
        y = keras.layers.Add(name="residual")([x, _conv(in_chans, "conv_last")(f)])
    else:
        y = _tail(f, upsampler, tail_scale, embed_dim, num_feat, in_chans)
    y = y / img_range + mean
    return keras.Model(inputs, CropToScale(int(scale), name="crop")([y, inputs]), name=name or f"swinir_x{scale}")


def shuffle_layers(upsampler: str, tail_scale: int) -> dict:
    """``{conv layer: r}`` of the convs followed by a pixel shuffle (their PyTorch output channels are
    reordered CRD -> DCR when loading)."""
    if upsampler == "pixelshuffledirect":
        return {"upsample.0": tail_scale}
    if upsampler == "pixelshuffle":
        return (
            {"upsample.0": 3}
            if tail_scale == 3
            else {f"upsample.{2 * i}": 2 for i in range(tail_scale.bit_length() - 1)}
        )
    return {}
