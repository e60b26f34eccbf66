"""The evaluation protocol of the SR tables, in one place: every caller scores through this module.

The protocol of SRCNN (Dong et al. 2014), EDSR, RCAN and ESRGAN, as their MATLAB scripts run it:

1. ``modcrop`` the HR image to a multiple of the scale and store it as 8 bits;
2. LR = MATLAB ``imresize(hr, 1/s, 'bicubic')`` (antialiased), stored as 8 bits;
3. the SR output quantised to 8 bits;
4. BT.601 Y as MATLAB's ``rgb2ycbcr`` on uint8 (Y rounded to 8 bits; a grey image is its own Y);
5. ``s`` pixels shaved from every border; PSNR with peak 255 and the SSIM of Wang et al. 2004
   (11x11 Gaussian, sigma 1.5, valid region): :mod:`srkeras.metrics`.

:func:`prepare` does steps 1-2, :func:`score` steps 3-5 (:func:`mean_scores` averages them;
:func:`missing_assets` says which metric weights are not installed),
:func:`classical_sr` gives the bicubic (or nearest) baseline and :func:`super_resolve` runs a
generator with the colour path of :func:`srkeras.inference.upscale` (a Y-only model sees BT.601 Y
with Cb/Cr upscaled by MATLAB bicubic; grey images stay grey; the formulas are
:mod:`srkeras.data.color`'s).
A grey HR image is kept grey (one channel) throughout, never replicated to RGB, since replicated
grey would be scored on studio-swing Y (16 + 219 g) instead of on its own values.

Callers: :mod:`srkeras.evaluation_run` (the tables of ``pipelines.evaluate``), the training validation
(:func:`srkeras.training.callbacks.validate`), the final table of a training run
(:func:`srkeras.training.job.comparison_table`), the MOS stimuli (:mod:`srkeras.stimulus_set`) and the
Keras metrics (:class:`srkeras.metrics.PSNR` / ``SSIM`` apply steps 3-4 themselves on 8-bit
references), so they all read the same numbers on the same images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from srkeras.data.degradations import degrade, upsample
from srkeras.data.io import modcrop, quantize
from srkeras.metrics import PROTOCOL as METRIC_PROTOCOL
from srkeras.metrics import SSIM_WINDOW, psnr, ssim


def protocol(degradation: str = "bicubic") -> str:
    """One line describing the protocol, for reports and JSON."""
    return METRIC_PROTOCOL + f"; LR by {degradation} (MATLAB imresize), 8-bit LR and SR"


def min_hr_side(scale: int) -> int:
    """Smallest HR side (after ``modcrop``) that still holds one SSIM window once shaved."""
    return SSIM_WINDOW + 2 * int(scale)


def to_8bit(pixels) -> np.ndarray:
    """Float [0, 1] -> the float32 values of its 8-bit quantisation (what a PNG stores and shows)."""
    return quantize(np.asarray(pixels), 8).astype(np.float32) / np.float32(255.0)


class ImageTooSmall(ValueError):
    """The HR image cannot be scored at this scale (smaller than one SSIM window after shaving)."""


@dataclass(frozen=True)
class Pair:
    """The 8-bit HR image and its 8-bit LR input, both float32 in [0, 1], (H, W, 1 or 3)."""

    hr: np.ndarray
    lr: np.ndarray


def prepare(hr, scale: int, degradation: str = "bicubic", name: str = "image") -> Pair:
    """Protocol steps 1-2: ``modcrop`` + 8-bit HR, and the 8-bit LR made by ``degradation``.

    ``hr`` is float (H, W, C) in [0, 1] (or (H, W) grey); a grey image stays grey. Idempotent on
    its own output: ``prepare(prepare(x, s).hr, s)`` gives the same pair. Raises
    :class:`ImageTooSmall` (naming ``name``) when the image cannot be scored at ``scale``.
    """
    s = int(scale)
    hr = np.asarray(hr)
    hr = modcrop(hr[..., None] if hr.ndim == 2 else hr, s)
    need = min_hr_side(s)
    if min(hr.shape[:2]) < need:
        raise ImageTooSmall(
            f"{name}: too small for x{s} ({hr.shape[1]}x{hr.shape[0]} after modcrop; need {need} px a side)"
        )
    exact = _exact_8bit(hr)  # LR from the float64 8-bit HR, as MATLAB's imresize (double) makes it
    return Pair(hr=exact.astype(np.float32), lr=to_8bit(degrade(exact, s, degradation)))


def _exact_8bit(pixels) -> np.ndarray:
    # k / 255 in float64 for the 8-bit value k: float32 and float64 copies of one 8-bit image agree.
    return quantize(np.asarray(pixels), 8) / 255.0


def score(sr, hr8, scale: int, metrics=("psnr", "ssim"), name: str | None = None) -> dict:
    """Protocol steps 3-5: ``{"psnr", "ssim"}`` of ``sr`` (clipped and quantised to 8 bits here)
    against the 8-bit ``hr8`` on Y with ``scale`` px shaved; PSNR is ``inf`` for identical images.

    ``hr8`` is quantised too (a no-op on :attr:`Pair.hr`), so the numbers do not depend on whether
    a caller holds the images as float32 or float64.

    ``metrics`` adds the perceptual / no-reference metrics of :mod:`srkeras.metrics` (``"lpips"``,
    ``"lpips_vgg"``, ``"dists"``, ``"niqe"``, ``"brisque"``), each computed as its original code does:
    on the whole 8-bit SR image (no shave, no Y; a grey image is replicated to RGB for LPIPS/DISTS,
    as their loaders do). ``name`` (the file) is used in error messages.
    """
    from srkeras.metrics.registry import check_names

    metrics = check_names(metrics)
    a, b = _exact_8bit(sr), _exact_8bit(hr8)
    if a.shape != b.shape:
        raise ValueError(f"{name + ': ' if name else ''}SR shape {a.shape} differs from HR {b.shape}")
    s = int(scale)
    out = {}
    for m in metrics:
        if m == "psnr":
            out[m] = psnr(a, b, crop_border=s)
        elif m == "ssim":
            out[m] = ssim(a, b, crop_border=s)
        else:
            out[m] = _extra_metric(m, a, b, name)
    return out


def _uint8(x: np.ndarray, rgb: bool) -> np.ndarray:
    u = np.round(np.asarray(x) * 255.0).astype(np.uint8)
    if u.ndim == 3 and u.shape[-1] == 1:
        u = np.repeat(u, 3, axis=-1) if rgb else u[..., 0]
    return u


def _extra_metric(metric: str, a, b, name) -> float:
    from srkeras.metrics.registry import NO_REFERENCE, compute

    rgb = metric not in NO_REFERENCE
    return compute(metric, _uint8(a, rgb), None if b is None else _uint8(b, rgb), name=name)


def reference_scores(hr8, metrics, name: str | None = None) -> dict:
    """The no-reference ``metrics`` (of those given) on the 8-bit HR image itself: the reference
    point a table prints beside the SR methods' values."""
    from srkeras.metrics.registry import NO_REFERENCE, check_names

    return {m: _extra_metric(m, _exact_8bit(hr8), None, name) for m in check_names(metrics) if m in NO_REFERENCE}


