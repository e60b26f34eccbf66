"""BT.601 colour conversion in MATLAB's ``rgb2ycbcr``/``ycbcr2rgb`` convention (studio swing).

Images are float in [0, 1]. For R, G, B in [0, 1] (ITU-R BT.601, as MATLAB):

    Y  = (16  +  65.481 R + 128.553 G +  24.966 B) / 255
    Cb = (128 -  37.797 R -  74.203 G + 112.0   B) / 255
    Cr = (128 + 112.0   R -  93.786 G -  18.214 B) / 255

SR tables score the Y channel of this transform (SRCNN, VDSR, EDSR, RCAN, ESRGAN).
Functions take NumPy arrays or tensors (``keras.ops``), with channels last.
"""

from __future__ import annotations

import numpy as np

# Rows: Y, Cb, Cr; columns: R, G, B. Offsets in 8-bit units.
RGB_TO_YCBCR = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], dtype=np.float64
)
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float64)
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)


def _is_numpy(x) -> bool:
    return isinstance(x, (np.ndarray, np.generic, float, int))


def rgb_to_y(rgb, round_to_8bit: bool = False):
    """Y of BT.601 (MATLAB ``rgb2ycbcr(...)(:,:,1)``) in [16/255, 235/255] for RGB in [0, 1].

    A single-channel input is taken to be grey (R = G = B), so it maps to the same studio-swing Y as
    its RGB replica. ``round_to_8bit`` quantises Y to 8 bits as MATLAB does for uint8 input.
    """
    if _is_numpy(rgb):
        x = np.asarray(rgb, dtype=np.float64)
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        y = (x @ RGB_TO_YCBCR[0] + YCBCR_OFFSET[0]) / 255.0
        y = y[..., None]
        if round_to_8bit:
            y = np.round(y * 255.0) / 255.0
        return y.astype(np.asarray(rgb).dtype if np.asarray(rgb).dtype.kind == "f" else np.float64)
    from keras import ops

    x = ops.convert_to_tensor(rgb)
    if x.shape[-1] == 1:
        x = ops.concatenate([x, x, x], axis=-1)
    w = ops.convert_to_tensor(RGB_TO_YCBCR[0].reshape(3, 1).astype("float32"), dtype=x.dtype)
    y = (ops.matmul(x, w) + YCBCR_OFFSET[0]) / 255.0
    if round_to_8bit:
        y = ops.round(y * 255.0) / 255.0
    return y


LUMA_BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def rgb_to_y_full(rgb: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma (0.299 R + 0.587 G + 0.114 B) as (..., 1) float32: the grey image of
    an RGB result (e.g. an RGB model's output for a grey input)."""
    return (np.asarray(rgb, np.float32) @ LUMA_BT601)[..., None].astype(np.float32)


def grey_to_y(grey):
    """A grey image (R = G = B = g) as studio-swing BT.601 Y: (16 + 219 g) / 255 (exact for any g)."""
    return (16.0 + 219.0 * grey) / 255.0


def y_to_grey(y):
    """Inverse of :func:`grey_to_y`: (255 Y - 16) / 219, not clipped."""
    return (y * 255.0 - 16.0) / 219.0


def rgb_to_ycbcr(rgb):
    """(..., 3) RGB in [0, 1] -> (..., 3) YCbCr in [0, 1] (studio swing), MATLAB convention."""
    x = np.asarray(rgb, dtype=np.float64)
    out = (x @ RGB_TO_YCBCR.T + YCBCR_OFFSET) / 255.0
    return out.astype(np.float32) if np.asarray(rgb).dtype == np.float32 else out


def ycbcr_to_rgb(ycbcr):
    """Inverse of :func:`rgb_to_ycbcr` (MATLAB ``ycbcr2rgb``); the result is not clipped."""
    x = np.asarray(ycbcr, dtype=np.float64)
    out = (x * 255.0 - YCBCR_OFFSET) @ YCBCR_TO_RGB.T
    return out.astype(np.float32) if np.asarray(ycbcr).dtype == np.float32 else out
