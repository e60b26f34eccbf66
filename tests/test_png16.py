"""16-bit PNG reader/writer: exact round trips, cross-checks against Pillow's own PNG codec."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from srkeras.data import ImageLoadError, png16, quantize, read_image
from srkeras.data.io import read_png16


def _img(h, w, c, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    smooth = [(np.sin(xx / 5.0 + k) * np.cos(yy / 7.0) + 1) / 2 for k in range(c)]
    return np.clip(np.stack(smooth, -1) * 0.8 + 0.2 * rng.random((h, w, c)), 0, 1).astype(np.float32)


def _filters_used(path):
    d = open(path, "rb").read()
    pos, idat, ihdr = 8, b"", None
    while pos < len(d):
        n, t = struct.unpack(">I4s", d[pos : pos + 8])
        if t == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", d[pos + 8 : pos + 8 + n])
        if t == b"IDAT":
            idat += d[pos + 8 : pos + 8 + n]
        pos += 12 + n
    w, h, depth, ct = ihdr[:4]
    stride = 1 + w * {0: 1, 2: 3, 4: 2, 6: 4}[ct] * depth // 8
    raw = zlib.decompress(idat)
    return {raw[r * stride] for r in range(h)}


@pytest.mark.parametrize("channels,alpha", [(3, False), (3, True), (1, True), (1, False)])
def test_round_trip_exact(tmp_path, channels, alpha):
    px = _img(29, 41, channels)
    a = _img(29, 41, 1, seed=3)[..., 0] if alpha else None
    p = tmp_path / "x.png"
    png16.write_png16(p, px, alpha=a, icc_profile=b"\x00icc-bytes" * 7)
    li = read_png16(p)
    assert li.bit_depth == 16 and li.pixels.shape == (29, 41, channels)
    assert np.array_equal(quantize(li.pixels, 16), quantize(px, 16))
    if alpha:
        assert np.array_equal(quantize(li.alpha, 16), quantize(a, 16))
    else:
        assert li.alpha is None
    assert li.icc_profile == b"\x00icc-bytes" * 7


def test_writer_uses_all_filters_and_pillow_agrees(tmp_path):
    """Pillow unfilters our file independently; its 8-bit reduction is the high byte of ours."""
    px = _img(64, 80, 3)
    a = _img(64, 80, 1, seed=5)[..., 0]
    p = tmp_path / "rgba16.png"
    png16.write_png16(p, px, alpha=a, icc_profile=b"profile")
    used = _filters_used(p)
    assert {3, 4} & used and len(used) >= 3, used  # Average/Paeth exercised (anti-diagonal decoder)
    with Image.open(p) as im:
        assert im.mode == "RGBA" and im.info["icc_profile"] == b"profile"
        pil = np.asarray(im)
    q = quantize(px, 16)
    assert np.array_equal(pil[..., :3], (q >> 8).astype(np.uint8))
    assert np.array_equal(pil[..., 3], (quantize(a, 16) >> 8).astype(np.uint8))
    assert np.array_equal(quantize(read_image(p).pixels, 16), q)  # io.read_image dispatches here


def test_reads_pillow_written_16bit_grey_exactly(tmp_path):
    g = np.cumsum(np.random.default_rng(1).integers(0, 3000, (33, 47)), axis=1).astype(np.uint16)
    Image.fromarray(g).save(tmp_path / "g.png")
    d = png16.decode((tmp_path / "g.png").read_bytes())
    assert d["depth"] == 16 and np.array_equal(d["samples"][..., 0], g)


def test_unfilter_hand_computed():
    # One byte per pixel, 2x3. Row 0 Sub: 10, +5, +5 -> 10 15 20. Row 1 Paeth:
    # x0: a=0,b=10,c=0 -> p=10 -> b=10; 1+10=11. x1: a=11,b=15,c=10 -> p=16 -> pa=5,pb=1,pc=6 -> b; 2+15=17.
    # x2: a=17,b=20,c=15 -> p=22 -> pa=5,pb=2,pc=7 -> b; 250+20=270 mod 256 = 14.
    raw = np.array([[1, 10, 5, 5], [4, 1, 2, 250]], np.uint8)
    out = png16.unfilter(raw, 2, 3, 1)[..., 0]
    assert out.tolist() == [[10, 15, 20], [11, 17, 14]]
    # Average row: x0: 3 + (0 + 10)//2 = 8; x1: 4 + (8 + 15)//2 = 15; x2: 0 + (15 + 20)//2 = 17
    raw = np.array([[1, 10, 5, 5], [3, 3, 4, 0]], np.uint8)
    assert png16.unfilter(raw, 2, 3, 1)[..., 0].tolist() == [[10, 15, 20], [8, 15, 17]]


def _patch_chunk(data: bytes, ctype: bytes, fn) -> bytes:
    pos = 8
    while pos < len(data):
        n, t = struct.unpack(">I4s", data[pos : pos + 8])
        if t == ctype:
            body = fn(data[pos + 8 : pos + 8 + n])
            new = struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body) & 0xFFFFFFFF)
            return data[:pos] + new + data[pos + 12 + n :]
        pos += 12 + n
    raise AssertionError(ctype)


def test_bad_files_named_in_errors(tmp_path):
    p = tmp_path / "ok.png"
    png16.write_png16(p, _img(20, 20, 3))
    data = p.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="trunc.png.*truncated"):
        read_image(tmp_path / "trunc.png")
    bad = bytearray(data)
    bad[40] ^= 0xFF
    (tmp_path / "crc.png").write_bytes(bytes(bad))
    with pytest.raises(ImageLoadError, match="crc.png"):
        read_image(tmp_path / "crc.png")
    inter = _patch_chunk(data, b"IHDR", lambda b: b[:-1] + b"\x01")
    (tmp_path / "adam7.png").write_bytes(inter)
    with pytest.raises(ImageLoadError, match="adam7.png.*interlaced"):
        read_image(tmp_path / "adam7.png")
    with pytest.raises(ImageLoadError, match="ok.png.*400 pixels exceeds.*--max-pixels"):
        read_image(p, max_pixels=399)


def test_exif_orientation_applied(tmp_path):
    px = _img(10, 16, 3)
    p = tmp_path / "o.png"
    png16.write_png16(p, px)
    ex = Image.Exif()
    ex[0x0112] = 6  # rotate 90 CW to display
    body = ex.tobytes()
    data = p.read_bytes()
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body) & 0xFFFFFFFF)
    data = data[:33] + chunk + data[33:]  # after IHDR
    p.write_bytes(data)
    li = read_image(p)
    assert li.pixels.shape == (16, 10, 3) and "EXIF orientation 6" in li.notes[0]
    assert np.array_equal(quantize(li.pixels, 16), quantize(np.rot90(px, -1), 16))


def test_stream_writer_8bit_matches_pillow(tmp_path):
    px = _img(50, 30, 3)
    with open(tmp_path / "s.png", "wb") as f:
        w = png16.PngStreamWriter(f, 30, 50, 3, bit_depth=8)
        for r in range(0, 50, 7):
            w.write(px[r : r + 7])
        w.close()
    with Image.open(tmp_path / "s.png") as im:
        assert im.mode == "RGB" and np.array_equal(np.asarray(im), quantize(px, 8))
