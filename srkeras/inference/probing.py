"""What tiling needs to know about a model, measured: scale, receptive field, per-pixel costs.

Why tiles must overlap. A fully convolutional generator's output pixel depends only on the LR
pixels within its receptive field of radius ``R`` (LR pixels). A tile cut out of the image sees
zero padding (or reflected borders) where the real image continues, which changes every output
pixel closer than ``R`` to the cut. So each tile is the *core* region we keep plus an overlap margin
``>= R`` on every side that is computed and thrown away; the kept cores then equal the untiled
result to float rounding. Image borders are real borders in both cases, so no margin is needed there.

How ``R`` is found (:func:`measure_receptive_field`): the *impulse probe*. Run the model on two
base inputs (uniform noise and mid-grey, so a ReLU that is off at one base is on at the other) and
on the same inputs with their centre pixel moved by 1, and take the largest Chebyshev distance, in
LR pixels, of any output pixel that changed by more than ``tol`` (1e-5, far below the 1/255
quantisation step and far above float32 rounding noise). The probe grows (48 -> 96 -> 192 -> 384
LR pixels) until the changed region no longer touches its border; a model whose change reaches
every pixel (global pooling, attention) is reported as global (``None``): tiling cannot be exact
for it and the planner warns. Only the sizes whose peak memory fits the budget (``--max-memory``)
run: the planner estimates each size's peak as it does a tile's
(:func:`srkeras.inference.planning.probe_sizes`) and refuses, before any work, a budget too small
for the smallest; each size runs one image per call, so that estimate is the probe's peak. This works for any layer, custom ones included, at the price of one
probe per model (kept by :class:`~srkeras.inference.served.ServedModel`). The analytic radius of a
deep model (RRDBNet: 350+ convolutions) vastly overstates the distance at which anything
measurable happens; the probe measures the latter. The margin used is ``R + 2``.

Trunk and tail (:func:`measure_costs`). Post-upsampling generators are split
(:mod:`srkeras.inference.split`) into an LR trunk and an upsampling tail; the tail's own radius
``R_tail`` is probed on the trunk's features of the two base images. Live activation bytes and
convolution FLOPs per LR pixel of each part come from walking the graph; they size the plan
(:mod:`srkeras.inference.planning`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from srkeras.inference.runtime import run_model

RF_TOL = 1e-5
LIVE_SAFETY = 2.0  # executor and oneDNN layout copies on top of the graph walk's live tensors
PROBE_SIZES = (48, 96, 192, 384)


def measure_scale(runner, channels: int) -> int:
    """Integer upscaling factor of a generator (its traced ``runner`` on ``channels`` inputs), from a 12x12 run."""
    n = 12
    out = run_model(runner, np.full((1, n, n, channels), 0.5, np.float32))
    sh, sw = out.shape[1] / n, out.shape[2] / n
    if sh != sw or sh != int(sh) or sh < 1:
        raise ValueError(f"model maps {n}x{n} to {out.shape[1]}x{out.shape[2]}: not an integer upscaler")
    return int(sh)


def impulse_bases(channels: int, size: int, seed: int = 0) -> np.ndarray:
    """The two base inputs of the impulse probe: uniform noise and mid-grey, (2, size, size, channels)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.random((size, size, channels), dtype=np.float32), np.full((size, size, channels), 0.5, np.float32)])


def measure_receptive_field(runner, make_bases, scale: int, tol: float = RF_TOL, max_probe: int = PROBE_SIZES[-1],
                            progress=None, sizes=PROBE_SIZES) -> int | None:
    """Radius (LR px) found by the impulse probe (module docstring) of a traced ``runner``
    upscaling ``scale`` on ``make_bases(size)`` inputs; None when global (or reaching past the largest of
    ``sizes``: those a memory budget allows, :func:`srkeras.inference.planning.probe_sizes`).
    ``progress``: callable(message) told of each probe size."""
    for p in [q for q in sizes if q <= max_probe] or [max_probe]:
        if callable(progress):
            progress(f"  probe {p}x{p} LR px")
        base = make_bases(p)
        probe = base.copy()
        cy = p // 2
        v = probe[:, cy, cy, :]
        probe[:, cy, cy, :] = np.where(v > 0.5, v - 1.0, v + 1.0)
        # One image per call: the probe must not need more memory than the tiles it plans.
        diff = np.zeros((p * scale, p * scale), np.float32)
        for b, q in zip(base, probe):
            out_b = run_model(runner, b[None])[0]
            diff = np.maximum(diff, np.abs(run_model(runner, q[None])[0] - out_b).max(axis=-1))
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


@dataclass(frozen=True, kw_only=True)
class Costs:
    """Per-LR-pixel costs of running a model whole (tail figures 0) or as trunk + tail."""

    trunk_live_bytes: float  # live activation bytes per LR pixel (x LIVE_SAFETY); the whole model's when not split
    tail_live_bytes: float
    trunk_flops: float  # convolution FLOPs per LR pixel
    tail_flops: float
    feat_channels: int  # channels of the tensors crossing from trunk to tail (0 when not split)
    out_channels: int  # channels of the model's output


def live_bytes(model, scale: int) -> float:
    """Peak live activation bytes per LR input pixel of ``model`` (graph walk x LIVE_SAFETY)."""
    from srkeras.inference.split import live_floats_per_pixel

    f = live_floats_per_pixel(model)
    if f is None:  # not a functional graph: assume a few 64-channel maps at HR
        f = 64.0 * scale * scale * 3 + 64.0 * 2
    return 4.0 * f * LIVE_SAFETY


def _out_channels(model, runner, c: int) -> int:
    """Output channels from the graph when it says (no trace of a deep model), else by running it."""
    shape = getattr(model, "output_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4 and isinstance(shape[-1], int):
        return shape[-1]
    return int(run_model(runner, np.zeros((1, 4, 4, c), np.float32)).shape[-1])


def measure_costs(model, runner, split, scale: int, channels: int) -> Costs:
    """:class:`Costs` of ``model`` (traced as ``runner``) run whole (``split`` None) or split."""
    from srkeras.inference.split import flops_per_pixel

    out_channels = _out_channels(model, runner, channels)
    if split is None:
        return Costs(trunk_live_bytes=live_bytes(model, scale), tail_live_bytes=0.0,
                     trunk_flops=flops_per_pixel(model) or 1.0, tail_flops=0.0, feat_channels=0,
                     out_channels=out_channels)  # fmt: skip
    return Costs(trunk_live_bytes=live_bytes(split.trunk, 1), tail_live_bytes=live_bytes(split.tail, scale),
                 trunk_flops=flops_per_pixel(split.trunk) or 1.0, tail_flops=flops_per_pixel(split.tail) or 1.0,
                 feat_channels=split.feature_channels, out_channels=out_channels)  # fmt: skip


__all__ = [
    "LIVE_SAFETY",
    "PROBE_SIZES",
    "RF_TOL",
    "Costs",
    "impulse_bases",
    "live_bytes",
    "measure_costs",
    "measure_receptive_field",
    "measure_scale",
]
