"""Map PyTorch state dicts of the original implementations onto srkeras models.

Handled (keys decide the architecture; ``arch`` given by the user must agree):

* ``rrdbnet`` - BasicSR / Real-ESRGAN RRDBNet (``conv_first``, ``body.N.rdbM.convK``, ``conv_body``,
  ``conv_up1/2``, ``conv_hr``, ``conv_last``; RealESRGAN_x2plus pixel-unshuffle input: conv_first on
  12 channels) and ESRGAN's original names (``RRDB_trunk``, ``trunk_conv``, ``upconv1/2``, ``HRconv``).
* ``srvgg_compact`` - Real-ESRGAN SRVGGNetCompact (``body.2k`` convs, ``body.2k+1`` PReLU slopes).
* ``edsr`` - BasicSR EDSR (``conv_first``, ``body.N.conv1/2``, ``conv_after_body``, ``upsample.K``,
  ``conv_last``); res_scale is not stored in weights: 0.1 for 256 features (EDSR full), else 1.

BasicSR's MSRResNet is not mapped: srkeras' ``srresnet`` is SRGAN's (BN + PReLU), a different net.
"""

from __future__ import annotations

import math
import re

import numpy as np

from srkeras.pretrained.convert import assign, conv_arrays, rrdbnet_conv_names
from srkeras.pretrained.errors import CheckpointError, ScaleMismatchError, UnknownArchitectureError

ARCHS = ("rrdbnet", "srvgg_compact", "edsr")
_OLD_RRDB = {"trunk_conv": "conv_body", "upconv1": "conv_up1", "upconv2": "conv_up2", "HRconv": "conv_hr"}


