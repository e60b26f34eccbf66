"""Map PyTorch state dicts of the original implementations onto srkeras models.

Handled (:mod:`srkeras.pretrained.detect` tells the architecture from the keys and shapes; ``arch``
given by the user must agree; detected architectures not listed here are refused by name):

* ``rrdbnet`` - BasicSR / Real-ESRGAN RRDBNet (``conv_first``, ``body.N.rdbM.convK``, ``conv_body``,
  ``conv_up1/2``, ``conv_hr``, ``conv_last``; RealESRGAN_x2plus pixel-unshuffle input: conv_first on
  12 channels) and ESRGAN's original names (``RRDB_trunk``, ``trunk_conv``, ``upconv1/2``, ``HRconv``)
  and sequential ones (``model.0``, ``model.1.sub.N.RDBd.convk.0``, ``model.3``...).
* ``srvgg_compact`` - Real-ESRGAN SRVGGNetCompact (``body.2k`` convs, ``body.2k+1`` PReLU slopes).
* ``edsr`` - BasicSR EDSR (``conv_first``, ``body.N.conv1/2``, ``conv_after_body``, ``upsample.K``,
  ``conv_last``); res_scale is not stored in weights: 0.1 for 256 features (EDSR full), else 1.
* ``omnisr`` - OmniSR, ``dat_light`` - DAT with a one-conv tail (DAT-light), ``swinir`` - SwinIR (every
  upsampler, 1conv/3conv, ``start_unshuffle``; not the absolute position embedding, ``ape``): Keras
  layers named after the state-dict prefixes, loaded by name (:mod:`srkeras.pretrained.pth_named`).

BasicSR's MSRResNet is not mapped: srkeras' ``srresnet`` is SRGAN's (BN + PReLU), a different net.
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

ARCHS = ("rrdbnet", "srvgg_compact", "edsr", "omnisr", "dat_light", "swinir")
#: Blocks (RRDBs, EDSR residual blocks, SRVGG body layers) a checkpoint may number: RRDBNet uses 23,
#: EDSR-L 32, realesr-general-x4v3 67 body layers; a key such as ``body.200000.x`` is refused.
MAX_BLOCKS = 128


def state_dict(obj, source: str) -> dict:
    """The tensors of a checkpoint (:func:`srkeras.pretrained.detect.canonical`)."""
    return detect_mod.canonical(obj, source)


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


def _edsr(sd, scale, source):
    from srkeras.models.edsr import build_edsr

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
    config = {"num_feat": nf, "num_block": nb, "res_scale": 0.1 if nf == 256 else 1.0}
    r = 3 if found == 3 else 2
    layers = [("conv_first", "conv_first", 0, (nf, 3)), ("conv_after_body", "conv_after_body", 0, (nf, nf))]
    layers += [("conv_last", "conv_last", 0, (3, nf))]
    layers += [(f"body{b}_conv{j}", f"body.{b}.conv{j}", 0, (nf, nf)) for b in range(nb) for j in (1, 2)]
    layers += [(f"up{i}_conv", f"upsample.{u}", r, (nf * r * r, nf)) for i, u in enumerate(ups)]
    return lambda: build_edsr(found, **config), found, config, layers, sd


_BUILDERS = {"rrdbnet": _rrdbnet, "srvgg_compact": _srvgg, "edsr": _edsr}


def _bounded(source, config: dict, **limits) -> None:
    """Hyper-parameters read from shapes within plausible bounds, before anything is built."""
    for key, most in limits.items():
        value = config[key]
        if not 1 <= (max(value) if isinstance(value, list) else value) <= most:
            raise UnknownArchitectureError(f"{source}: {key}={value} is implausible (at most {most} expected)")


def _omnisr(found, source, sd):
    from srkeras.models.omnisr import build_omnisr

    c = found.config
    _bounded(source, c, num_feat=512, res_num=MAX_BLOCKS, block_num=32, window_size=64)
    config = {k: c[k] for k in ("num_feat", "res_num", "block_num", "window_size", "pe", "bias")}
    return lambda: build_omnisr(found.scale, **config), config, {"up.0": found.scale}


def _dat_light(found, source, sd):
    from srkeras.models.dat import build_dat_light

    c = found.config
    _bounded(source, c, embed_dim=1024, depth=MAX_BLOCKS, num_heads=64, split_size=128)
    dim, heads = c["embed_dim"], c["num_heads"]
    if len(c["depth"]) > 8 or dim < 32 or any(h % 2 or (dim // 2) % (h // 2) or dim % h for h in heads):
        raise UnknownArchitectureError(f"{source}: DAT {c} is not a layout the Keras DAT-light takes")
    config = {k: c[k] for k in ("embed_dim", "depth", "num_heads", "split_size", "expansion_factor", "qkv_bias",
                                "resi_connection")}  # fmt: skip
    return lambda: build_dat_light(found.scale, **config), config, {"upsample.0": found.scale}


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
    _bounded(source, c, embed_dim=1024, depths=MAX_BLOCKS, num_heads=64, window_size=64, start_unshuffle=8)
    dim, heads = c["embed_dim"], c["num_heads"]
    if len(c["depths"]) > 32 or any(dim % h for h in heads) or not 1 <= c["mlp_ratio"] <= 16:
        raise UnknownArchitectureError(f"{source}: SwinIR {c} is not a layout the Keras SwinIR takes")
    _swinir_blocks(found, source, sd)
    config = {k: c[k] for k in ("in_chans", "embed_dim", "depths", "num_heads", "window_size", "mlp_ratio", "qkv_bias",
                                "patch_norm", "upsampler", "resi_connection", "img_range", "start_unshuffle")}  # fmt: skip
    if "num_feat" in c:
        _bounded(source, c, num_feat=1024)
        config["num_feat"] = c["num_feat"]
    shuffle = shuffle_layers(c["upsampler"], found.scale * c["start_unshuffle"])
    return lambda: build_swinir(found.scale, **config), config, shuffle


#: Architectures whose Keras layers are named after the state-dict prefixes (:mod:`.pth_named`).
_NAMED = {"omnisr": _omnisr, "dat_light": _dat_light, "swinir": _swinir}
#: Buffers those checkpoints hold that Keras computes (position indices, masks, BatchNorm counters).
_DERIVED = ("relative_position_index", "rpe_biases", "attn_mask", "attn_mask_0", "attn_mask_1", "num_batches_tracked",
            "total_ops", "total_params")  # fmt: skip


def _keys(prefix: str, extra) -> list[str]:
    return [f"{prefix}.weight"] + ([] if extra == "prelu" else [f"{prefix}.bias"])


def _check_layers(sd, layers, source) -> None:
    """Every tensor the network takes is present with the shape its config implies (3x3 convs),
    before the network is built: its size is then bounded by the tensors the checkpoint holds."""
    for layer, prefix, extra, (out, *inputs) in layers:
        keys = _keys(prefix, extra)
        missing = [k for k in keys if k not in sd]
        if missing:
            raise UnknownArchitectureError(f"{source}: missing key(s) {missing} for layer {layer}")
        for key, want in zip(keys, [(out,)] if extra == "prelu" else [(out, *inputs, 3, 3), (out,)]):
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
    if not found.convertible or found.arch not in (*_BUILDERS, *_NAMED):
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
