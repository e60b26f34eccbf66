"""Map PyTorch state dicts of the original implementations onto srkeras models.

Handled (:mod:`srkeras.pretrained.detect` tells the architecture from the keys and shapes; ``arch``
given by the user must agree; detected architectures not listed here are refused by name):

* ``rrdbnet`` - BasicSR / Real-ESRGAN RRDBNet (``conv_first``, ``body.N.rdbM.convK``, ``conv_body``,
  ``conv_up1/2``, ``conv_hr``, ``conv_last``; RealESRGAN_x2plus pixel-unshuffle input: conv_first on
  12 channels) and ESRGAN's original names (``RRDB_trunk``, ``trunk_conv``, ``upconv1/2``, ``HRconv``)
  and sequential ones (``model.0``, ``model.1.sub.N.RDBd.convk.0``, ``model.3``...).
* ``srvgg_compact`` - Real-ESRGAN SRVGGNetCompact (``body.2k`` convs, ``body.2k+1`` PReLU slopes).
* ``edsr`` - BasicSR EDSR (``conv_first``, ``body.N.conv1/2``, ``conv_after_body``, ``upsample.K``,
  ``conv_last``) and EDSR-PyTorch's own layout (``sub_mean``, ``head.0``, ``body.N.body.{0,2}``,
  ``tail.0.K``, ``tail.1``, ``add_mean``; its rgb_range and mean read from the MeanShifts, renamed to
  BasicSR's: the same network); res_scale is not stored in weights: 0.1 for 256 features (EDSR full), else 1.
* ``msrresnet`` - BasicSR's MSRResNet (``conv_first``, ``body.N.conv1/2``, ``upconv1[/2]``, ``conv_hr``,
  ``conv_last``) and pre-1.0 BasicSR's names (``recon_trunk.N``, ``HRconv``); not srkeras' ``srresnet``
  (SRGAN's, with BN and PReLU).
* ``rcan`` - RCAN as yulunzhang/RCAN and EDSR-PyTorch lay it out (``sub_mean``, ``head.0``,
  ``body.G.body.B.body.{0,2,3.conv_du.0,3.conv_du.2}``, ``body.G.body.{n_resblocks}``,
  ``body.{n_resgroups}``, ``tail.0.K``, ``tail.1``, ``add_mean``), spandrel's variants without MeanShift
  and with a pixel-unshuffle head (``head.1``, x1/x2); rgb_range from the MeanShift bias
  (:func:`srkeras.pretrained.detect.rcan_rgb_range`).
* ``omnisr`` - OmniSR, ``dat_light`` - DAT-light (one group or few; any tail) and ``dat`` - DAT / DAT-S /
  DAT-2 (``conv_before_upsample``, ``upsample.K``, ``conv_last``): Keras layers named after the
  state-dict prefixes, loaded by name (:mod:`srkeras.pretrained.pth_named`).
* ``span`` - SPAN training checkpoints: each ``Conv3XC`` holds ``sk`` (1x1), ``conv.0/1/2`` (1x1, 3x3,
  1x1) and ``eval_conv``; the original's eval forward recomputes ``eval_conv`` from the others
  (``update_params``) before using it, so the stored one may be stale: the 3x3 conv loaded here is
  that recomputation (:func:`srkeras.pretrained.pth_custom.fuse_conv3xc`), never the stored ``eval_conv``. ``no_norm`` (a buffer):
  no mean subtraction or x255 at the input.
* ``realcugan`` - Real-CUGAN UpCunet2x/3x/4x (``unet1.*``, ``unet2.*``, ``conv_final`` at x4; a ``pro``
  key: the Pro models' input/output scaling, as layers): the weighted modules in
  :func:`srkeras.models.realcugan.torch_module_names` order. UpCunet2x_fast is refused.
* ``swinir`` - SwinIR (every upsampler, 1conv/3conv, ``start_unshuffle``; not the absolute position
  embedding, ``ape``): Keras layers named after the state-dict prefixes, loaded by name.

MSRResNet's and RCAN's Keras layers are named after the state-dict prefixes too, but they are plain
convolutions, so they take the path that checks every key and shape before building (``_BUILDERS``).
"""

from __future__ import annotations

import math
import re

import numpy as np

