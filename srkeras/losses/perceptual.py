"""Perceptual (feature / content) losses on a frozen ImageNet backbone.

``l = sum_l w_l * mean_{h,w,c} rho(s * (phi_l(y_pred) - phi_l(y_true)))`` with rho = square (L2)
or abs (L1), s the feature rescale, mean over the feature map (per image).

* SRGAN (Ledig et al. 2017, eq. 5): VGG19 phi_i,j after ReLU, squared error averaged over the map;
  the VGG feature maps are rescaled by 1/12.75 (Sec. 3.2: equivalent to ~0.006 x eq. 5) to be
  comparable to the MSE loss; both presets vgg22 and vgg54 use it.
* ESRGAN (Wang et al. 2018, Sec. 3.3): VGG19 conv5_4 *before* ReLU, L1.
* Johnson et al. 2016 (eq. 2): l_feat = ||phi_j(y^) - phi_j(y)||_2^2 / (C H W), VGG16 relu2_2 for SR.

Keras' VGG (caffe weights) takes caffe preprocessing (BGR, mean-subtracted 0..255); this is done in
``keras.ops`` inside the loss, so gradients flow to the generator.
"""

from __future__ import annotations

import keras
from keras import ops

from srkeras.losses.features import FeatureExtractor

SRGAN_RESCALE = 1.0 / 12.75

# name -> PerceptualLoss kwargs (paper choices).
PRESETS: dict[str, dict] = {
    # SRGAN VGG22: phi_2,2 of VGG19 (after ReLU), MSE on maps rescaled by 1/12.75.
    "vgg22": dict(backbone="vgg19", layers="block2_conv2", criterion="l2", feature_scale=SRGAN_RESCALE),
    # SRGAN VGG54: phi_5,4 of VGG19 (after ReLU), MSE on maps rescaled by 1/12.75.
    "vgg54": dict(backbone="vgg19", layers="block5_conv4", criterion="l2", feature_scale=SRGAN_RESCALE),
    # ESRGAN: VGG19 conv5_4 before ReLU, L1, no rescale.
    "vgg54_preact": dict(backbone="vgg19", layers="block5_conv4", before_activation=True, criterion="l1"),
    # Johnson et al. SR: VGG16 relu2_2, squared L2 normalised by C*H*W (= MSE).
    "vgg16_relu2_2": dict(backbone="vgg16", layers="block2_conv2", criterion="l2"),
    # The same on torchvision's VGG16 (torch preprocessing), the backbone of LPIPS-vgg and DISTS.
    "vgg16_torch_relu2_2": dict(backbone="vgg16_torch", layers="block2_conv2", criterion="l2"),
    # SRGAN's content loss (MSE on maps rescaled by 1/12.75) on any backbone and layer: the backbone
    # study (srkeras.study) sets ``backbone`` / ``layers`` from its depth table (srkeras.study.layers).
    "srgan_content": dict(backbone="vgg19", layers="block5_conv4", criterion="l2", feature_scale=SRGAN_RESCALE),
}

_CRITERIA = {"l2": "l2", "mse": "l2", "l1": "l1", "mae": "l1"}


def feature_distance(a, b, criterion: str = "l2", scale: float = 1.0):
    """Per-image mean over (H, W, C) of ``(s(a - b))^2`` (l2) or ``|s(a - b)|`` (l1)."""
    d = (ops.cast(a, "float32") - ops.cast(b, "float32")) * scale
    d = ops.square(d) if _CRITERIA[criterion] == "l2" else ops.abs(d)
    return ops.mean(ops.reshape(d, (ops.shape(d)[0], -1)), axis=-1)


