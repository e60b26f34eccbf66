"""Model zoo: a name -> builder registry in the style of BasicSR's ``ARCH_REGISTRY`` (without YAML).

>>> from srkeras import models
>>> g = models.build("srresnet", scale=4)        # LR [0, 1] -> HR [0, 1], NHWC, dynamic H, W
>>> d = models.build("srgan_discriminator")      # HR [0, 1] (96x96) -> logit

Generators (``kind='generator'``) take the LR image and return the HR estimate, both in [0, 1];
a 1-channel generator is a Y-only model. Discriminators (``kind='discriminator'``) take fixed-size
HR images in [0, 1] and return logits; ``scale`` does not apply to them. Importing this package
registers the custom layers (:mod:`srkeras.models.layers`) so saved ``.keras`` files load.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from srkeras.models import layers  # noqa: F401  (registers PixelShuffle, BicubicUpsample, ScaledHeNormal)
from srkeras.models.dat import build_dat, build_dat_light
from srkeras.models.edsr import build_edsr
from srkeras.models.espcn import build_espcn
from srkeras.models.esrgan import build_esrgan_discriminator, build_rrdbnet
from srkeras.models.interpolation import interpolate
from srkeras.models.johnson import build_johnson
from srkeras.models.layers import BicubicUpsample, BilinearUpsample, PixelShuffle, ScaledHeNormal
from srkeras.models.msrresnet import build_msrresnet
from srkeras.models.omnisr import build_omnisr
from srkeras.models.rcan import build_rcan
from srkeras.models.rdn import build_rdn, build_rrdn
from srkeras.models.realcugan import build_realcugan
from srkeras.models.span import build_span
from srkeras.models.srcnn import build_srcnn, build_srcnn_955
from srkeras.models.srgan import build_srgan_discriminator, build_srresnet
from srkeras.models.srmd import build_srmd
from srkeras.models.srvgg import build_srvgg_compact
from srkeras.models.swinir import build_swinir
from srkeras.models.waifu2x import build_waifu2x_cunet, build_waifu2x_upconv7


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: the builder, its kind and (generators) the supported scales."""

    builder: Callable
    kind: str  # "generator" | "discriminator"
    scales: tuple = ()
    paper: str = ""


_REGISTRY: dict[str, ModelSpec] = {}


def register(name: str, builder: Callable, kind: str = "generator", scales=(2, 3, 4), paper: str = "") -> None:
    """Add a model to the registry (``builder(scale, **options)`` for generators, ``builder(**options)``
    for discriminators)."""
    if kind not in ("generator", "discriminator"):
        raise ValueError(f"kind must be 'generator' or 'discriminator', got {kind!r}")
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = ModelSpec(builder, kind, tuple(scales) if kind == "generator" else (), paper)


def names(kind: str | None = None) -> list[str]:
    """Registered model names (optionally only ``'generator'`` or ``'discriminator'``)."""
    return sorted(n for n, s in _REGISTRY.items() if kind is None or s.kind == kind)


def spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(names())}") from None


def build(name: str, scale: int = 4, **options):
    """Build the registered model ``name`` for upscaling factor ``scale`` (ignored by discriminators).

    Raises ValueError listing the alternatives for an unknown name, an unsupported scale or an
    unknown option.
    """
    s = spec(name)
    params = inspect.signature(s.builder).parameters
    unknown = sorted(set(options) - set(params) - {"scale"})
    if unknown:
        valid = sorted(p for p in params if p != "scale")
        raise ValueError(f"model {name!r} has no option(s) {unknown}; options: {', '.join(valid)}")
    if s.kind == "discriminator":
        return s.builder(**options)
    try:
        supported = not isinstance(scale, bool) and int(scale) == scale and int(scale) in s.scales
    except (TypeError, ValueError):
        supported = False
    if not supported:
        raise ValueError(
            f"model {name!r} does not support scale {scale!r}; supported scales: {', '.join(map(str, s.scales))}"
        )
    return s.builder(int(scale), **options)


register("srcnn", build_srcnn, scales=(2, 3, 4), paper="Dong et al. 2014/2016")
register("srcnn_955", build_srcnn_955, scales=(2, 3, 4), paper="Dong et al. 2016")
register("espcn", build_espcn, scales=(2, 3, 4, 8), paper="Shi et al. 2016")
register("srresnet", build_srresnet, scales=(2, 3, 4, 8), paper="Ledig et al. 2017")
register("srgan_discriminator", build_srgan_discriminator, kind="discriminator", paper="Ledig et al. 2017")
register("rrdbnet", build_rrdbnet, scales=(2, 3, 4, 8), paper="Wang et al. 2018")
register("esrgan_discriminator", build_esrgan_discriminator, kind="discriminator", paper="Wang et al. 2018")
register("msrresnet", build_msrresnet, scales=(2, 3, 4), paper="Wang et al. 2018 (BasicSR MSRResNet)")
register("johnson", build_johnson, scales=(2, 4, 8), paper="Johnson et al. 2016")
register("rdn", build_rdn, scales=(2, 3, 4, 8), paper="Zhang et al. 2018 (idealo ISR)")
register("rrdn", build_rrdn, scales=(2, 3, 4, 8), paper="Wang et al. 2018 (idealo ISR)")
register("srvgg_compact", build_srvgg_compact, scales=(1, 2, 3, 4), paper="Wang et al. 2021")
register("edsr", build_edsr, scales=(2, 3, 4, 8), paper="Lim et al. 2017")
register("rcan", build_rcan, scales=(2, 3, 4, 8), paper="Zhang et al. 2018 (RCAN)")
register("dat_light", build_dat_light, scales=(2, 3, 4), paper="Chen et al. 2023 (DAT)")
register("dat", build_dat, scales=(2, 3, 4, 8), paper="Chen et al. 2023 (DAT)")
register("swinir", build_swinir, scales=(1, 2, 3, 4, 8), paper="Liang et al. 2021 (SwinIR)")
register("omnisr", build_omnisr, scales=(1, 2, 3, 4), paper="Wang et al. 2023 (Omni-SR)")
register("span", build_span, scales=(2, 3, 4), paper="Wan et al. 2024 (SPAN)")
register("srmd", build_srmd, scales=(2, 3, 4), paper="Zhang et al. 2018 (SRMD)")
register("waifu2x_upconv7", build_waifu2x_upconv7, scales=(2,), paper="nagadomi waifu2x upconv_7")
register("waifu2x_cunet", build_waifu2x_cunet, scales=(1, 2), paper="nagadomi waifu2x cunet")
register("realcugan", build_realcugan, scales=(2, 3, 4), paper="bilibili AI Lab 2022 (Real-CUGAN)")

__all__ = [
    "BicubicUpsample",
    "BilinearUpsample",
    "ModelSpec",
    "PixelShuffle",
    "ScaledHeNormal",
    "build",
    "interpolate",
    "names",
    "register",
    "spec",
]
