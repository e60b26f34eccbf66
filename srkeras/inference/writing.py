"""Writing an upscaled image: streamed into a PNG band by band, or whole, in the input's own form.

:func:`upscale_to_png` is the one path from an image to SR PNG bytes (``pipelines.upscale`` writes
them to a file, the Try-it page to memory): the output of :func:`~srkeras.inference.upscale_bands`
goes straight into :class:`~srkeras.data.png16.PngStreamWriter`, so only one band of the output is
ever held as floats, with the input's bit depth (8 or 16), alpha (upscaled bicubically) and ICC
profile. :func:`write_upscaled` writes one :class:`~srkeras.data.io.LoadedImage`'s result as
``pipelines.upscale`` does: PNG streamed, a palette image mapped onto its own palette, any other
format (JPEG, TIFF...) whole through :func:`~srkeras.data.io.save_image`; atomically
(:func:`srkeras.files.write_atomically`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from srkeras.data.io import save_image, to_pil
from srkeras.data.png16 import PngStreamWriter
from srkeras.files import write_atomically
from srkeras.inference.running import upscale_bands
from srkeras.inference.served import serve


def upscale_to_png(model, pixels, fileobj, *, alpha=None, bit_depth: int = 8, icc_profile: bytes | None = None,
                   on_band=None, level: int = 6, tile=None, max_memory=None, batch_size=None,
                   progress=None) -> None:  # fmt: skip
    """Write the SR of ``pixels`` (float (H, W, C) in [0, 1]) as a PNG into the binary ``fileobj``.

    ``alpha`` (float (H, W)) becomes the PNG's alpha channel; ``bit_depth`` 8 or 16; ``on_band(r0,
    band)`` sees each float SR band (rows from ``r0``) after it is written; ``level``: zlib
    compression level. ``tile``,
    ``max_memory``, ``batch_size`` and ``progress`` as for :func:`~srkeras.inference.upscale`.
    """
    s = serve(model).scale
    h, w, c = pixels.shape
    writer = PngStreamWriter(fileobj, w * s, h * s, c, alpha is not None, bit_depth, icc_profile, level)
    bands = upscale_bands(model, pixels, tile, max_memory, batch_size, progress, alpha=alpha)
    for r0, band, band_alpha in bands:
        writer.write(band, band_alpha)
        if on_band is not None:
            on_band(r0, band)
    writer.close()


def write_upscaled(model, img, dst, *, overwrite: bool = False, progress=None, tile=None, max_memory=None,
                   batch_size=None) -> None:  # fmt: skip
    """Write the SR of ``img`` (a :class:`~srkeras.data.io.LoadedImage`) to ``dst`` in its form (module docstring)."""
    dst = Path(dst)
    opts = {"tile": tile, "max_memory": max_memory, "batch_size": batch_size, "progress": progress}
    if dst.suffix == ".png" and img.source_mode != "P":

        def stream(tmp):
            with open(tmp, "wb") as f:
                upscale_to_png(model, img.pixels, f, alpha=img.alpha, bit_depth=img.bit_depth,
                               icc_profile=img.icc_profile, **opts)  # fmt: skip

        write_atomically(dst, stream, overwrite=overwrite)
        return
    bands = list(upscale_bands(model, img.pixels, alpha=img.alpha, **opts))
    sr = np.concatenate([b for _, b, _ in bands])
    alpha = None if img.alpha is None else np.concatenate([a for _, _, a in bands])
    if img.source_mode == "P" and alpha is None:
        _save_palette(dst, sr, img, overwrite)
        return
    save_image(dst, sr, alpha=alpha, bit_depth=img.bit_depth, icc_profile=img.icc_profile, overwrite=overwrite)


def _save_palette(dst: Path, sr, img, overwrite: bool) -> None:
    """Palette in -> palette out: map the result onto the source's own palette (no dithering)."""
    with Image.open(img.path) as src:
        src.load()
        pal = src if src.mode == "P" else None
        rgb = to_pil(sr if sr.shape[-1] == 3 else np.repeat(sr, 3, axis=-1))
        out = rgb.quantize(palette=pal, dither=Image.Dither.NONE) if pal is not None else rgb.quantize()
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst}: exists (pass --overwrite to replace it)")
    kwargs = {"icc_profile": img.icc_profile} if img.icc_profile else {}
    fmt = "PNG" if dst.suffix.lower() == ".png" else None  # None: from the temp file's suffix, dst's
    write_atomically(dst, lambda tmp: out.save(tmp, format=fmt, **kwargs), overwrite=overwrite)


__all__ = ["upscale_to_png", "write_upscaled"]
