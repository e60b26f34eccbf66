"""Input checks shared by the metrics: every error names the image (file name or argument)."""

from __future__ import annotations

import numpy as np

# MATLAB rgb2gray: first row of inv([1 .956 .621; 1 -.272 -.647; 1 -1.106 1.703]).
MATLAB_GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def as_uint8_scale(img, what: str, colour: bool) -> np.ndarray:
    """``img`` as float64 on the 0..255 scale, (H, W, 3) for colour metrics, (H, W) or (H, W, 3)
    otherwise. uint8 is taken as is; float arrays are read as [0, 1] images (x 255, not rounded)."""
    x = np.asarray(img)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim == 3 and x.shape[-1] == 4:
        x = x[..., :3]
    if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[-1] != 3):
        raise ValueError(f"{what}: expected an HxWx3 (or HxW) image, got shape {x.shape}")
    if colour and x.ndim == 2:
        raise ValueError(f"{what}: a grey (single-channel) image given to a colour metric; pass HxWx3 RGB "
                         "(np.repeat(img[..., None], 3, -1) to score a grey image as RGB)")
    if x.dtype == np.uint8:
        return x.astype(np.float64)
    if x.dtype.kind == "f":
        return x.astype(np.float64) * 255.0
    raise TypeError(f"{what}: expected a uint8 (or float [0, 1]) image, got dtype {x.dtype}")


def check_min_size(x: np.ndarray, minimum: tuple, what: str, metric: str, why: str) -> None:
    h, w = x.shape[:2]
    if h < minimum[0] or w < minimum[1]:
        raise ValueError(f"{what}: {h}x{w} image is smaller than the {minimum[0]}x{minimum[1]} {metric} needs ({why})")


def check_pair(img, ref, name: str | None) -> None:
    if np.shape(img) != np.shape(ref):
        raise ValueError(f"{name or 'img'}: size {np.shape(img)} differs from the reference's {np.shape(ref)}")


def matlab_gray(x: np.ndarray, quantise: bool) -> np.ndarray:
    """MATLAB ``rgb2gray`` of a 0..255 image (rounded as for uint8 input when ``quantise``)."""
    if x.ndim == 2:
        return x
    g = x @ MATLAB_GRAY
    return np.round(g) if quantise else g
