"""What tiling needs to know about a model, measured once per model: scale, receptive field, split.

Why tiles must overlap. A fully convolutional generator's output pixel depends only on the LR
pixels within its receptive field of radius ``R`` (LR pixels). A tile cut out of the image sees
zero padding (or reflected borders) where the real image continues, which changes every output
pixel closer than ``R`` to the cut. So each tile is the *core* region we keep plus an overlap margin
``>= R`` on every side that is computed and thrown away; the kept cores then equal the untiled
result to float rounding. Image borders are real borders in both cases, so no margin is needed there.

How ``R`` is found (:func:`receptive_field`). Empirically, by probing with an impulse: run the
model on two base inputs (uniform noise and mid-grey, so a ReLU that is off at one base is on at
the other) and on the same inputs with their centre pixel moved by 1, and take the largest
Chebyshev distance, in LR pixels, of any output pixel that changed by more than ``tol`` (1e-5, far
below the 1/255 quantisation step and far above float32 rounding noise). The probe grows
(48 -> 96 -> 192 -> 384 LR pixels) until the changed region no longer touches its border; a model
whose change reaches every pixel (global pooling, attention) is reported as global (``None``):
tiling cannot be exact for it and the planner warns. This works for any layer, custom ones
included, at the price of one probe per model (cached). The analytic radius of a deep model
(RRDBNet: 350+ convolutions) vastly overstates the distance at which anything measurable
happens; the probe measures the latter. The margin used is ``R + 2``.

Trunk and tail (:func:`model_parts`). Post-upsampling generators are split
(:mod:`srkeras.inference.split`) into an LR trunk and an upsampling tail; the tail's own radius
``R_tail`` is probed on the trunk's features of the two base images. Live activation bytes and
convolution FLOPs per LR pixel of each part come from walking the graph; they size the plan
(:mod:`srkeras.inference.planning`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from srkeras.inference.runtime import input_channels, model_cache, model_channels, run_model

RF_TOL = 1e-5
LIVE_SAFETY = 2.0  # executor and oneDNN layout copies on top of the graph walk's live tensors
PROBE_SIZES = (48, 96, 192, 384)


def model_scale(model) -> int:
    """Integer upscaling factor of a generator, found by running it on a small probe."""
    cache = model_cache(model)
    if "scale" not in cache:
        c = sum(input_channels(model))
        n = 12
        out = run_model(model, np.full((1, n, n, c), 0.5, np.float32))
        sh, sw = out.shape[1] / n, out.shape[2] / n
        if sh != sw or sh != int(sh) or sh < 1:
            raise ValueError(f"model maps {n}x{n} to {out.shape[1]}x{out.shape[2]}: not an integer upscaler")
        cache["scale"] = int(sh)
    return cache["scale"]


def probe_bases(channels: int, size: int, seed: int = 0) -> np.ndarray:
    """The two base inputs of the impulse probe: uniform noise and mid-grey, (2, size, size, channels)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.random((size, size, channels), dtype=np.float32), np.full((size, size, channels), 0.5, np.float32)])


def probe_radius(model, make_bases, scale: int, tol: float = RF_TOL, max_probe: int = PROBE_SIZES[-1]) -> int | None:
    """Impulse probe (module docstring) of ``model`` (upscaling ``scale``) on ``make_bases(size)`` inputs."""
    for p in [q for q in PROBE_SIZES if q <= max_probe] or [max_probe]:
        base = make_bases(p)
        probe = base.copy()
        cy = p // 2
        v = probe[:, cy, cy, :]
        probe[:, cy, cy, :] = np.where(v > 0.5, v - 1.0, v + 1.0)
        # One image per call: the probe must not need more memory than the tiles it plans.
        diff = np.zeros((p * scale, p * scale), np.float32)
        for b, q in zip(base, probe):
            out_b = run_model(model, b[None])[0]
            diff = np.maximum(diff, np.abs(run_model(model, q[None])[0] - out_b).max(axis=-1))
            out_b = None
        ys, xs = np.nonzero(diff > tol)
        if ys.size == 0:
            return 0
        # Distance from the impulse's HR block [cy*s, cy*s + s) in HR pixels, then in LR pixels.
        dy = np.maximum(cy * scale - ys, ys - (cy * scale + scale - 1)).clip(0)
        dx = np.maximum(cy * scale - xs, xs - (cy * scale + scale - 1)).clip(0)
        r = int(math.ceil(max(dy.max(), dx.max()) / scale))
        if r < cy - 2:
            return r
    return None


