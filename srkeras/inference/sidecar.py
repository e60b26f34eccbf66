"""What a model file says about itself: the JSON sidecar beside a ``.keras`` and the facts it seeds.

An installed model ``NAME.keras`` (``$SRKERAS_MODEL_DIR``; written by :mod:`srkeras.pretrained`)
may have a sidecar ``NAME.json`` recording the ``.keras`` file's sha256 (``model_sha256``), its
scale, the reflect pre-padding its original runtime applies (``pre_pad``, LR px: 10 for the
Real-ESRGAN ncnn models) and the receptive field measured at install time (``receptive_field``
and, for a model split into trunk and tail, ``tail_receptive_field``, with the probe tolerance
``rf_tol``). A sidecar whose sha256 is not the model file's is stale and
ignored. :func:`apply_sidecar` seeds the per-model cache (:func:`~srkeras.inference.runtime.model_cache`)
with these facts, so serving starts without probing; a value that is missing, stale or measured
with another tolerance is left out and the probe runs on first use as for any model.

Pre-padding (:func:`pre_pad`, applied by :func:`~srkeras.inference.running.upscale_bands`): the
whole LR image is reflect-padded once, upscaled as usual (tiled or not; tiling a padded image is
exact like any other), and ``pre_pad * scale`` HR pixels are cropped from every side.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from srkeras.inference.probing import PROBE_SIZES, RF_TOL
from srkeras.inference.runtime import model_cache


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_sidecar(path) -> dict | None:
    """The sidecar (``NAME.json`` beside ``NAME.keras``) of ``path``, or None when it is missing,
    unreadable or stale (its ``model_sha256`` is not the ``.keras`` file's)."""
    path = Path(path)
    try:
        data = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("model_sha256") != sha256_file(path):
        return None
    return data


def _int_or_none(v):
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def apply_sidecar(model, meta: dict | None) -> dict:
    """Seed ``model``'s cache from a sidecar (see module docstring); returns the facts seeded."""
    seeded: dict = {}
    if not meta:
        return seeded
    cache = model_cache(model)
    scale = _int_or_none(meta.get("scale_probed")) or _int_or_none(meta.get("scale"))
    if scale:
        cache["scale"] = seeded["scale"] = scale
    rf = _int_or_none(meta.get("receptive_field"))
    if rf is not None and meta.get("rf_tol") == RF_TOL:
        cache[("rf", RF_TOL, PROBE_SIZES[-1])] = seeded["receptive_field"] = rf
        tail_rf = _int_or_none(meta.get("tail_receptive_field"))
        if tail_rf is not None:
            cache[("tail_rf", RF_TOL)] = seeded["tail_receptive_field"] = tail_rf
    pad = _int_or_none(meta.get("pre_pad")) or 0
    if pad:
        if meta.get("pad_mode", "reflect") not in (None, "reflect"):
            raise ValueError(f"sidecar pad_mode {meta.get('pad_mode')!r}: only 'reflect' is supported")
        cache["pre_pad"] = seeded["pre_pad"] = pad
    return seeded


FACT_KEYS = ("scale", ("rf", RF_TOL, PROBE_SIZES[-1]), ("tail_rf", RF_TOL), "pre_pad")


def carry_facts(src, dst) -> None:
    """Copy the sidecar-level facts of ``src`` to ``dst``, a clone of the same network (dtype)."""
    a, b = model_cache(src), model_cache(dst)
    for k in FACT_KEYS:
        if k in a:
            b.setdefault(k, a[k])


def write_sidecar(model, path) -> Path | None:
    """Write the facts of ``model`` (scale, receptive field, pre-padding) as the sidecar of the
    ``.keras`` file ``path`` it was saved to, so loading it serves it the same way; None if there
    is nothing a plain load would not find out (no pre-padding, no receptive field known)."""
    cache = model_cache(model)
    rf = cache.get(("rf", RF_TOL, PROBE_SIZES[-1]))
    if not cache.get("pre_pad") and rf is None:
        return None
    meta = {"pre_pad": int(cache.get("pre_pad", 0)), "pad_mode": "reflect" if cache.get("pre_pad") else None,
            "receptive_field": rf, "rf_tol": RF_TOL if rf is not None else None}  # fmt: skip
    if "scale" in cache:
        meta["scale"] = int(cache["scale"])
    meta["model_sha256"] = sha256_file(path)
    from srkeras.data.io import write_atomically

    side = Path(path).with_suffix(".json")
    return write_atomically(side, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2, sort_keys=True)), overwrite=True)


def set_pre_pad(model, pad: int) -> None:
    """Make :func:`~srkeras.inference.running.upscale_bands` reflect-pad ``model``'s input by ``pad`` LR px."""
    model_cache(model)["pre_pad"] = int(pad)


def pre_pad(model) -> int:
    """LR pixels of reflect padding applied around the whole image before ``model`` (0: none)."""
    return int(model_cache(model).get("pre_pad", 0))


def reflect_pad(image: np.ndarray, pad: int) -> np.ndarray:
    """Reflect-pad the two spatial axes of an (H, W, C) or (N, H, W, C) array by ``pad`` pixels,
    as Real-ESRGAN's runtimes do (symmetric when an edge is too short to reflect)."""
    if pad <= 0:
        return image
    mode = "symmetric" if min(image.shape[-3], image.shape[-2]) <= pad else "reflect"
    return np.pad(image, [(0, 0)] * (image.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)], mode=mode)


def size_multiple(model) -> int:
    """LR sizes ``model`` accepts are multiples of this (a PixelUnshuffle input: 2 or 4; else 1)."""
    cache = model_cache(model)
    if "size_multiple" not in cache:
        m = 1
        for layer in getattr(model, "layers", []):
            if type(layer).__name__ == "PixelUnshuffle":
                m *= int(getattr(layer, "scale", 1))
        cache["size_multiple"] = m
    return cache["size_multiple"]


__all__ = ["apply_sidecar", "carry_facts", "pre_pad", "read_sidecar", "reflect_pad", "set_pre_pad", "sha256_file", "size_multiple", "write_sidecar"]
