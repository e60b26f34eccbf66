"""HR -> LR degradations and the classical LR -> HR upsamplers, selectable by name.

Degradations (NumPy, float [0, 1], (H, W, C)):

* ``bicubic``: MATLAB ``imresize(hr, 1/s, 'bicubic')`` with antialiasing, the protocol of SRCNN,
  SRResNet/SRGAN, EDSR and ESRGAN.
* ``blur_bicubic``: Gaussian blur of standard deviation ``sigma`` (default 1.0) then bicubic
  downsampling, Johnson et al. 2016, sec. 4.2 ("blurring with a Gaussian kernel of width sigma=1.0
  and downsampling with bicubic interpolation").
* ``nearest``: point sampling (every s-th pixel, taking the centre one for odd s), no prefilter.

Upsamplers (the non-learned baselines and MOS anchors): ``bicubic`` (MATLAB), ``nearest``
(pixel replication: the NN anchor rated 1 in the SRGAN MOS study).

Every function expects H and W to be multiples of ``scale`` for degradations (``modcrop`` first).
"""

from __future__ import annotations

import numpy as np

from srkeras.data.imresize import imresize


def bicubic_down(hr: np.ndarray, scale: int) -> np.ndarray:
    return imresize(hr, 1.0 / scale)


def blur_bicubic_down(hr: np.ndarray, scale: int, sigma: float = 1.0) -> np.ndarray:
    from scipy import ndimage  # here: SciPy is half a CPU second that srkeras.data's other users never need

    # Blur H and W only; 'mirror' matches the symmetric borders the bicubic kernel uses.
    sig = (sigma, sigma) + (0,) * (hr.ndim - 2)
    blurred = ndimage.gaussian_filter(np.asarray(hr, dtype=np.float64), sigma=sig, mode="mirror", truncate=4.0)
    return imresize(blurred.astype(hr.dtype, copy=False), 1.0 / scale)


def nearest_down(hr: np.ndarray, scale: int) -> np.ndarray:
    off = (scale - 1) // 2
    return np.ascontiguousarray(hr[off::scale, off::scale, ...])


DEGRADATIONS = {
    "bicubic": bicubic_down,
    "blur_bicubic": blur_bicubic_down,
    "nearest": nearest_down,
}


def degrade(hr: np.ndarray, scale: int, name: str = "bicubic", **options) -> np.ndarray:
    """Make the LR image from ``hr`` with the named degradation (see module docstring)."""
    try:
        fn = DEGRADATIONS[name]
    except KeyError:
        raise ValueError(f"unknown degradation {name!r}; choose from {sorted(DEGRADATIONS)}") from None
    h, w = hr.shape[0], hr.shape[1]
    if h % scale or w % scale:
        raise ValueError(f"HR size {h}x{w} is not a multiple of scale {scale}; modcrop it first")
    return fn(hr, scale, **options)


def bicubic_up(lr: np.ndarray, scale: int) -> np.ndarray:
    return imresize(lr, float(scale))


def nearest_up(lr: np.ndarray, scale: int) -> np.ndarray:
    return np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)


UPSAMPLERS = {"bicubic": bicubic_up, "nearest": nearest_up}


def upsample(lr: np.ndarray, scale: int, name: str = "bicubic") -> np.ndarray:
    """Classical upsampling of ``lr`` by an integer ``scale`` (``bicubic`` or ``nearest``)."""
    try:
        fn = UPSAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown upsampler {name!r}; choose from {sorted(UPSAMPLERS)}") from None
    return fn(lr, int(scale))