def receptive_field(model, tol: float = RF_TOL, max_probe: int = PROBE_SIZES[-1]) -> int | None:
    """Effective receptive-field radius in LR pixels (see module docstring); None if global."""
    cache = model_cache(model)
    key = ("rf", tol, max_probe)
    if key not in cache:
        c = model_channels(model)
        cache[key] = probe_radius(model, lambda p: probe_bases(c, p), model_scale(model), tol, max_probe)
    return cache[key]


@dataclass(frozen=True, kw_only=True)
class ModelParts:
    """How a model is run: whole (``tail`` None) or as trunk + tail, with radii and per-pixel costs."""

    trunk: object | None  # keras.Model; None when not split: the model runs whole
    tail: object | None  # keras.Model; None when not split
    scale: int
    rf: int | None  # receptive-field radius of the whole model (LR px); None: global
    tail_rf: int | None  # the tail's radius on the trunk's features (0 when not split)
    trunk_live_bytes: float  # live activation bytes per LR pixel (x LIVE_SAFETY); the whole model's when not split
    tail_live_bytes: float
    trunk_flops: float  # convolution FLOPs per LR pixel
    tail_flops: float
    feat_channels: int  # channels of the tensors crossing from trunk to tail
    out_channels: int  # channels of the model's output


def _live_bytes(model, scale: int) -> float:
    from srkeras.inference.split import live_floats_per_pixel

    f = live_floats_per_pixel(model)
    if f is None:  # not a functional graph: assume a few 64-channel maps at HR
        f = 64.0 * scale * scale * 3 + 64.0 * 2
    return 4.0 * f * LIVE_SAFETY


def activation_bytes_per_pixel(model) -> float:
    """Peak live activation bytes per LR input pixel of the whole model (graph walk x LIVE_SAFETY)."""
    cache = model_cache(model)
    if "bpp" not in cache:
        cache["bpp"] = _live_bytes(model, model_scale(model))
    return cache["bpp"]


def tail_receptive_field(model, trunk, tail, scale: int, channels: int) -> int | None:
    """Radius of ``model``'s tail on its trunk's features of the probe bases; cached on ``model``
    (a sidecar may seed ``("tail_rf", RF_TOL)``, see :mod:`srkeras.inference.sidecar`)."""
    cache = model_cache(model)
    key = ("tail_rf", RF_TOL)
    if key not in cache:
        cache[key] = probe_radius(tail, lambda p: run_model(trunk, probe_bases(channels, p)), scale)
    return cache[key]


def _out_channels(model, c: int) -> int:
    """Output channels from the graph when it says (no trace of a deep model), else by running it."""
    shape = getattr(model, "output_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4 and isinstance(shape[-1], int):
        return shape[-1]
    return int(run_model(model, np.zeros((1, 4, 4, c), np.float32)).shape[-1])


def model_parts(model) -> ModelParts:
    """Trunk and tail of ``model`` (or the whole model) with their radii and costs; cached."""
    cache = model_cache(model)
    if "parts" in cache:
        return cache["parts"]
    from srkeras.inference.split import flops_per_pixel, split_generator

    s = model_scale(model)
    c = model_channels(model)
    sp = split_generator(model)
    common = {"scale": s, "rf": receptive_field(model)}
    common["out_channels"] = _out_channels(model, c)
    if sp is None:
        # trunk None: the model runs whole (a reference to it here would keep it alive, see runtime)
        parts = ModelParts(
            trunk=None, tail=None, tail_rf=0, feat_channels=0, **common,
            trunk_live_bytes=activation_bytes_per_pixel(model), tail_live_bytes=0.0,
            trunk_flops=flops_per_pixel(model) or 1.0, tail_flops=0.0,
        )  # fmt: skip
    else:
        trunk, tail = sp.trunk, sp.tail
        parts = ModelParts(
            trunk=trunk, tail=tail, feat_channels=sp.feature_channels, **common,
            tail_rf=tail_receptive_field(model, trunk, tail, s, c),
            trunk_live_bytes=_live_bytes(trunk, 1), tail_live_bytes=_live_bytes(tail, s),
            trunk_flops=flops_per_pixel(trunk) or 1.0, tail_flops=flops_per_pixel(tail) or 1.0,
        )  # fmt: skip
    cache["parts"] = parts
    return parts


__all__ = [
    "LIVE_SAFETY",
    "ModelParts",
    "RF_TOL",
    "activation_bytes_per_pixel",
    "model_parts",
    "model_scale",
    "probe_bases",
    "probe_radius",
    "receptive_field",
    "tail_receptive_field",
]