def state_dict(obj, source: str) -> dict:
    """The tensors of a checkpoint: BasicSR's ``params_ema`` (preferred) / ``params``, a plain state
    dict or ``state_dict``; a leading ``module.`` (DataParallel) is dropped."""
    if isinstance(obj, dict):
        for key in ("params_ema", "params", "state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise CheckpointError(f"{source}: no state dict of tensors found (keys: {list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__})")
    return {re.sub(r"^module\.", "", k): v for k, v in obj.items()}


def _canonical_rrdb(sd: dict) -> dict:
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


def detect(sd: dict) -> str:
    """Architecture of a state dict: one of :data:`ARCHS`, ``'msrresnet'`` or ``'unknown'``."""
    keys = set(sd)
    if "body.0.rdb1.conv1.weight" in keys or "RRDB_trunk.0.RDB1.conv1.weight" in keys:
        return "rrdbnet"
    if "body.0.weight" in keys and "body.1.weight" in keys and sd["body.1.weight"].ndim == 1:
        return "srvgg_compact"
    if "conv_after_body.weight" in keys and "body.0.conv1.weight" in keys:
        return "edsr"
    if "upconv1.weight" in keys and "body.0.conv1.weight" in keys:
        return "msrresnet"
    return "unknown"


def _check_scale(source, found: int, asked: int | None):
    if asked is not None and int(asked) != found:
        raise ScaleMismatchError(f"{source}: checkpoint is a x{found} model, x{asked} was asked for")


def _rrdbnet(sd, scale, source):
    from srkeras.models.esrgan import build_rrdbnet

    sd = _canonical_rrdb(sd)
    in_ch = sd["conv_first.weight"].shape[1]
    found = {3: None, 12: 2, 48: 1}.get(in_ch)
    if in_ch not in (3, 12, 48):
        raise UnknownArchitectureError(f"{source}: RRDBNet conv_first takes {in_ch} channels (3, 12 or 48 known)")
    if "conv_up3.weight" in sd:
        raise UnknownArchitectureError(f"{source}: x8 RRDBNet (conv_up3) is not supported")
    found = found or 4
    _check_scale(source, found, scale)
    nb = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
    config = {
        "num_blocks": nb,
        "num_features": int(sd["conv_first.weight"].shape[0]),
        "growth": int(sd["body.0.rdb1.conv1.weight"].shape[0]),
        "pixel_unshuffle": found in (1, 2),
    }
    model = build_rrdbnet(found, **config)
    torch_names = ["conv_first"]
    torch_names += [f"body.{b}.rdb{d}.conv{i}" for b in range(nb) for d in (1, 2, 3) for i in range(1, 6)]
    torch_names += ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    pairs = [(kn, tn, 0) for kn, tn in zip(rrdbnet_conv_names(nb), torch_names)]
    return model, found, config, pairs, sd


def _srvgg(sd, scale, source):
    from srkeras.models.srvgg import build_srvgg_compact

    idx = sorted(int(k.split(".")[1]) for k in sd if re.match(r"body\.\d+\.weight$", k))
    last = idx[-1]
    out_ch = sd[f"body.{last}.weight"].shape[0]
    found = math.isqrt(out_ch // 3)
    if 3 * found * found != out_ch:
        raise UnknownArchitectureError(f"{source}: SRVGG last conv has {out_ch} outputs, not 3*s^2")
    _check_scale(source, found, scale)
    num_conv = last // 2 - 1
    config = {"num_feat": int(sd["body.0.weight"].shape[0]), "num_conv": num_conv, "act_type": "prelu"}
    model = build_srvgg_compact(found, **config)
    pairs = [(f"conv{i}", f"body.{2 * i}", found if i == num_conv + 1 else 0) for i in range(num_conv + 2)]
    pairs += [(f"act{i}", f"body.{2 * i + 1}", "prelu") for i in range(num_conv + 1)]
    return model, found, config, pairs, sd


def _edsr(sd, scale, source):
    from srkeras.models.edsr import build_edsr

    nf = int(sd["conv_first.weight"].shape[0])
    ups = sorted(int(k.split(".")[1]) for k in sd if re.match(r"upsample\.\d+\.weight$", k))
    ratios = [sd[f"upsample.{u}.weight"].shape[0] // nf for u in ups]
    found = 3 if ratios == [9] else 2 ** len(ratios)
    if any(r not in (4, 9) for r in ratios):
        raise UnknownArchitectureError(f"{source}: EDSR upsampler with channel ratios {ratios}")
    _check_scale(source, found, scale)
    nb = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
    config = {"num_feat": nf, "num_block": nb, "res_scale": 0.1 if nf == 256 else 1.0}
    model = build_edsr(found, **config)
    pairs = [("conv_first", "conv_first", 0), ("conv_after_body", "conv_after_body", 0), ("conv_last", "conv_last", 0)]
    pairs += [(f"body{b}_conv{j}", f"body.{b}.conv{j}", 0) for b in range(nb) for j in (1, 2)]
    pairs += [(f"up{i}_conv", f"upsample.{u}", 3 if found == 3 else 2) for i, u in enumerate(ups)]
    return model, found, config, pairs, sd


_BUILDERS = {"rrdbnet": _rrdbnet, "srvgg_compact": _srvgg, "edsr": _edsr}


def convert_state_dict(sd: dict, arch: str | None, scale: int | None, source: str):
    """Build the srkeras model for ``sd`` and load it. Returns ``(model, scale, config, unmapped)``:
    ``unmapped`` lists checkpoint keys that no layer took. Raises typed errors naming ``source``."""
    found = detect(sd)
    if found == "msrresnet":
        raise UnknownArchitectureError(
            f"{source}: BasicSR MSRResNet is not supported (srkeras' srresnet is SRGAN's BN/PReLU network)"
        )
    if found == "unknown":
        raise UnknownArchitectureError(f"{source}: keys match no supported architecture {ARCHS} (first keys: {sorted(sd)[:5]})")
    if arch is not None and arch != found:
        if arch not in ARCHS:
            raise UnknownArchitectureError(f"{source}: unknown architecture {arch!r}; supported: {', '.join(ARCHS)}")
        raise UnknownArchitectureError(f"{source}: checkpoint is a {found} state dict, not {arch}")
    model, s, config, pairs, sd = _BUILDERS[found](sd, scale, source)
    used = set()
    for layer, prefix, extra in pairs:
        keys = [f"{prefix}.weight"] + ([] if extra == "prelu" else [f"{prefix}.bias"])
        missing = [k for k in keys if k not in sd]
        if missing:
            raise UnknownArchitectureError(f"{source}: missing key(s) {missing} for layer {layer}")
        if extra == "prelu":
            arrays = [np.asarray(sd[keys[0]], np.float32).reshape(1, 1, -1)]
        else:
            arrays = conv_arrays(sd[keys[0]], sd[keys[1]], extra)
        assign(model, layer, arrays, source, prefix)
        used.update(keys)
    return model, s, {"arch": found, **config}, sorted(set(sd) - used)
