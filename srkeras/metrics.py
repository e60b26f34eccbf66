"""PSNR and SSIM under the SR table protocol, as NumPy functions and as Keras metrics.

Default protocol (SRCNN, EDSR, RCAN, ESRGAN tables): images in [0, 1]; BT.601 Y channel
(MATLAB ``rgb2ycbcr`` on uint8, so Y is rounded to 8 bits) on the 8-bit scale; a grey
(single-channel) image is its own Y, as MATLAB scripts skip ``rgb2ycbcr`` for it;
``crop_border = scale`` pixels shaved from every side;

* PSNR = 10 log10(255^2 / MSE);
* SSIM of Wang et al. 2004 (eq. 13): 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03,
  L = 255, statistics over the 'valid' region only, mean of the SSIM map.

RGB variants (``y_channel=False``) average the per-channel SSIM and take the MSE over all channels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from srkeras.data.color import rgb_to_y

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


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(ax**2) / (2.0 * sigma**2))
    return g / g.sum()


def _ssim_single(a: np.ndarray, b: np.ndarray, window: np.ndarray) -> float:
    c1 = (0.01 * 255.0) ** 2
    c2 = (0.03 * 255.0) ** 2
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


def psnr_batch(y_true, y_pred, crop_border: int = 0, y_channel: bool = True):
    """Per-image PSNR of a batch, as a (N,) tensor, same protocol as :func:`psnr`."""
    from keras import ops

    a, b = _prepare_ops(y_true, crop_border, y_channel), _prepare_ops(y_pred, crop_border, y_channel)
    mse = ops.mean(ops.square(a - b), axis=(1, 2, 3))
    mse = ops.maximum(mse, 1e-10)
    return 10.0 * ops.log(255.0**2 / mse) / np.log(10.0)


def ssim_batch(y_true, y_pred, crop_border: int = 0, y_channel: bool = True):
    """Per-image SSIM of a batch, as a (N,) tensor, same protocol as :func:`ssim`."""
    from keras import ops

    a, b = _prepare_ops(y_true, crop_border, y_channel), _prepare_ops(y_pred, crop_border, y_channel)
    channels = a.shape[-1]
    g = _gaussian_window()
    kernel = np.outer(g, g).astype("float32")[:, :, None, None]
    kernel = ops.convert_to_tensor(np.tile(kernel, (1, 1, channels, 1)))

    def filt(x):
        return ops.depthwise_conv(x, kernel, strides=1, padding="valid")

    c1 = (0.01 * 255.0) ** 2
    c2 = (0.03 * 255.0) ** 2
    mu_a, mu_b = filt(a), filt(b)
    aa = filt(a * a) - mu_a * mu_a
    bb = filt(b * b) - mu_b * mu_b
    ab = filt(a * b) - mu_a * mu_b
    smap = ((2 * mu_a * mu_b + c1) * (2 * ab + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (aa + bb + c2))
    return ops.mean(smap, axis=(1, 2, 3))


def _prepare_ops(x, crop_border, y_channel):
    from keras import ops

    x = ops.cast(ops.convert_to_tensor(x), "float32")
    if crop_border:
        x = x[:, crop_border:-crop_border, crop_border:-crop_border, :]
    if y_channel and x.shape[-1] == 3:
        x = rgb_to_y(x)
    return x * 255.0


def _keras_metric(name, fn):
    import keras

    @keras.saving.register_keras_serializable(package="srkeras")
    class _Metric(keras.metrics.Mean):
        def __init__(self, crop_border: int = 0, y_channel: bool = True, name=name, **kwargs):
            super().__init__(name=name, **kwargs)
            self.crop_border = crop_border
            self.y_channel = y_channel

        def update_state(self, y_true, y_pred, sample_weight=None):
            from keras import ops

            y_pred = ops.clip(y_pred, 0.0, 1.0)
            return super().update_state(fn(y_true, y_pred, self.crop_border, self.y_channel), sample_weight)

        def get_config(self):
            return {**super().get_config(), "crop_border": self.crop_border, "y_channel": self.y_channel}

    _Metric.__name__ = _Metric.__qualname__ = name.upper()
    return _Metric


def __getattr__(attr):
    # Keras metric classes are built on first use so importing this module needs no Keras/TF.
    if attr in ("PSNR", "SSIM"):
        cls = _keras_metric(attr.lower(), psnr_batch if attr == "PSNR" else ssim_batch)
        globals()[attr] = cls
        return cls
    raise AttributeError(attr)
