"""Network interpolation (ESRGAN, Wang et al. 2018, sec. 3.4, eq. 7):
``theta_interp = (1 - alpha) * theta_PSNR + alpha * theta_GAN``, a continuous trade-off between a
PSNR-oriented model and its GAN fine-tuned copy (same architecture) without retraining.
"""

from __future__ import annotations

import math

import keras
import numpy as np


def _signature(model):
    return [(type(layer).__name__, [tuple(w.shape) for w in layer.weights]) for layer in model.layers]


def interpolate(model_psnr: keras.Model, model_gan: keras.Model, alpha: float) -> keras.Model:
    """New model (a clone of ``model_psnr``) whose every weight is (1 - alpha) * psnr + alpha * gan.

    All weights are blended, including BN moving statistics (as blending ESRGAN's state dicts does).
    Raises ValueError if the two models do not share layer types and weight shapes.
    """
    alpha = float(alpha)
    if not math.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number, got {alpha}")
    sig_a, sig_b = _signature(model_psnr), _signature(model_gan)
    if len(sig_a) != len(sig_b):
        raise ValueError(
            f"cannot interpolate {model_psnr.name!r} and {model_gan.name!r}: different architectures "
            f"({len(sig_a)} vs {len(sig_b)} layers)"
        )
    for i, (a, b) in enumerate(zip(sig_a, sig_b)):
        if a != b:
            raise ValueError(
                f"cannot interpolate {model_psnr.name!r} and {model_gan.name!r}: layer {i} differs "
                f"({model_psnr.layers[i].name}: {a}) vs ({model_gan.layers[i].name}: {b})"
            )
    blended = [
        ((1.0 - alpha) * np.asarray(wa, dtype=np.float64) + alpha * np.asarray(wb, dtype=np.float64)).astype(
            np.asarray(wa).dtype
        )
        for wa, wb in zip(model_psnr.get_weights(), model_gan.get_weights())
    ]
    model = keras.models.clone_model(model_psnr)
    model.set_weights(blended)
    return model
