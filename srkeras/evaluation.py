"""The evaluation protocol of the SR tables, in one place: every caller scores through this module.

The protocol of SRCNN (Dong et al. 2014), EDSR, RCAN and ESRGAN, as their MATLAB scripts run it:

1. ``modcrop`` the HR image to a multiple of the scale and store it as 8 bits;
2. LR = MATLAB ``imresize(hr, 1/s, 'bicubic')`` (antialiased), stored as 8 bits;
3. the SR output quantised to 8 bits;
4. BT.601 Y as MATLAB's ``rgb2ycbcr`` on uint8 (Y rounded to 8 bits; a grey image is its own Y);
5. ``s`` pixels shaved from every border; PSNR with peak 255 and the SSIM of Wang et al. 2004
   (11x11 Gaussian, sigma 1.5, valid region): :mod:`srkeras.metrics`.

:func:`prepare` does steps 1-2, :func:`score` steps 3-5, :func:`super_resolve` runs a generator with
the Y-only colour path (a 1-channel model sees BT.601 Y; Cb/Cr are upscaled bicubically).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from srkeras.data.degradations import degrade
from srkeras.data.io import modcrop, quantize
from srkeras.metrics import PROTOCOL as METRIC_PROTOCOL
from srkeras.metrics import psnr, ssim

SSIM_WINDOW = 11


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
    """The 8-bit HR image and its 8-bit LR input, both float32 in [0, 1]."""

    hr: np.ndarray
    lr: np.ndarray


def prepare(hr, scale: int, degradation: str = "bicubic", name: str = "image") -> Pair:
    """Protocol steps 1-2: ``modcrop`` + 8-bit HR, and the 8-bit LR made by ``degradation``.

    Raises :class:`ImageTooSmall` (naming ``name``) when the image cannot be scored at ``scale``.
    """
    s = int(scale)
    hr = modcrop(np.asarray(hr), s)
    need = min_hr_side(s)
    if min(hr.shape[:2]) < need:
        raise ImageTooSmall(
            f"{name}: too small for x{s} ({hr.shape[1]}x{hr.shape[0]} after modcrop; need {need} px a side)"
        )
    hr8 = to_8bit(hr)
    return Pair(hr=hr8, lr=to_8bit(degrade(hr8, s, degradation)))


def score(sr, hr8, scale: int) -> dict:
    """Protocol steps 3-5: ``{"psnr", "ssim"}`` of ``sr`` (quantised to 8 bits here) against the
    8-bit ``hr8`` on Y with ``scale`` px shaved; PSNR is ``inf`` for identical images."""
    sr8 = to_8bit(np.clip(np.asarray(sr, dtype=np.float32), 0.0, 1.0))
    if sr8.shape != np.shape(hr8):
        raise ValueError(f"SR shape {sr8.shape} differs from HR {np.shape(hr8)}")
    return {"psnr": psnr(sr8, hr8, crop_border=int(scale)), "ssim": ssim(sr8, hr8, crop_border=int(scale))}


def model_channels(model) -> int:
    """Input channels of a generator: 1 (Y-only) or 3 (RGB)."""
    return int(model.inputs[0].shape[-1])


def super_resolve(model, lr, scale: int) -> np.ndarray:
    """SR of one float LR image (H, W, C), untiled, float32 in [0, 1] with the input's channels.

    The colour path of :func:`srkeras.inference.upscale` (one definition, used for scoring,
    validation and serving): a Y-only model sees BT.601 Y with Cb/Cr upscaled by MATLAB bicubic;
    an RGB model on a grey image sees the grey replicated and its output is turned back to grey.
    """
    from srkeras import inference  # TensorFlow only when a model is actually run

    out = inference.upscale(model, np.asarray(lr, dtype=np.float32), tile=0)
    if out.shape[:2] != (lr.shape[0] * int(scale), lr.shape[1] * int(scale)):
        raise ValueError(f"the model returned {out.shape[:2]} for LR {lr.shape[:2]} at x{scale}")
    return out


__all__ = [
    "ImageTooSmall",
    "Pair",
    "SSIM_WINDOW",
    "min_hr_side",
    "model_channels",
    "prepare",
    "protocol",
    "score",
    "super_resolve",
    "to_8bit",
]
