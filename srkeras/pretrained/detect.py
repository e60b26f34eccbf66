"""Which network a PyTorch state dict belongs to, and its hyper-parameters, from key names and
tensor shapes alone (the way spandrel, MIT, chaiNNer-org/spandrel, detects architectures).

:func:`srkeras.pretrained.statedict.canonical` unwraps the checkpoint (``params_ema`` / ``params`` / ``state_dict`` / ``model`` /
``net``, a single-key wrapper) and strips a ``module.`` / ``netG.`` prefix shared by every key.
:func:`detect` tries one detector per architecture: each has key sets ("signatures") of which one
must be present in full, and a reader that derives the hyper-parameters from shapes. Unknown
layouts raise :class:`UnknownArchitectureError` listing the closest candidates and the keys that did
not match (:func:`closest`). ``convertible`` says whether the layout is one srkeras' Keras builder
takes; :func:`srkeras.pretrained.pth.identify` also needs a converter for the architecture. The
others are reported with their hyper-parameters, never faked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from srkeras.pretrained.errors import ShapeMismatchError, UnknownArchitectureError


@dataclass(frozen=True)
class Detection:
    arch: str  # srkeras name (``rrdbnet``) or the architecture's own (``swinir``)
    name: str  # human-readable
    scale: int
    config: dict = field(default_factory=dict)
    convertible: bool = False
    layout: str = ""

    def describe(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in self.config.items())
        layout = f", {self.layout} key layout" if self.layout else ""
        return f"{self.name} x{self.scale}{layout} ({hp})"


@dataclass(frozen=True)
class Detector:
    arch: str
    name: str
    signatures: tuple  # tuples of keys; one must be present in full
    read: Callable  # (state dict, source) -> Detection


# --- helpers -----------------------------------------------------------------------------------


def shape(sd, key: str, ndim: int | None = None, source: str = "") -> tuple[int, ...]:
    if key not in sd:
        raise UnknownArchitectureError(f"{source}: missing key {key!r}")
    s = tuple(int(n) for n in np.shape(sd[key]))
    if (ndim is not None and len(s) != ndim) or 0 in s:
        layout = "a conv kernel (out, in, kh, kw)" if ndim == 4 else f"a {ndim or 'non-empty'}-D tensor"
        raise ShapeMismatchError(f"{source}: {key} has shape {s}, not that of {layout}")
    return s


#: Longest module sequence a key may number (``layers.N``, ``body.N``): real networks use < 150;
#: a hostile ``layers.999999.x`` would otherwise make detection loop a million times.
MAX_SEQ = 512


def seq_len(sd, prefix: str) -> int:
    """1 + the largest ``N`` of keys ``prefix.N.*`` (0 if none), as spandrel's ``get_seq_len``."""
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    found = [int(m[1]) if len(m[1]) < 7 else MAX_SEQ for k in sd if (m := pat.match(k))]
    n = max(found) + 1 if found else 0
    if n > MAX_SEQ:
        raise UnknownArchitectureError(f"keys number {prefix}.N up to {max(found)}: more than {MAX_SEQ} is not a real network")
    return n


