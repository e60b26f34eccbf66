"""PSNR and SSIM under the SR table protocol, as NumPy functions and as Keras metrics.

Default protocol (SRCNN, EDSR, RCAN, ESRGAN tables): images in [0, 1]; BT.601 Y channel
(MATLAB ``rgb2ycbcr`` on uint8, so Y is rounded to 8 bits) on the 8-bit scale; a grey
(single-channel) image is its own Y, as MATLAB scripts skip ``rgb2ycbcr`` for it;
``crop_border = scale`` pixels shaved from every side;

* PSNR = 10 log10(255^2 / MSE);
* SSIM of Wang et al. 2004 (eq. 13): 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03,
  L = 255, statistics over the 'valid' region only, mean of the SSIM map.

RGB variants (``y_channel=False``) average the per-channel SSIM and take the MSE over all channels.

The NumPy functions score the arrays they are given (``round_y`` rounds Y as MATLAB does for uint8
input); the whole protocol -- modcrop, LR by MATLAB bicubic, 8-bit LR and SR, then these metrics --
is :mod:`srkeras.evaluation`. The Keras metrics :class:`PSNR` / :class:`SSIM` (``psnr_batch`` /
``ssim_batch``) apply the protocol's 8-bit steps themselves when the reference is an 8-bit image
(:func:`prepare_batch`), so they read what :func:`srkeras.evaluation.score` reads on the same images.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from srkeras.data.color import rgb_to_y

SSIM_WINDOW = 11  # Gaussian window of Wang et al. 2004: 11x11, sigma 1.5
SSIM_SIGMA = 1.5
SSIM_C1 = (0.01 * 255.0) ** 2
SSIM_C2 = (0.03 * 255.0) ** 2
PROTOCOL = "Y (BT.601, MATLAB rgb2ycbcr, 8-bit; grey as is), border of `scale` px shaved, SSIM Wang 11x11 sigma=1.5 valid"


def _prepare(img, crop_border: int, y_channel: bool, round_y: bool) -> np.ndarray:
    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
    if crop_border:
        x = x[crop_border:-crop_border, crop_border:-crop_border, :]
    if y_channel and x.shape[-1] == 3:
        x = rgb_to_y(x, round_to_8bit=round_y).astype(np.float64)
    return x * 255.0


def _check_pair(sr, hr):
    if np.shape(sr) != np.shape(hr):
        raise ValueError(f"SR and HR shapes differ: {np.shape(sr)} vs {np.shape(hr)}")


def psnr(sr, hr, crop_border: int = 0, y_channel: bool = True, round_y: bool = True) -> float:
    """PSNR in dB between two float [0, 1] images (H, W, C); ``inf`` for identical images."""
    _check_pair(sr, hr)
    a = _prepare(sr, crop_border, y_channel, round_y)
    b = _prepare(hr, crop_border, y_channel, round_y)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def _gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(ax**2) / (2.0 * sigma**2))
    return g / g.sum()


def _ssim_single(a: np.ndarray, b: np.ndarray, window: np.ndarray) -> float:
    c1, c2 = SSIM_C1, SSIM_C2
    r = len(window) // 2

    def filt(x):
        # Separable Gaussian, then keep the 'valid' part (no padding contributes).
        y = ndimage.correlate1d(x, window, axis=0, mode="constant")
        y = ndimage.correlate1d(y, window, axis=1, mode="constant")
        return y[r:-r, r:-r]

    if a.shape[0] < len(window) or a.shape[1] < len(window):
        raise ValueError(f"image of {a.shape[0]}x{a.shape[1]} (after shaving) is smaller than the SSIM window")
    mu_a, mu_b = filt(a), filt(b)
    aa, bb, ab = filt(a * a) - mu_a**2, filt(b * b) - mu_b**2, filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * ab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (aa + bb + c2)
    return float(np.mean(num / den))


def ssim(sr, hr, crop_border: int = 0, y_channel: bool = True, round_y: bool = True) -> float:
    """SSIM (Wang et al. 2004) between two float [0, 1] images; 1.0 for identical images."""
    _check_pair(sr, hr)
    a = _prepare(sr, crop_border, y_channel, round_y)
    b = _prepare(hr, crop_border, y_channel, round_y)
    window = _gaussian_window()
    return float(np.mean([_ssim_single(a[..., c], b[..., c], window) for c in range(a.shape[-1])]))


# --------------------------------------------------------------------------------------------------
# Keras (keras.ops) versions for training: batched (N, H, W, C) tensors in [0, 1].
# --------------------------------------------------------------------------------------------------

EIGHT_BIT_TOLERANCE = 0.25  # in 8-bit steps: float32 (and float16) copies of 8-bit images are within it


def psnr_batch(y_true, y_pred, crop_border: int = 0, y_channel: bool = True, eight_bit: bool | None = None):
    """Per-image PSNR of a batch, as a (N,) tensor: :func:`psnr` (see :func:`prepare_batch` for
    ``eight_bit``). Identical images give a large finite value instead of ``inf``."""
    from keras import ops

    a, b = prepare_batch(y_true, y_pred, crop_border, y_channel, eight_bit)
    mse = ops.mean(ops.square(a - b), axis=(1, 2, 3))
    mse = ops.maximum(mse, 1e-10)
    return 10.0 * ops.log(255.0**2 / mse) / np.log(10.0)


def ssim_batch(y_true, y_pred, crop_border: int = 0, y_channel: bool = True, eight_bit: bool | None = None):
    """Per-image SSIM of a batch, as a (N,) tensor: :func:`ssim` (see :func:`prepare_batch` for
    ``eight_bit``)."""
    from keras import ops

    a, b = prepare_batch(y_true, y_pred, crop_border, y_channel, eight_bit)
    channels = a.shape[-1]
    g = _gaussian_window()
    kernel = np.outer(g, g).astype("float32")[:, :, None, None]
    kernel = ops.convert_to_tensor(np.tile(kernel, (1, 1, channels, 1)))

    def filt(x):
        return ops.depthwise_conv(x, kernel, strides=1, padding="valid")

    # Second moments of values centred on mid-grey: the variances are shift invariant, and float32
    # loses less to cancellation on values in [-128, 128] than on [0, 255].
    mu_a, mu_b = filt(a), filt(b)
    ca, cb, ma, mb = a - 128.0, b - 128.0, mu_a - 128.0, mu_b - 128.0
    aa = filt(ca * ca) - ma * ma
    bb = filt(cb * cb) - mb * mb
    ab = filt(ca * cb) - ma * mb
    num = (2 * mu_a * mu_b + SSIM_C1) * (2 * ab + SSIM_C2)
    den = (mu_a * mu_a + mu_b * mu_b + SSIM_C1) * (aa + bb + SSIM_C2)
    return ops.mean(num / den, axis=(1, 2, 3))


def prepare_batch(y_true, y_pred, crop_border: int = 0, y_channel: bool = True, eight_bit: bool | None = None):
    """The (HR, SR) pair of a batch as the protocol scores it: shaved, Y (or grey, or RGB), x255.

    ``eight_bit`` decides whether the 8-bit steps of the protocol apply (SR clipped and quantised to
    8 bits, Y rounded to 8 bits as MATLAB ``rgb2ycbcr`` does on uint8). ``True``: always.
    ``False``: never (the float images as given, Y not rounded: ``rgb2ycbcr`` on double).
    ``None`` (default): per image, when its HR (``y_true``) is an 8-bit image, i.e. every value lies
    within :data:`EIGHT_BIT_TOLERANCE` of a multiple of 1/255 -- the protocol's own HR images (PNG
    test sets, :func:`srkeras.evaluation.prepare`). So a float SR prediction against an 8-bit HR
    scores exactly as :func:`srkeras.evaluation.score` scores it, and 8-bit SR and HR score as
    :func:`psnr` / :func:`ssim`; float references (synthetic data, 16-bit HR, float Y targets of
    Y-only training) are scored unrounded, as :func:`psnr` / :func:`ssim` with ``round_y=False``.
    """
    from keras import ops

    a = ops.cast(ops.convert_to_tensor(y_true), "float32")
    b = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    if crop_border:
        a = a[:, crop_border:-crop_border, crop_border:-crop_border, :]
        b = b[:, crop_border:-crop_border, crop_border:-crop_border, :]
    mask = None
    if eight_bit is None:
        off = ops.max(ops.abs(a * 255.0 - ops.round(a * 255.0)), axis=(1, 2, 3))
        mask = ops.reshape(off <= EIGHT_BIT_TOLERANCE, (-1, 1, 1, 1))

    def to_8bit(x):
        if eight_bit is False:
            return x
        q = ops.round(ops.clip(x, 0.0, 1.0) * 255.0) / 255.0
        return q if mask is None else ops.where(mask, q, x)

    a, b = to_8bit(a), to_8bit(b)
    if y_channel and a.shape[-1] == 3:
        a, b = to_8bit(rgb_to_y(a)), to_8bit(rgb_to_y(b))
    return a * 255.0, b * 255.0


def _keras_metric(name, fn):
    import keras

    @keras.saving.register_keras_serializable(package="srkeras")
    class _Metric(keras.metrics.Mean):
        def __init__(self, crop_border: int = 0, y_channel: bool = True, eight_bit: bool | None = None, name=name, **kwargs):
            super().__init__(name=name, **kwargs)
            self.crop_border = crop_border
            self.y_channel = y_channel
            self.eight_bit = eight_bit

        def update_state(self, y_true, y_pred, sample_weight=None):
            from keras import ops

            y_pred = ops.clip(y_pred, 0.0, 1.0)
            scores = fn(y_true, y_pred, self.crop_border, self.y_channel, self.eight_bit)
            return super().update_state(scores, sample_weight)

        def get_config(self):
            extra = {"crop_border": self.crop_border, "y_channel": self.y_channel, "eight_bit": self.eight_bit}
            return {**super().get_config(), **extra}

    _Metric.__name__ = _Metric.__qualname__ = name.upper()
    return _Metric


def __getattr__(attr):
    # Keras metric classes are built on first use so importing this module needs no Keras/TF.
    if attr in ("PSNR", "SSIM"):
        cls = _keras_metric(attr.lower(), psnr_batch if attr == "PSNR" else ssim_batch)
        globals()[attr] = cls
        return cls
    raise AttributeError(attr)
