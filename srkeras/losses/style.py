"""Style (Gram matrix) loss and total-variation regulariser (Johnson et al. 2016, ECCV).

* Gram matrix (eqs. 3-4): G_j(x)[c, c'] = sum_{h,w} phi_j(x)[h,w,c] phi_j(x)[h,w,c'] / (C_j H_j W_j),
  i.e. G = psi^T psi / (C H W) with psi the (H W, C) reshaped feature map.
* Style reconstruction loss (eq. 5): ||G_j(y^) - G_j(y)||_F^2 (squared Frobenius norm), summed
  over the style layers with weights.
* Total variation (Sec. 3.3, after Mahendran & Vedaldi 2015): *anisotropic* sum over all
  vertical and horizontal neighbour differences and channels of |d|^p. ``p=2`` (default) is the
  sum of squared differences, equal to Mahendran & Vedaldi's TV with beta = 2; ``p=1`` is the sum
  of absolute differences (same as ``tf.image.total_variation``). Summed, not averaged, per image.
"""

from __future__ import annotations

import keras
from keras import ops

from srkeras.losses.features import FeatureExtractor

# Johnson et al. style layers on VGG16: relu1_2, relu2_2, relu3_3, relu4_3.
JOHNSON_STYLE_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3")


def gram_matrix(features):
    """(N, H, W, C) features -> (N, C, C) Gram matrices normalised by C*H*W (Johnson eq. 3)."""
    f = ops.cast(features, "float32")
    n, h, w, c = (ops.shape(f)[i] for i in range(4))
    psi = ops.reshape(f, (n, h * w, c))
    norm = ops.cast(c * h * w, "float32")
    return ops.matmul(ops.transpose(psi, (0, 2, 1)), psi) / norm


def style_distance(features_true, features_pred):
    """Per-image squared Frobenius norm ||G(pred) - G(true)||_F^2 (Johnson eq. 5).

    ``features_true`` may hold a single style image (batch 1); its Gram matrix is broadcast.
    """
    d = gram_matrix(features_pred) - gram_matrix(features_true)
    return ops.sum(ops.square(d), axis=(1, 2))


def total_variation(images, p: int = 2):
    """Per-image anisotropic TV: sum of |x[i+1,j]-x[i,j]|^p + |x[i,j+1]-x[i,j]|^p over pixels and channels."""
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    x = ops.cast(images, "float32")
    if len(x.shape) == 3:
        x = x[None]
    dy = x[:, 1:, :, :] - x[:, :-1, :, :]
    dx = x[:, :, 1:, :] - x[:, :, :-1, :]
    f = ops.square if p == 2 else ops.abs
    return ops.sum(f(dy), axis=(1, 2, 3)) + ops.sum(f(dx), axis=(1, 2, 3))


@keras.saving.register_keras_serializable(package="srkeras")
class TotalVariation(keras.losses.Loss):
    """Total-variation regulariser of ``y_pred`` (``y_true`` is ignored); see :func:`total_variation`."""

    def __init__(self, p: int = 2, name="total_variation", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.p = int(p)

    def call(self, y_true, y_pred):
        return total_variation(y_pred, self.p)

    def get_config(self):
        return {**super().get_config(), "p": self.p}


@keras.saving.register_keras_serializable(package="srkeras")
class StyleLoss(keras.losses.Loss):
    """Johnson et al. style loss: sum_l w_l ||G_l(y_pred) - G_l(y_true)||_F^2 on a frozen backbone.

    Same backbone / layers / weights / input_range arguments as :class:`~srkeras.losses.PerceptualLoss`
    (default: VGG16 relu1_2, relu2_2, relu3_3, relu4_3). ``y_true`` may be one style image of any size.
    """

    def __init__(
        self,
        backbone="vgg16",
        layers=JOHNSON_STYLE_LAYERS,
        weights="imagenet",
        before_activation: bool = False,
        input_range=(0.0, 1.0),
        preprocessing: str | None = None,
        name="style_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.extractor = FeatureExtractor(backbone, layers, weights, before_activation, input_range, preprocessing)
        self._config = dict(
            backbone=backbone if isinstance(backbone, str) else None,
            layers=layers if isinstance(layers, (str, dict)) else list(layers),
            weights=weights if weights is None or isinstance(weights, str) else str(weights),
            before_activation=before_activation,
            input_range=list(self.extractor.input_range),
            preprocessing=preprocessing,
        )

    def call(self, y_true, y_pred):
        f_true = [ops.stop_gradient(f) for f in self.extractor(y_true)]
        f_pred = self.extractor(y_pred)
        total = 0.0
        for w, a, b in zip(self.extractor.layer_weights.values(), f_true, f_pred):
            total = total + w * style_distance(a, b)
        return total

    def get_config(self):
        if self._config["backbone"] is None:
            raise TypeError("a StyleLoss on a custom keras.Model backbone is not serializable")
        return {**super().get_config(), **self._config}