@keras.saving.register_keras_serializable(package="srkeras")
class PerceptualLoss(keras.losses.Loss):
    """Feature-space loss on a pluggable frozen backbone (see module docstring for the formula).

    Args:
      backbone: name in :data:`srkeras.losses.backbones.BACKBONES` (vgg16, vgg19, resnet152,
        resnet152v2, densenet201, inception_v3, convnext_tiny, efficientnetv2_s, ...) or a keras.Model.
      layers: layer name, list, or ``{name: weight}``; ``"name:pre"`` taps before the activation.
      weights: ``"imagenet"`` (Keras cache, never downloaded), a local weights file, or None (random).
      before_activation: default tap before the (fused) activation, as ESRGAN.
      criterion: ``"l2"`` (mean squared) or ``"l1"`` (mean absolute) feature difference.
      feature_scale: multiply features before the difference (SRGAN: 1/12.75).
      input_range: range of y_true / y_pred, (0, 1) or (-1, 1).
      preprocessing: override the backbone's preprocessing mode (caffe | torch | tf | none).

    ``call`` returns one value per image; ``y_true`` features are constants (stop_gradient).
    """

    def __init__(
        self,
        backbone="vgg19",
        layers="block5_conv4",
        weights="imagenet",
        before_activation: bool = False,
        criterion: str = "l2",
        feature_scale: float = 1.0,
        input_range=(0.0, 1.0),
        preprocessing: str | None = None,
        name: str = "perceptual_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if criterion not in _CRITERIA:
            raise ValueError(f"criterion must be one of {sorted(_CRITERIA)}, got {criterion!r}")
        self.extractor = FeatureExtractor(
            backbone, layers, weights, before_activation, input_range, preprocessing
        )
        self.criterion = criterion
        self.feature_scale = float(feature_scale)
        self._config = dict(
            backbone=backbone if isinstance(backbone, str) else None,
            layers=layers if isinstance(layers, (str, dict)) else list(layers),
            weights=weights if weights is None or isinstance(weights, str) else str(weights),
            before_activation=before_activation,
            criterion=criterion,
            feature_scale=self.feature_scale,
            input_range=list(self.extractor.input_range),
            preprocessing=preprocessing,
        )

    def features(self, images) -> list:
        """Backbone features of ``images`` at the configured taps (list, order of ``layers``)."""
        return self.extractor(images)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        n = ops.shape(y_pred)[0]
        # One backbone pass for both batches (BN layers run in inference mode, so no batch coupling).
        feats = self.extractor(ops.concatenate([y_true, y_pred], axis=0))
        total = 0.0
        for (_tap, w), f in zip(self.extractor.layer_weights.items(), feats):
            f_true, f_pred = ops.stop_gradient(f[:n]), f[n:]
            total = total + w * feature_distance(f_pred, f_true, self.criterion, self.feature_scale)
        return total

    def get_config(self):
        if self._config["backbone"] is None:
            raise TypeError("a PerceptualLoss on a custom keras.Model backbone is not serializable")
        return {**super().get_config(), **self._config}


def perceptual_loss(name: str, weights="imagenet", **overrides) -> PerceptualLoss:
    """Paper presets: ``vgg22``, ``vgg54`` (SRGAN), ``vgg54_preact`` (ESRGAN), ``vgg16_relu2_2`` (Johnson)."""
    key = name.lower()
    if key not in PRESETS:
        raise ValueError(f"unknown perceptual loss {name!r}; known: {', '.join(PRESETS)}")
    return PerceptualLoss(**{**PRESETS[key], "weights": weights, "name": key, **overrides})


@keras.saving.register_keras_serializable(package="srkeras")
class LPIPSLoss(keras.losses.Loss):
    """LPIPS v0.1 (:func:`srkeras.metrics.lpips_batch`, ``net`` "alex" or "vgg") as a training loss
    on images in [0, 1]: one value per image, differentiable w.r.t. ``y_pred`` (the reference's
    features are constants). Weights: ``python -m pipelines.pretrained fetch lpips_alex lpips_vgg``."""

    def __init__(self, net: str = "alex", name: str = "lpips_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        from srkeras.metrics.learned import NETS, weights

        if net not in NETS:
            raise ValueError(f"net must be one of {', '.join(NETS)}, got {net!r}")
        self.net = net
        weights(NETS[net])  # fail now, naming the fetch command, if the weights are missing

    def call(self, y_true, y_pred):
        from srkeras.metrics.learned import lpips_batch

        return lpips_batch(ops.stop_gradient(ops.cast(y_true, "float32")), y_pred, net=self.net)

    def get_config(self):
        return {**super().get_config(), "net": self.net}