def missing_assets(metrics) -> str | None:
    """The error message (naming the fetch command) when an asset of ``metrics`` is not installed:
    checked before any scoring, so a run never stops half-way for want of weights."""
    from srkeras.metrics.registry import METRICS

    needed = list(dict.fromkeys(a for m in metrics for a in METRICS[m]))
    if not needed:
        return None
    from srkeras.files import display_name
    from srkeras.inference.store import models_dir
    from srkeras.pretrained import metric_assets

    missing = [a for a in needed if not metric_assets.is_installed(a)]
    if not missing:
        return None
    return (f"metric asset(s) {', '.join(missing)} not installed in {display_name(models_dir())} (set SRKERAS_MODEL_DIR "
            f"to use another directory): run `{metric_assets.fetch_command(missing)}`")


def mean_scores(scores) -> dict:
    """The scores averaged over images (the tables' mean row), per metric present (``{"psnr",
    "ssim"}`` by default); NaN when there are no images."""
    scores = list(scores)
    if not scores:
        return {"psnr": math.nan, "ssim": math.nan}
    from srkeras.metrics.registry import METRICS

    keys = [k for k in scores[0] if k in METRICS] or ["psnr", "ssim"]
    return {k: float(np.mean([v[k] for v in scores])) for k in keys}


def classical_sr(lr8, scale: int, method: str = "bicubic") -> np.ndarray:
    """The classical baselines of the tables (``bicubic``: MATLAB ``imresize``; ``nearest``) of the
    8-bit LR ``lr8`` (:attr:`Pair.lr`), computed on its exact float64 values as MATLAB does on
    ``im2double`` images, so a float32 copy of the LR gives the same SR as a float64 one."""
    return upsample(_exact_8bit(lr8), int(scale), method)


def super_resolve(model, lr, scale: int, tile: int | None = 0, max_memory=None) -> np.ndarray:
    """SR of one float LR image (H, W, C), float32 in [0, 1] with the input's channels.

    The colour path of :func:`srkeras.inference.upscale` (one definition, used for scoring,
    validation and serving): a Y-only model sees BT.601 Y with Cb/Cr upscaled by MATLAB bicubic;
    on a grey image it sees ``(16 + 219 g) / 255`` and its output is mapped back to grey; an RGB
    model on a grey image sees the grey replicated and its output is turned back to grey (luma).
    ``tile=0`` (default) runs the whole image in one call; other values as ``upscale``'s (tiles
    give the untiled result to float rounding; ``max_memory``, their budget and the receptive-field
    probe's, as ``upscale``'s). The model's traced runner and scale are cached per
    model object, so calling this at every validation of a training run costs one model call per
    image (EMA validation swaps weights into the same object).
    """
    from srkeras import inference  # TensorFlow only when a model is actually run

    lr = np.asarray(lr, dtype=np.float32)
    out = inference.upscale(model, lr, tile=tile, max_memory=max_memory)
    if out.shape[:2] != (lr.shape[0] * int(scale), lr.shape[1] * int(scale)):
        raise ValueError(f"the model returned {out.shape[:2]} for LR {lr.shape[:2]} at x{scale}")
    return out


__all__ = [
    "ImageTooSmall",
    "Pair",
    "SSIM_WINDOW",
    "classical_sr",
    "mean_scores",
    "min_hr_side",
    "missing_assets",
    "prepare",
    "protocol",
    "reference_scores",
    "score",
    "super_resolve",
    "to_8bit",
]