def scale_and_channels(out_ch: int, in_ch: int, source: str) -> tuple[int, int]:
    """``(s, c)`` with ``s * s * c == out_ch`` (a pixel-shuffle conv), ``c`` tried as in_ch, 3, 4, 1."""
    for c in (in_ch, 3, 4, 1):
        if c and out_ch % c == 0 and math.isqrt(out_ch // c) ** 2 == out_ch // c:
            return math.isqrt(out_ch // c), c
    raise UnknownArchitectureError(f"{source}: a pixel-shuffle conv with {out_ch} outputs is not s*s*channels")


def shuffle_upsampler(sd, prefix: str, source: str) -> tuple[int, int]:
    """``(scale, features)`` of an ``Upsample`` (conv to 4nf / 9nf + pixel shuffle, repeated)."""
    scale, nf = 1, 0
    for i in range(0, 10, 2):
        if f"{prefix}.{i}.weight" not in sd:
            break
        out, nf = shape(sd, f"{prefix}.{i}.weight", 4, source)[:2]
        scale *= math.isqrt(out // nf)
    return scale, nf


# --- RRDBNet (ESRGAN, BSRGAN/RealSR, Real-ESRGAN) ----------------------------------------------

_OLD_RRDB = {"trunk_conv": "conv_body", "upconv1": "conv_up1", "upconv2": "conv_up2", "upconv3": "conv_up3",
             "HRconv": "conv_hr"}  # fmt: skip


def rrdb_new_layout(sd: dict) -> dict:
    """An RRDBNet state dict in BasicSR's names, from the ESRGAN repo's (``RRDB_trunk``, ``HRconv``)
    or the original sequential ones (``model.0``, ``model.1.sub.N.RDBd.convk.0``, ``model.3``...)."""
    if "model.0.weight" in sd:
        return _rrdb_from_sequential(sd)
    out = {}
    for k, v in sd.items():
        m = re.match(r"RRDB_trunk\.(\d+)\.RDB(\d)\.(.*)", k)
        if m:
            k = f"body.{m[1]}.rdb{m[2]}.{m[3]}"
        else:
            head, _, rest = k.partition(".")
            k = f"{_OLD_RRDB.get(head, head)}.{rest}"
        out[k] = v
    return out


def _rrdb_from_sequential(sd: dict) -> dict:
    nb = seq_len(sd, "model.1.sub") - 1
    tail = sorted({int(m[1]) for k in sd if (m := re.match(r"model\.(\d+)\.(weight|bias)$", k)) and int(m[1]) > 1})
    names = {0: "conv_first"} | {j: f"conv_up{i + 1}" for i, j in enumerate(tail[:-2])}
    names |= dict(zip(tail[-2:], ("conv_hr", "conv_last")))
    out = {}
    for k, v in sd.items():
        m = re.match(r"model\.1\.sub\.(\d+)\.(.*)$", k)
        if m and m[1] == str(nb):
            k = f"conv_body.{m[2]}"
        elif m:
            k = re.sub(r"^RDB(\d)\.conv(\d)\.0\.", r"rdb\1.conv\2.", m[2])
            k = f"body.{m[1]}.{k}"
        elif (m := re.match(r"model\.(\d+)\.(.*)$", k)) and int(m[1]) in names:
            k = f"{names[int(m[1])]}.{m[2]}"
        out[k] = v
    return out


def _rrdbnet(sd, source):
    layout = "sequential (ESRGAN)" if "model.0.weight" in sd else "ESRGAN repo" if "trunk_conv.weight" in sd else "BasicSR"
    plus = any(".conv1x1." in k for k in sd)
    sd = rrdb_new_layout(sd)
    nf, in_ch = shape(sd, "conv_first.weight", 4, source)[:2]
    out_ch = shape(sd, "conv_last.weight", 4, source)[0]
    n_up = sum(1 for k in sd if re.match(r"conv_up\d\.weight$", k))
    unshuffle = math.isqrt(in_ch // out_ch) if in_ch in (4 * out_ch, 16 * out_ch) else 1
    config = {"num_blocks": seq_len(sd, "body"), "num_features": nf, "growth": shape(sd, "body.0.rdb1.conv1.weight", 4, source)[0],
              "in_channels": in_ch // unshuffle**2, "out_channels": out_ch, "pixel_unshuffle": unshuffle}  # fmt: skip
    if plus:
        config["plus"] = True
    ok = n_up == 2 and out_ch == 3 and in_ch // unshuffle**2 == 3 and not plus
    return Detection("rrdbnet", "RRDBNet (ESRGAN / Real-ESRGAN)", 2**n_up // unshuffle, config, ok, layout)


# --- SRVGGNetCompact, EDSR, MSRResNet, RCAN ----------------------------------------------------


def _srvgg(sd, source):
    if len(shape(sd, "body.1.weight", None, source)) != 1:
        raise UnknownArchitectureError(f"{source}: body.1.weight is not a PReLU slope vector")
    last = seq_len(sd, "body") - 1
    nf, in_ch = shape(sd, "body.0.weight", 4, source)[:2]
    s, out_ch = scale_and_channels(shape(sd, f"body.{last}.weight", 4, source)[0], in_ch, source)
    config = {"num_feat": nf, "num_conv": (last - 2) // 2, "in_channels": in_ch, "out_channels": out_ch}
    return Detection("srvgg_compact", "SRVGGNetCompact (Real-ESRGAN Compact)", s, config, in_ch == out_ch == 3)


def _edsr(sd, source):
    s, nf = shuffle_upsampler(sd, "upsample", source)
    config = {"num_feat": nf, "num_block": seq_len(sd, "body"), "res_scale": 0.1 if nf == 256 else 1.0}
    return Detection("edsr", "EDSR (BasicSR)", s, config, True)


def _edsr_original(sd, source):
    """EDSR in its authors' code (sanghyun-son/EDSR-PyTorch): ``head.0``, ``body.N.body.{0,2}``,
    ``body.{n_resblocks}``, ``tail.0.{0,2,4}`` (Upsampler), ``tail.1``, MeanShifts ``sub_mean`` / ``add_mean``."""
    s, nf = shuffle_upsampler(sd, "tail.0", source)
    config = {"n_feats": nf, "n_resblocks": seq_len(sd, "body") - 1, "n_colors": shape(sd, "tail.1.weight", 4, source)[0],
              "res_scale": 0.1 if nf == 256 else 1.0, "rgb_range": rcan_rgb_range(sd)}  # fmt: skip
    return Detection("edsr", "EDSR (Lim et al. 2017)", s, config, config["n_colors"] == 3, "EDSR-PyTorch")


_OLD_MSR = {"recon_trunk": "body", "HRconv": "conv_hr"}


def msrresnet_basicsr_names(sd: dict) -> dict:
    """An MSRResNet state dict in BasicSR's names, from pre-1.0 BasicSR's (``recon_trunk``, ``HRconv``)."""
    out = {}
    for k, v in sd.items():
        head, dot, rest = k.partition(".")
        out[f"{_OLD_MSR.get(head, head)}{dot}{rest}"] = v
    return out


def _msrresnet(sd, source):
    old = "recon_trunk.0.conv1.weight" in sd
    sd = msrresnet_basicsr_names(sd)
    nf, in_ch = shape(sd, "conv_first.weight", 4, source)[:2]
    up1 = shape(sd, "upconv1.weight", 4, source)[0]
    s = 4 if "upconv2.weight" in sd else 3 if up1 == 9 * nf else 2
    config = {"num_feat": nf, "num_block": seq_len(sd, "body"), "in_channels": in_ch,
              "out_channels": shape(sd, "conv_last.weight", 4, source)[0]}  # fmt: skip
    ok = in_ch == config["out_channels"] == 3 and up1 == (9 if s == 3 else 4) * nf
    return Detection("msrresnet", "MSRResNet (BasicSR SRResNet)", s, config, ok, "ESRGAN repo" if old else "BasicSR")


#: RCAN's ``sub_mean`` bias is ``-rgb_range * mean`` (DIV2K mean, about 0.44): about -115 for
#: rgb_range 255, -0.45 for 1. Biases below this (the two's geometric middle) mean rgb_range 1.
RGB_RANGE_SPLIT = 16.0


def rcan_rgb_range(sd) -> int:
    """The pixel range RCAN (or EDSR-PyTorch's EDSR) was trained on (its input is multiplied by it): 1 without a MeanShift
    (``sub_mean``), else read from the MeanShift bias (:data:`RGB_RANGE_SPLIT`); 255 -- the
    original's default, which spandrel 0.4.2 always assumes -- when the bias says nothing."""
    if "sub_mean.bias" not in sd:
        return 1
    b = np.abs(np.asarray(sd["sub_mean.bias"], np.float64))
    if not b.size or not np.isfinite(b).all() or b.max() == 0:
        return 255
    return 1 if b.max() < RGB_RANGE_SPLIT else 255


def _rcan(sd, source):
    unshuffle = seq_len(sd, "head") > 1
    head = shape(sd, f"head.{1 if unshuffle else 0}.weight", 4, source)
    s, nf = shuffle_upsampler(sd, "tail.0", source)
    colors = shape(sd, "tail.1.weight", 4, source)[0]
    if unshuffle:
        s = 4 // max(1, math.isqrt(head[1] // colors))
    config = {"n_resgroups": seq_len(sd, "body") - 1, "n_resblocks": seq_len(sd, "body.0.body") - 1, "n_feats": nf,
              "reduction": nf // shape(sd, "body.0.body.0.body.3.conv_du.0.weight", 4, source)[0],
              "kernel_size": head[-1], "n_colors": colors, "unshuffle": unshuffle,
              "norm": "sub_mean.weight" in sd, "rgb_range": rcan_rgb_range(sd)}  # fmt: skip
    # spandrel's unshuffle_mod: x1 / x2 as pixel-unshuffle by 4/s before a x4 network
    ok = colors == 3 and head[-1] % 2 == 1 and head[1] == colors * ((4 // s) ** 2 if unshuffle else 1)
    ok = ok and (s in (1, 2) or not unshuffle)
    return Detection("rcan", "RCAN (Zhang et al. 2018)", s, config, ok)


# --- transformers: SwinIR, DAT, OmniSR -----------------------------------------------------------


def _upsampler(sd, in_ch, source) -> tuple[str, int]:
    """SwinIR / DAT tails: ``(upsampler, scale)``."""
    if "conv_before_upsample.0.weight" in sd:
        if "conv_up1.weight" in sd:
            return "nearest+conv", 2 ** sum(1 for k in sd if re.match(r"conv_up\d\.weight$", k))
        return "pixelshuffle", shuffle_upsampler(sd, "upsample", source)[0]
    if "upsample.0.weight" in sd:
        return "pixelshuffledirect", scale_and_channels(shape(sd, "upsample.0.weight", 4, source)[0], in_ch, source)[0]
    return "", 1


def _swinir(sd, source):
    pre = "conv_first.1.weight" if "conv_first.1.weight" in sd else "conv_first.weight"
    dim, in_ch = shape(sd, pre, 4, source)[:2]
    unshuffle = math.isqrt(in_ch // 3) if pre == "conv_first.1.weight" else 1
    upsampler, s = _upsampler(sd, in_ch // unshuffle**2, source)
    b0 = "layers.0.residual_group.blocks.0."
    window = math.isqrt(shape(sd, b0 + "attn.relative_position_index", 2, source)[0])
    layers = seq_len(sd, "layers")
    config = {"embed_dim": dim, "depths": [seq_len(sd, f"layers.{i}.residual_group.blocks") for i in range(layers)],
              "num_heads": [shape(sd, f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table", 2, source)[1]
                            for i in range(layers)],
              "window_size": window, "mlp_ratio": shape(sd, b0 + "mlp.fc1.bias", 1, source)[0] / dim,
              "upsampler": upsampler, "resi_connection": "1conv" if "conv_after_body.weight" in sd else "3conv",
              "in_chans": in_ch // unshuffle**2, "start_unshuffle": unshuffle,
              "qkv_bias": b0 + "attn.qkv.bias" in sd, "patch_norm": "patch_embed.norm.weight" in sd,
              # not stored: the JPEG artefact models (the only ones with window 7) work on [0, 255] (as spandrel)
              "img_range": 255.0 if window == 7 else 1.0}  # fmt: skip
    if "conv_before_upsample.0.weight" in sd:
        config["num_feat"] = shape(sd, "conv_before_upsample.0.weight", 4, source)[0]
    ok = "absolute_pos_embed" not in sd and s % unshuffle == 0 and (upsampler != "" or unshuffle == 1)
    return Detection("swinir", "SwinIR (Liang et al. 2021)", max(s // unshuffle, 1), config, ok)


def _dat_split(sd, source) -> list[int]:
    """DAT's split size: the last row of ``rpe_biases`` is ``(H_sp - 1, W_sp - 1)``; from shapes
    (``(2H-1)(2W-1)`` rows, ``HW`` window) when the values are not at hand (H <= W assumed)."""
    key = "layers.0.blocks.0.attn.attns.0."
    rpe = sd[key + "rpe_biases"]
    if np.size(rpe) and np.asarray(rpe).dtype.kind in "iuf":
        return [int(v) + 1 for v in np.asarray(rpe).reshape(-1, 2)[-1]]
    hw = shape(sd, key + "relative_position_index", 2, source)[0]
    total = (4 * hw + 1 - shape(sd, key + "rpe_biases", 2, source)[0]) // 2  # H + W
    h = (total - math.isqrt(max(total * total - 4 * hw, 0))) // 2
    return [h, total - h]


def _dat(sd, source):
    dim, in_ch = shape(sd, "conv_first.weight", 4, source)[:2]
    layers = seq_len(sd, "layers")
    depth = [seq_len(sd, f"layers.{i}.blocks") for i in range(layers)]
    heads = [shape(sd, f"layers.{i}.blocks.1.attn.temperature", 3, source)[0] if d >= 2
             else 2 * shape(sd, f"layers.{i}.blocks.0.attn.attns.0.pos.pos3.2.weight", 2, source)[0]
             for i, d in enumerate(depth)]  # fmt: skip
    upsampler, s = _upsampler(sd, in_ch, source)
    config = {"embed_dim": dim, "depth": depth, "num_heads": heads, "split_size": _dat_split(sd, source),
              "expansion_factor": shape(sd, "layers.0.blocks.0.ffn.fc1.weight", 2, source)[0] / dim,
              "qkv_bias": "layers.0.blocks.0.attn.qkv.bias" in sd, "upsampler": upsampler,
              "resi_connection": "1conv" if "conv_after_body.weight" in sd else "3conv", "in_chans": in_ch}  # fmt: skip
    if upsampler == "pixelshuffle":
        config["num_feat"] = shape(sd, "conv_before_upsample.0.weight", 4, source)[0]
    light = len(depth) < 4
    name = "DAT-light (Chen et al. 2023)" if light else "DAT (Chen et al. 2023)"
    return Detection("dat_light" if light else "dat", name, s, config, _dat_ok(config, s))


def _dat_ok(config, scale: int) -> bool:
    """The tails dat_arch.py builds: one conv (any scale), or ``Upsample`` (2^n and 3)."""
    direct = config["upsampler"] == "pixelshuffledirect"
    return direct or (config["upsampler"] == "pixelshuffle" and (scale == 3 or scale >= 2 and not scale & (scale - 1)))


def _omnisr(sd, source):
    sd = {k: v for k, v in sd.items() if not k.endswith(("total_ops", "total_params"))}
    nf, in_ch = shape(sd, "input.weight", 4, source)[:2]
    s, out_ch = scale_and_channels(shape(sd, "up.0.weight", 4, source)[0], in_ch, source)
    bias_key = "residual_layer.0.residual_layer.0.layer.2.fn.rel_pos_bias.weight"
    pe = bias_key in sd
    window = (math.isqrt(shape(sd, bias_key, 2, source)[0]) + 1) // 2 if pe else 8
    config = {"num_feat": nf, "res_num": seq_len(sd, "residual_layer"),
              "block_num": seq_len(sd, "residual_layer.0.residual_layer") - 1, "window_size": window, "pe": pe,
              "bias": "input.bias" in sd, "in_channels": in_ch, "out_channels": out_ch}  # fmt: skip
    return Detection("omnisr", "OmniSR (Wang et al. 2023)", s, config, _omnisr_ok(config))


def _omnisr_ok(config) -> bool:
    return config["in_channels"] == config["out_channels"] == 3


# --- SPAN, Real-CUGAN ----------------------------------------------------------------------------


def _span(sd, source):
    nf, in_ch = shape(sd, "conv_1.sk.weight", 4, source)[:2]
    s, out_ch = scale_and_channels(shape(sd, "upsampler.0.weight", 4, source)[0], in_ch, source)
    config = {"feature_channels": nf, "in_channels": in_ch, "out_channels": out_ch, "norm": "no_norm" not in sd}
    # with norm, the original subtracts a 3-channel mean: only RGB input runs
    return Detection("span", "SPAN (Wan et al. 2024)", s, config, in_ch == 3 or not config["norm"])


def _realcugan(sd, source):
    in_ch = shape(sd, "unet1.conv1.conv.0.weight", 4, source)[1]
    config = {"pro": "pro" in sd, "fast": False}
    if "conv_final.weight" in sd:
        out_ch = shape(sd, "conv_final.weight", 4, source)[0] // 4
        if out_ch * 4 == in_ch:
            s, in_ch, config["fast"] = 2, in_ch // 4, True
        else:
            s = 4
    else:
        s = 3 if shape(sd, "unet1.conv_bottom.weight", 4, source)[2] == 5 else 2
        out_ch = shape(sd, "unet2.conv_bottom.weight", 4, source)[0]
    config |= {"in_channels": in_ch, "out_channels": out_ch}
    ok = not config["fast"] and in_ch == out_ch  # UpCunet2x/3x/4x as srkeras builds them (not 2x_fast)
    return Detection("realcugan", "Real-CUGAN (UpCunet)", s, config, ok)


# --- the detectors, most specific first ------------------------------------------------------------

_B0 = "layers.0.blocks.0."
DETECTORS = (
    Detector("dat", "DAT", (("conv_first.weight", "before_RG.1.weight", _B0 + "ffn.sg.conv.weight", _B0 + "attn.qkv.weight",
                              _B0 + "attn.attns.0.rpe_biases", _B0 + "attn.attns.0.relative_position_index",
                              _B0 + "attn.attns.0.pos.pos_proj.weight", "norm.weight"),), _dat),
    Detector("swinir", "SwinIR", (("layers.0.residual_group.blocks.0.norm1.weight", "conv_first.weight",
                                   "layers.0.residual_group.blocks.0.mlp.fc1.bias",
                                   "layers.0.residual_group.blocks.0.attn.relative_position_index"),
                                  ("layers.0.residual_group.blocks.0.norm1.weight", "conv_first.1.weight",
                                   "layers.0.residual_group.blocks.0.mlp.fc1.bias",
                                   "layers.0.residual_group.blocks.0.attn.relative_position_index")), _swinir),
    Detector("omnisr", "OmniSR", (("residual_layer.0.residual_layer.0.layer.0.fn.0.weight", "input.weight",
                                   "up.0.weight"),), _omnisr),
    Detector("span", "SPAN", (("conv_1.sk.weight", "block_1.c1_r.sk.weight", "block_1.c1_r.eval_conv.weight",
                               "block_1.c3_r.eval_conv.weight", "conv_cat.weight", "conv_2.sk.weight",
                               "upsampler.0.weight"),), _span),
    Detector("realcugan", "Real-CUGAN", (("unet1.conv1.conv.0.weight", "unet1.conv1_down.weight",
                                          "unet1.conv2.seblock.conv1.weight", "unet1.conv_bottom.weight",
                                          "unet2.conv1.conv.0.weight", "unet2.conv3.seblock.conv1.weight",
                                          "unet2.conv5.weight", "unet2.conv_bottom.weight"),), _realcugan),
    Detector("rcan", "RCAN", (("head.0.weight", "tail.1.weight", "body.0.body.0.body.0.weight",
                               "body.0.body.0.body.3.conv_du.0.weight"),
                              ("head.1.weight", "tail.1.weight", "body.0.body.0.body.0.weight",
                               "body.0.body.0.body.3.conv_du.0.weight")), _rcan),
    Detector("rrdbnet", "RRDBNet", (("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight", "conv_last.weight"),
                                    ("conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "trunk_conv.weight",
                                     "conv_last.weight"),
                                    ("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight")), _rrdbnet),
    Detector("edsr", "EDSR", (("conv_first.weight", "body.0.conv1.weight", "conv_after_body.weight",
                               "upsample.0.weight", "conv_last.weight"),), _edsr),
    Detector("edsr_original", "EDSR (EDSR-PyTorch)", (("head.0.weight", "body.0.body.0.weight", "body.0.body.2.weight",
                                                       "tail.0.0.weight", "tail.1.weight"),), _edsr_original),
    Detector("msrresnet", "MSRResNet", (("conv_first.weight", "body.0.conv1.weight", "upconv1.weight", "conv_hr.weight",
                                         "conv_last.weight"),
                                        ("conv_first.weight", "recon_trunk.0.conv1.weight", "upconv1.weight",
                                         "HRconv.weight", "conv_last.weight")), _msrresnet),
    Detector("srvgg_compact", "SRVGGNetCompact", (("body.0.weight", "body.1.weight", "body.2.weight"),), _srvgg),
)
ARCHS = tuple(dict.fromkeys(d.arch for d in DETECTORS if d.arch != "edsr_original")) + ("dat_light",)


def detect(sd: dict, source: str = "state dict") -> Detection:
    """The architecture of ``sd`` with its hyper-parameters; UnknownArchitectureError otherwise."""
    keys = set(sd)
    for det in DETECTORS:
        if any(keys.issuperset(sig) for sig in det.signatures):
            try:
                return det.read(sd, source)
            except UnknownArchitectureError as e:
                msg = str(e) if str(e).startswith(f"{source}: ") else f"{source}: {e}"
                raise UnknownArchitectureError(f"{msg} (keys of a {det.name} state dict)") from None
    raise UnknownArchitectureError(f"{source}: keys match no known architecture; {closest(sd)}")


def _module(key: str) -> str:
    """A key's top-level module with numbers generalised (``block_2.c1_r.sk.weight`` -> ``block_N``)."""
    return re.sub(r"\d+", "N", key.split(".")[0])


def closest(sd: dict, n: int = 3) -> str:
    """The ``n`` detectors whose signature keys ``sd`` holds the most of (at least one), with the
    keys missing, and the keys of ``sd`` in modules that none of their signatures names."""
    keys = set(sd)
    scored = []
    for det in DETECTORS:
        sig = max(det.signatures, key=lambda s: len(keys.intersection(s)) / len(s))
        scored.append((len(keys.intersection(sig)) / len(sig), det, sig))
    scored = sorted((t for t in scored if t[0] > 0), key=lambda t: -t[0])[:n]
    if not scored:
        return f"no known architecture shares a key with it (first keys: {', '.join(sorted(keys)[:5])})"
    parts = []
    for frac, det, sig in scored:
        missing = [k for k in sig if k not in keys]
        parts.append(f"{det.name} ({frac:.0%} of its keys; missing {', '.join(missing[:4])}"
                     f"{', ...' if len(missing) > 4 else ''})")
    modules = {_module(k) for _f, _d, sig in scored for k in sig}
    stray = sorted(k for k in keys if _module(k) not in modules)
    shown = ", ".join(stray[:6]) + (f" and {len(stray) - 6} more" if len(stray) > 6 else "")
    return f"closest: {'; '.join(parts)}; checkpoint keys unmatched by these: {shown or 'none'}"