from srkeras.pretrained import detect as detect_mod
from srkeras.pretrained.convert import assign, conv_arrays, rrdbnet_conv_names
from srkeras.pretrained.errors import (
    CheckpointError,
    ConversionUnavailableError,
    ScaleMismatchError,
    ShapeMismatchError,
    UnknownArchitectureError,
)
from srkeras.pretrained.pth_custom import CUSTOM, bounded
from srkeras.pretrained.statedict import canonical

ARCHS = ("rrdbnet", "srvgg_compact", "edsr", "msrresnet", "rcan", "omnisr", "dat_light", "dat", "span", "realcugan",
         "swinir")
#: Blocks (RRDBs, EDSR residual blocks, SRVGG body layers) a checkpoint may number: RRDBNet uses 23,
#: EDSR-L 32, realesr-general-x4v3 67 body layers; a key such as ``body.200000.x`` is refused.
MAX_BLOCKS = 128


def state_dict(obj, source: str) -> dict:
    """The tensors of a checkpoint (:func:`srkeras.pretrained.statedict.canonical`)."""
    return canonical(obj, source)


def read_checkpoint(path) -> dict:
    """The state dict of a ``.pth`` (zip or legacy) or ``.safetensors`` file, read without torch
    and without running code from it (safetensors: by the ``.safetensors`` suffix or the first bytes)."""
    from srkeras.pretrained.safetensorsfile import is_safetensors, load_safetensors
    from srkeras.pretrained.torchfile import load_pth

    try:
        safetensors = str(path).lower().endswith(".safetensors") or is_safetensors(path)
    except OSError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return state_dict(load_safetensors(path) if safetensors else load_pth(path), str(path))


def detect(sd: dict) -> str:
    """Architecture name of a state dict (:func:`srkeras.pretrained.detect.detect`) or ``'unknown'``."""
    try:
        return detect_mod.detect(sd).arch
    except (UnknownArchitectureError, ShapeMismatchError):
        return "unknown"


def _check_scale(source, found: int, asked: int | None):
    if asked is not None and int(asked) != found:
        raise ScaleMismatchError(f"{source}: checkpoint is a x{found} model, x{asked} was asked for")


def _shape(sd, key: str, ndim: int, source) -> tuple[int, ...]:
    """Shape of tensor ``key``: present, ``ndim``-dimensional (4: a conv kernel), no empty dimension."""
    if key not in sd:
        raise UnknownArchitectureError(f"{source}: missing key {key!r}")
    shape = tuple(int(n) for n in np.shape(sd[key]))
    if len(shape) != ndim or 0 in shape:
        layout = "a conv kernel (out, in, kh, kw)" if ndim == 4 else f"a {ndim}-D tensor"
        raise ShapeMismatchError(f"{source}: {key} has shape {shape}, not that of {layout}")
    return shape


def _count(sd, pattern: str, source, what: str) -> int:
    """How many blocks the keys number by ``pattern``'s group: the numbers must be 0..n-1, n at most
    :data:`MAX_BLOCKS` (checked before building, so one stray ``body.200000.x`` builds nothing)."""
    found = {m[1] for k in sd if (m := re.match(pattern, k))}
    if len(found) > MAX_BLOCKS:
        raise UnknownArchitectureError(f"{source}: {len(found)} {what}; at most {MAX_BLOCKS} are plausible")
    expected = {str(i) for i in range(len(found))}
    if found != expected:
        stray = ", ".join(f"{i:.12}" for i in sorted(found - expected, key=len)[:3])
        raise UnknownArchitectureError(
            f"{source}: {len(found)} {what} with number(s) {stray}; they must be numbered 0..{len(found) - 1} "
            "(a stray or missing block key)"
        )
    return len(found)


