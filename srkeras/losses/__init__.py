"""Losses for super-resolution training.

* :mod:`~srkeras.losses.pixel`: ``mse``, ``l1``, ``charbonnier`` (+ ``MSE``, ``L1``, ``Charbonnier`` classes).
* :mod:`~srkeras.losses.perceptual`: ``PerceptualLoss`` on frozen keras.applications backbones
  (catalogue :mod:`~srkeras.losses.backbones`, taps :mod:`~srkeras.losses.features`), paper presets via ``perceptual_loss("vgg22" | "vgg54" |
  "vgg54_preact" | "vgg16_relu2_2", weights=...)``.
* :mod:`~srkeras.losses.style`: ``gram_matrix``, ``StyleLoss``, ``total_variation`` / ``TotalVariation``.
* :mod:`~srkeras.losses.adversarial`: ``generator_loss`` / ``discriminator_loss`` (standard | ragan | lsgan | hinge).

ImageNet backbone weights are read from the Keras cache or a local file, never downloaded.
"""

from srkeras.losses import adversarial
from srkeras.losses.adversarial import discriminator_loss, generator_loss
from srkeras.losses.backbones import BACKBONES, WeightsNotFoundError, build_backbone, preprocess
from srkeras.losses.features import FeatureExtractor
from srkeras.losses.perceptual import PRESETS, PerceptualLoss, perceptual_loss
from srkeras.losses.pixel import L1, MSE, Charbonnier, charbonnier, l1, mse
from srkeras.losses.style import (
    JOHNSON_STYLE_LAYERS,
    StyleLoss,
    TotalVariation,
    gram_matrix,
    style_distance,
    total_variation,
)

_PIXEL = {"mse": MSE, "l2": MSE, "l1": L1, "mae": L1, "charbonnier": Charbonnier}


def get(name: str, **kwargs):
    """Loss object by name: mse | l1 | charbonnier | tv | style | a perceptual preset (kwargs passed on)."""
    key = name.lower()
    if key in _PIXEL:
        return _PIXEL[key](**kwargs)
    if key in ("tv", "total_variation"):
        return TotalVariation(**kwargs)
    if key in ("style", "gram"):
        return StyleLoss(**kwargs)
    if key in PRESETS:
        return perceptual_loss(key, **kwargs)
    raise ValueError(f"unknown loss {name!r}; known: {sorted(_PIXEL) + ['tv', 'style'] + sorted(PRESETS)}")


__all__ = [
    "BACKBONES",
    "Charbonnier",
    "FeatureExtractor",
    "JOHNSON_STYLE_LAYERS",
    "L1",
    "MSE",
    "PRESETS",
    "PerceptualLoss",
    "StyleLoss",
    "TotalVariation",
    "WeightsNotFoundError",
    "adversarial",
    "build_backbone",
    "charbonnier",
    "discriminator_loss",
    "generator_loss",
    "get",
    "gram_matrix",
    "l1",
    "mse",
    "perceptual_loss",
    "preprocess",
    "style_distance",
    "total_variation",
]
