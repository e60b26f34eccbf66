"""PNG zlib bombs (issue 24, item 2): the 16-bit codec inflates at most what the header implies
(IDAT: height * (1 + width * bytes per pixel)) or MAX_ICC_BYTES (iCCP), and refuses the rest
before inflating it; the 8-bit path (Pillow) is bounded by Pillow itself."""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from srkeras.data import ImageLoadError, png16, read_image
from tests import _hostile as H

MiB = 1 << 20


def _peak_bytes(fn):
    """Peak Python-heap bytes (zlib's output buffers included) while ``fn`` runs."""
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize(("where", "message", "budget"), [
    ("idat", r"bomb.png: the image data of a 8x8 PNG inflates past the 392 bytes it may hold", 2 * MiB),
    # png16.MAX_ICC_BYTES = 8 MiB; zlib joins its output blocks into one bytes object: twice the cap
    ("iccp", r"bomb.png: the iCCP colour profile inflates past the 8,388,608 bytes it may hold", 2 * 8 * MiB + 2 * MiB),
])
def test_16bit_bomb_refused_before_inflating(tmp_path, where, message, budget):
    path = tmp_path / "bomb.png"
    path.write_bytes(H.png_bomb(where, 64 * MiB))

    def read():
        with pytest.raises(ImageLoadError, match=message):
            read_image(path)

    assert _peak_bytes(read) < budget


def test_large_honest_profile_and_exact_stream_still_read(tmp_path):
    profile = np.random.default_rng(0).bytes(3 * MiB)
    px = np.linspace(0, 1, 16 * 24 * 3, dtype=np.float32).reshape(16, 24, 3)
    path = png16.write_png16(tmp_path / "ok.png", px, icc_profile=profile)
    img = read_image(path)
    assert img.icc_profile == profile and img.bit_depth == 16 and img.pixels.shape == (16, 24, 3)


def _rgb16(idat: bytes, width=8, height=8, ihdr=None) -> bytes:
    ihdr = ihdr if ihdr is not None else struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + H.png_chunk(b"IHDR", ihdr) + H.png_chunk(b"IDAT", idat)
            + H.png_chunk(b"IEND", b""))


def test_cut_stream_and_bad_headers_are_png_errors():
    whole = zlib.compress(bytes(8 * (1 + 8 * 6)))
    assert png16.decode(_rgb16(whole))["samples"].shape == (8, 8, 3)
    with pytest.raises(png16.PngError, match="truncated or corrupt PNG image data"):
        png16.decode(_rgb16(whole[: len(whole) // 2]))
    with pytest.raises(png16.PngError, match="IHDR chunk of 12 bytes, not 13"):
        png16.decode(_rgb16(whole, ihdr=struct.pack(">IIBBBB", 8, 8, 16, 2, 0, 0)))
    with pytest.raises(png16.PngError, match="declares 0x8 pixels"):
        png16.decode(_rgb16(whole, width=0))
    with pytest.raises(png16.PngError, match="truncated PNG image data"):  # no limit: no overflow either
        png16.decode(_rgb16(whole, width=2**31 - 1, height=2**31 - 1), max_pixels=None)


def test_8bit_path_bounded_by_pillow(tmp_path):
    """Pillow's decoder stops when the 8x8 image is full (the rest of the IDAT is never inflated)
    and caps iCCP at PngImagePlugin.MAX_TEXT_CHUNK: no fix needed in srkeras.data.io."""
    idat = tmp_path / "idat8.png"
    idat.write_bytes(H.png_bomb("idat", 64 * MiB, depth=8))
    img = read_image(idat)
    assert img.bit_depth == 8 and img.pixels.shape == (8, 8, 3) and not img.pixels.any()
    iccp = tmp_path / "iccp8.png"
    iccp.write_bytes(H.png_bomb("iccp", 64 * MiB, depth=8))
    with pytest.raises(ImageLoadError, match="iccp8.png: .*MAX_TEXT_CHUNK"):
        read_image(iccp)