def _rrdbnet(sd, scale, source):
    from srkeras.models.esrgan import build_rrdbnet

    sd = detect_mod.rrdb_new_layout(sd)
    nf, in_ch = _shape(sd, "conv_first.weight", 4, source)[:2]
    found = {3: 4, 12: 2, 48: 1}.get(in_ch)
    if found is None:
        raise UnknownArchitectureError(f"{source}: RRDBNet conv_first takes {in_ch} channels (3, 12 or 48 known)")
    if "conv_up3.weight" in sd:
        raise UnknownArchitectureError(f"{source}: x8 RRDBNet (conv_up3) is not supported")
    _check_scale(source, found, scale)
    nb = _count(sd, r"body\.(\d+)\.", source, "RRDB blocks (body.N.*)")
    gc = _shape(sd, "body.0.rdb1.conv1.weight", 4, source)[0]
    config = {"num_blocks": nb, "num_features": nf, "growth": gc, "pixel_unshuffle": found in (1, 2)}
    torch = [("conv_first", (nf, in_ch))]
    for b in range(nb):
        for d in (1, 2, 3):
            torch += [(f"body.{b}.rdb{d}.conv{i}", (gc if i < 5 else nf, nf + (i - 1) * gc)) for i in range(1, 6)]
    torch += [(name, (nf, nf)) for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr")]
    torch += [("conv_last", (3, nf))]
    layers = [(kn, tn, 0, shape) for kn, (tn, shape) in zip(rrdbnet_conv_names(nb), torch)]
    return lambda: build_rrdbnet(found, **config), found, config, layers, sd


def _srvgg(sd, scale, source):
    from srkeras.models.srvgg import build_srvgg_compact

    last = _count(sd, r"body\.(\d+)\.weight$", source, "SRVGG body layers (body.N.weight)") - 1
    if last < 2 or last % 2:
        raise UnknownArchitectureError(f"{source}: SRVGG body ends at body.{last}, not at a conv (even index >= 2)")
    nf = _shape(sd, "body.0.weight", 4, source)[0]
    out_ch = _shape(sd, f"body.{last}.weight", 4, source)[0]
    found = math.isqrt(out_ch // 3)
    if found < 1 or 3 * found * found != out_ch:
        raise UnknownArchitectureError(f"{source}: SRVGG last conv has {out_ch} outputs, not 3*s^2")
    _check_scale(source, found, scale)
    num_conv = last // 2 - 1
    config = {"num_feat": nf, "num_conv": num_conv, "act_type": "prelu"}
    layers = [(f"conv{i}", f"body.{2 * i}", 0, (nf, nf if i else 3)) for i in range(num_conv + 1)]
    layers += [(f"conv{num_conv + 1}", f"body.{last}", found, (out_ch, nf))]
    layers += [(f"act{i}", f"body.{2 * i + 1}", "prelu", (nf,)) for i in range(num_conv + 1)]
    return lambda: build_srvgg_compact(found, **config), found, config, layers, sd


def _edsr_pytorch_names(sd, source) -> tuple[dict, dict]:
    """EDSR-PyTorch's state dict in BasicSR's names (``head.0`` -> ``conv_first``, ``body.N.body.{0,2}``
    -> ``body.N.conv{1,2}``, the last ``body.N`` -> ``conv_after_body``, ``tail.0.K`` -> ``upsample.K``,
    ``tail.1`` -> ``conv_last``) and the ``img_range`` / ``rgb_mean`` its MeanShifts encode (bias
    ``-rgb_range * mean``, weight the identity: ``rgb_std`` 1, the only value that code uses)."""
    if "sub_mean.bias" not in sd or "add_mean.bias" not in sd:
        raise UnknownArchitectureError(f"{source}: EDSR-PyTorch layout without its MeanShifts (sub_mean, add_mean)")
    last = _count(sd, r"body\.(\d+)\.", source, "residual blocks and the body conv (body.N.*)") - 1
    eye = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)
    sub, add = (np.asarray(sd[f"{m}.bias"], np.float32) for m in ("sub_mean", "add_mean"))
    shifts_ok = sub.shape == add.shape == (3,) and np.allclose(add, -sub, rtol=1e-6, atol=1e-6)
    if not shifts_ok or any(np.shape(sd.get(f"{m}.weight")) != eye.shape or not np.array_equal(sd[f"{m}.weight"], eye)
                            for m in ("sub_mean", "add_mean")):  # fmt: skip
        raise UnknownArchitectureError(f"{source}: EDSR MeanShifts other than EDSR-PyTorch's (identity weights, "
                                       "add_mean = -sub_mean)")  # fmt: skip
    img_range = float(detect_mod.rcan_rgb_range(sd))
    names = ((r"head\.0\.", "conv_first."), (rf"body\.{last}\.", "conv_after_body."), (r"body\.(\d+)\.body\.0\.", r"body.\1.conv1."),
             (r"body\.(\d+)\.body\.2\.", r"body.\1.conv2."), (r"tail\.0\.", "upsample."), (r"tail\.1\.", "conv_last."))  # fmt: skip
    out = {}
    for k, v in sd.items():
        if not k.startswith(("sub_mean.", "add_mean.")):
            for pattern, repl in names:
                k = re.sub("^" + pattern, repl, k)
            out[k] = v
    return out, {"img_range": img_range, "rgb_mean": [float(m) for m in -sub / img_range]}


def _edsr(sd, scale, source):
    from srkeras.models.edsr import build_edsr

    sd, shift = _edsr_pytorch_names(sd, source) if "head.0.weight" in sd else (sd, {})
    nf = _shape(sd, "conv_first.weight", 4, source)[0]
    ups = sorted((m[1] for k in sd if (m := re.match(r"upsample\.(\d+)\.weight$", k))), key=lambda u: (len(u), u))
    if ups not in (["0"], ["0", "2"], ["0", "2", "4"]):
        raise UnknownArchitectureError(f"{source}: EDSR upsampler convs numbered {ups[:4]}, not 0 / 0, 2 / 0, 2, 4")
    outs = [_shape(sd, f"upsample.{u}.weight", 4, source)[0] for u in ups]
    found = 3 if outs == [9 * nf] else 2 ** len(outs)
    if found != 3 and outs != [4 * nf] * len(outs):
        raise UnknownArchitectureError(f"{source}: EDSR upsampler with channel ratios {[o / nf for o in outs]}")
    _check_scale(source, found, scale)
    nb = _count(sd, r"body\.(\d+)\.", source, "residual blocks (body.N.*)")
    config = {"num_feat": nf, "num_block": nb, "res_scale": 0.1 if nf == 256 else 1.0, **shift}
    r = 3 if found == 3 else 2
    layers = [("conv_first", "conv_first", 0, (nf, 3)), ("conv_after_body", "conv_after_body", 0, (nf, nf))]
    layers += [("conv_last", "conv_last", 0, (3, nf))]
    layers += [(f"body{b}_conv{j}", f"body.{b}.conv{j}", 0, (nf, nf)) for b in range(nb) for j in (1, 2)]
    layers += [(f"up{i}_conv", f"upsample.{u}", r, (nf * r * r, nf)) for i, u in enumerate(ups)]
    return lambda: build_edsr(found, **config), found, config, layers, sd


def _msrresnet(sd, scale, source):
    from srkeras.models.msrresnet import build_msrresnet

    sd = detect_mod.msrresnet_basicsr_names(sd)
    nf = _shape(sd, "conv_first.weight", 4, source)[0]
    up1 = _shape(sd, "upconv1.weight", 4, source)[0]
    if "upconv2.weight" in sd or up1 == 4 * nf:
        ups = [("upconv1", 2), ("upconv2", 2)] if "upconv2.weight" in sd else [("upconv1", 2)]
    elif up1 == 9 * nf:
        ups = [("upconv1", 3)]
    else:
        raise UnknownArchitectureError(f"{source}: MSRResNet upconv1 has {up1} outputs for {nf} features (4x or 9x expected)")
    found = 3 if ups[0][1] == 3 else 2 ** len(ups)
    _check_scale(source, found, scale)
    nb = _count(sd, r"body\.(\d+)\.", source, "residual blocks (body.N.*)")
    config = {"num_feat": nf, "num_block": nb}
    layers = [("conv_first", "conv_first", 0, (nf, 3))]
    layers += [(f"body.{b}.conv{j}", f"body.{b}.conv{j}", 0, (nf, nf)) for b in range(nb) for j in (1, 2)]
    layers += [(name, name, r, (nf * r * r, nf)) for name, r in ups]
    layers += [("conv_hr", "conv_hr", 0, (nf, nf)), ("conv_last", "conv_last", 0, (3, nf))]
    return lambda: build_msrresnet(found, **config), found, config, layers, sd


def _rcan(sd, scale, source):
    from srkeras.models.rcan import build_rcan

    head = "head.1" if "head.1.weight" in sd else "head.0"
    nf, in_ch, k, kw = _shape(sd, f"{head}.weight", 4, source)
    if k != kw or k % 2 == 0 or k > 11:
        raise UnknownArchitectureError(f"{source}: RCAN {head} has a {k}x{kw} kernel (odd and square expected)")
    ups = sorted((m[1] for key in sd if (m := re.match(r"tail\.0\.(\d+)\.weight$", key))), key=lambda u: (len(u), u))
    if ups not in (["0"], ["0", "2"], ["0", "2", "4"]):
        raise UnknownArchitectureError(f"{source}: RCAN upsampler convs numbered {ups[:4]}, not 0 / 0, 2 / 0, 2, 4")
    outs = [_shape(sd, f"tail.0.{u}.weight", 4, source)[0] for u in ups]
    if outs != [9 * nf] and outs != [4 * nf] * len(outs):
        raise UnknownArchitectureError(f"{source}: RCAN upsampler with channel ratios {[o / nf for o in outs]}")
    found = 3 if outs == [9 * nf] else 2 ** len(outs)
    ups = [(f"tail.0.{u}", 3 if found == 3 else 2) for u in ups]
    unshuffle = head == "head.1"
    if unshuffle:
        found = {12: 2, 48: 1}.get(in_ch)
        if found is None or len(ups) != 2 or ups[0][1] != 2:
            raise UnknownArchitectureError(f"{source}: RCAN with a pixel-unshuffle head needs 12 or 48 input channels "
                                           f"and a x4 upsampler, not {in_ch} and {len(ups)} stage(s)")  # fmt: skip
    elif in_ch != 3:
        raise UnknownArchitectureError(f"{source}: RCAN head.0 takes {in_ch} channels (3 expected)")
    _check_scale(source, found, scale)
    groups = _count(sd, r"body\.(\d+)\.", source, "residual groups and the body conv (body.N.*)") - 1
    counts = [_count(sd, rf"body\.{g}\.body\.(\d+)\.", source, f"RCABs and the group conv (body.{g}.body.N.*)")
              for g in range(groups)]  # fmt: skip
    if len(set(counts)) > 1:
        raise UnknownArchitectureError(f"{source}: RCAN residual groups hold different numbers of blocks: {counts}")
    blocks = counts[0] - 1 if counts else 0
    red = _shape(sd, "body.0.body.0.body.3.conv_du.0.weight", 4, source)[0]
    if groups < 1 or blocks < 1 or nf % red:
        raise UnknownArchitectureError(f"{source}: RCAN with {groups} group(s) of {blocks} RCAB(s), {nf} features "
                                       f"and {red} attention channels")  # fmt: skip
    norm = "sub_mean.weight" in sd
    config = {"n_resgroups": groups, "n_resblocks": blocks, "n_feats": nf, "reduction": nf // red, "kernel_size": k,
              "rgb_range": detect_mod.rcan_rgb_range(sd), "norm": norm, "unshuffle": unshuffle}  # fmt: skip
    conv = (nf, nf, k, k)
    layers = [(name, name, 0, (3, 3, 1, 1)) for name in ("sub_mean", "add_mean") if norm]
    layers += [(head, head, 0, (nf, in_ch, k, k))]
    for g in range(groups):
        for b in range(blocks):
            p = f"body.{g}.body.{b}.body"
            layers += [(f"{p}.0", f"{p}.0", 0, conv), (f"{p}.2", f"{p}.2", 0, conv),
                       (f"{p}.3.conv_du.0", f"{p}.3.conv_du.0", 0, (red, nf, 1, 1)),
                       (f"{p}.3.conv_du.2", f"{p}.3.conv_du.2", 0, (nf, red, 1, 1))]  # fmt: skip
        layers += [(f"body.{g}.body.{blocks}", f"body.{g}.body.{blocks}", 0, conv)]
    layers += [(f"body.{groups}", f"body.{groups}", 0, conv)]
    layers += [(name, name, r, (nf * r * r, nf)) for name, r in ups]
    layers += [("tail.1", "tail.1", 0, (3, nf, k, k))]
    return lambda: build_rcan(found, **config), found, config, layers, sd


_BUILDERS = {"rrdbnet": _rrdbnet, "srvgg_compact": _srvgg, "edsr": _edsr, "msrresnet": _msrresnet, "rcan": _rcan}


def _omnisr(found, source, sd):
    from srkeras.models.omnisr import build_omnisr

    c = found.config
    bounded(source, c, num_feat=512, res_num=MAX_BLOCKS, block_num=32, window_size=64)
    config = {k: c[k] for k in ("num_feat", "res_num", "block_num", "window_size", "pe", "bias")}
    return lambda: build_omnisr(found.scale, **config), config, {"up.0": found.scale}


def _dat(found, source, sd):
    from srkeras.models.dat import build_dat, upsample_factors

    c = found.config
    bounded(source, c, embed_dim=1024, depth=MAX_BLOCKS, num_heads=64, split_size=128, in_chans=16)
    dim, heads = c["embed_dim"], c["num_heads"]
    if len(c["depth"]) > 16 or dim < 32 or any(h % 2 or (dim // 2) % (h // 2) or dim % h for h in heads):
        raise UnknownArchitectureError(f"{source}: DAT {c} is not a layout the Keras DAT takes")
    config = {k: c[k] for k in ("embed_dim", "depth", "num_heads", "split_size", "expansion_factor", "qkv_bias",
                                "resi_connection", "upsampler")}  # fmt: skip
    config["channels"] = c["in_chans"]
    if c["upsampler"] == "pixelshuffle":
        config["num_feat"] = c["num_feat"]
        bounded(source, config, num_feat=1024)
        shuffle = {f"upsample.{2 * i}": r for i, r in enumerate(upsample_factors(found.scale))}
    else:
        shuffle = {"upsample.0": found.scale}
    name = f"{found.arch}_x{found.scale}"
    return lambda: build_dat(found.scale, **config, name=name), config, shuffle


def _swinir_blocks(found, source, sd) -> None:
    """Every Swin layer the key numbers imply holds its attention and MLP weights in the shapes the
    config implies, before anything is built: the network's size is bounded by the tensors the file holds."""
    c = found.config
    dim, w = c["embed_dim"], c["window_size"]
    hidden = int(dim * c["mlp_ratio"] + 1e-6)
    for i, (depth, heads) in enumerate(zip(c["depths"], c["num_heads"])):
        for j in range(depth):
            p = f"layers.{i}.residual_group.blocks.{j}."
            for key, want in (("attn.qkv.weight", (3 * dim, dim)), ("attn.proj.weight", (dim, dim)),
                              ("mlp.fc1.weight", (hidden, dim)), ("mlp.fc2.weight", (dim, hidden)),
                              ("attn.relative_position_bias_table", ((2 * w - 1) ** 2, heads))):  # fmt: skip
                if p + key not in sd:
                    raise UnknownArchitectureError(f"{source}: missing key {p + key!r} (SwinIR {c})")
                have = tuple(int(n) for n in np.shape(sd[p + key]))
                if have != want:
                    raise ShapeMismatchError(f"{source}: {p + key} has shape {have}, this SwinIR needs {want}")


def _swinir(found, source, sd):
    from srkeras.models.swinir import build_swinir, shuffle_layers

    c = found.config
    bounded(source, c, embed_dim=1024, depths=MAX_BLOCKS, num_heads=64, window_size=64, start_unshuffle=8)
    dim, heads = c["embed_dim"], c["num_heads"]
    if len(c["depths"]) > 32 or any(dim % h for h in heads) or not 1 <= c["mlp_ratio"] <= 16:
        raise UnknownArchitectureError(f"{source}: SwinIR {c} is not a layout the Keras SwinIR takes")
    _swinir_blocks(found, source, sd)
    config = {k: c[k] for k in ("in_chans", "embed_dim", "depths", "num_heads", "window_size", "mlp_ratio", "qkv_bias",
                                "patch_norm", "upsampler", "resi_connection", "img_range", "start_unshuffle")}  # fmt: skip
    if "num_feat" in c:
        bounded(source, c, num_feat=1024)
        config["num_feat"] = c["num_feat"]
    shuffle = shuffle_layers(c["upsampler"], found.scale * c["start_unshuffle"])
    return lambda: build_swinir(found.scale, **config), config, shuffle


#: Architectures whose Keras layers are named after the state-dict prefixes (:mod:`.pth_named`).
_NAMED = {"omnisr": _omnisr, "dat_light": _dat, "dat": _dat, "swinir": _swinir}


#: Buffers those checkpoints hold that Keras computes (position indices, masks, BatchNorm counters).
_DERIVED = ("relative_position_index", "rpe_biases", "attn_mask", "attn_mask_0", "attn_mask_1", "num_batches_tracked",
            "total_ops", "total_params")  # fmt: skip


def _keys(prefix: str, extra) -> list[str]:
    return [f"{prefix}.weight"] + ([] if extra == "prelu" else [f"{prefix}.bias"])


def _check_layers(sd, layers, source) -> None:
    """Every tensor the network takes is present with the shape its config implies (``(out, in)``: a
    3x3 conv; ``(out, in, kh, kw)``; ``(n,)``: PReLU slopes), before the network is built: its size is
    then bounded by the tensors the checkpoint holds."""
    for layer, prefix, extra, want_shape in layers:
        keys = _keys(prefix, extra)
        missing = [k for k in keys if k not in sd]
        if missing:
            raise UnknownArchitectureError(f"{source}: missing key(s) {missing} for layer {layer}")
        kernel = tuple(want_shape) if len(want_shape) == 4 else (*want_shape, 3, 3)
        for key, want in zip(keys, [tuple(want_shape)] if extra == "prelu" else [kernel, (want_shape[0],)]):
            have = tuple(int(n) for n in np.shape(sd[key]))
            if have != want:
                raise ShapeMismatchError(f"{source}: {key} has shape {have}, layer {layer} of this network needs {want}")


def identify(sd: dict, arch: str | None, source: str) -> detect_mod.Detection:
    """The detected architecture of ``sd``, which must agree with ``arch`` when one is given, and
    which srkeras must be able to convert (ConversionUnavailableError names it and its hyper-parameters)."""
    if arch is not None and arch not in detect_mod.ARCHS:
        known = ", ".join(detect_mod.ARCHS)
        raise UnknownArchitectureError(f"{source}: unknown architecture {arch!r}; detected ones: {known}")
    found = detect_mod.detect(sd, source)
    if arch is not None and arch != found.arch:
        raise UnknownArchitectureError(f"{source}: checkpoint is a {found.arch} state dict, not {arch}")
    if not found.convertible or found.arch not in (*_BUILDERS, *_NAMED, *CUSTOM):
        raise ConversionUnavailableError(
            f"{source}: detected {found.describe()}; conversion of this architecture to Keras is not available "
            f"in srkeras (convertible: {', '.join(ARCHS)})"
        )
    return found


def convert_state_dict(sd: dict, arch: str | None, scale: int | None, source: str):
    """Build the srkeras model for ``sd`` and load it. Returns ``(model, scale, config, unmapped)``:
    ``unmapped`` lists checkpoint keys that no layer took. Raises typed errors naming ``source``;
    the key set and every shape are checked before the model is built."""
    found = identify(sd, arch, source)
    if found.arch in _NAMED:
        from srkeras.pretrained.pth_named import load_named

        _check_scale(source, found.scale, scale)
        build, config, shuffle = _NAMED[found.arch](found, source, sd)
        model = build()
        unmapped = [k for k in load_named(model, sd, source, shuffle) if not k.endswith(_DERIVED)]
        return model, found.scale, {"arch": found.arch, **config}, unmapped
    if found.arch in CUSTOM:
        _check_scale(source, found.scale, scale)
        build, config, load = CUSTOM[found.arch](found, source, sd)
        model = build()
        used = load(model)
        unmapped = sorted(k for k in set(sd) - used if not k.endswith(_DERIVED))
        return model, found.scale, {"arch": found.arch, **config}, unmapped
    build, s, config, layers, sd = _BUILDERS[found.arch](sd, scale, source)
    _check_layers(sd, layers, source)
    model = build()
    used = set()
    for layer, prefix, extra, _want in layers:
        keys = _keys(prefix, extra)
        if extra == "prelu":
            arrays = [np.asarray(sd[keys[0]], np.float32).reshape(1, 1, -1)]
        else:
            arrays = conv_arrays(sd[keys[0]], sd[keys[1]], extra)
        assign(model, layer, arrays, source, prefix)
        used.update(keys)
    return model, s, {"arch": found.arch, **config}, sorted(set(sd) - used)
