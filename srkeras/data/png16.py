"""16-bit colour PNG reading and writing (Pillow reduces 16-bit RGB/RGBA PNGs to 8 bits).

Placeholder until the inference work lands: reading and writing raise a clear error.
"""

from __future__ import annotations


def read_png16(path, max_pixels=None):
    from srkeras.data.io import ImageLoadError

    raise ImageLoadError(f"{path}: 16-bit colour PNG is not supported yet")


def write_png16(path, pixels, alpha=None, icc_profile=None):
    raise NotImplementedError("16-bit PNG writing is not supported yet")
