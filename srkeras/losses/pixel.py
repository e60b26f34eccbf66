"""Pixel losses, averaged per image over (H, W, C): MSE, L1 and Charbonnier.

* MSE: SRCNN (Dong et al. 2014, eq. 1), SRResNet/SRGAN (Ledig et al. 2017, eq. 4).
* L1: EDSR (Lim et al. 2017), ESRGAN's content term (Wang et al. 2018, eq. 3, L_1).
* Charbonnier: LapSRN (Lai et al. 2017) robust loss rho(x) = sqrt(x^2 + eps^2), eps = 1e-3
  (the paper sums over pixels and images; here it is averaged, which only rescales the gradient).

Functions return one value per image (shape (N,)); the registered ``keras.losses.Loss`` classes
then apply the Keras reduction (default: mean over the batch).
"""

from __future__ import annotations

import keras
from keras import ops

CHARBONNIER_EPS = 1e-3


def _per_image_mean(x):
    x = ops.cast(x, "float32")
    if len(x.shape) <= 1:
        return x
    return ops.mean(ops.reshape(x, (ops.shape(x)[0], -1)), axis=-1)


def _diff(y_true, y_pred):
    return ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")


@keras.saving.register_keras_serializable(package="srkeras")
def mse(y_true, y_pred):
    """Mean squared error per image."""
    return _per_image_mean(ops.square(_diff(y_true, y_pred)))


@keras.saving.register_keras_serializable(package="srkeras")
def l1(y_true, y_pred):
    """Mean absolute error per image."""
    return _per_image_mean(ops.abs(_diff(y_true, y_pred)))


@keras.saving.register_keras_serializable(package="srkeras")
def charbonnier(y_true, y_pred, eps: float = CHARBONNIER_EPS):
    """Mean of sqrt((y_pred - y_true)^2 + eps^2) per image (LapSRN, eps = 1e-3)."""
    return _per_image_mean(ops.sqrt(ops.square(_diff(y_true, y_pred)) + eps * eps))


@keras.saving.register_keras_serializable(package="srkeras")
class MSE(keras.losses.Loss):
    """Mean squared error (SRCNN eq. 1, SRGAN eq. 4)."""

    def __init__(self, name="mse", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return mse(y_true, y_pred)


@keras.saving.register_keras_serializable(package="srkeras")
class L1(keras.losses.Loss):
    """Mean absolute error (EDSR, ESRGAN L_1)."""

    def __init__(self, name="l1", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return l1(y_true, y_pred)


@keras.saving.register_keras_serializable(package="srkeras")
class Charbonnier(keras.losses.Loss):
    """Charbonnier loss sqrt(x^2 + eps^2) (LapSRN, Lai et al. 2017, eps = 1e-3)."""

    def __init__(self, eps: float = CHARBONNIER_EPS, name="charbonnier", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.eps = float(eps)

    def call(self, y_true, y_pred):
        return charbonnier(y_true, y_pred, self.eps)

    def get_config(self):
        return {**super().get_config(), "eps": self.eps}
