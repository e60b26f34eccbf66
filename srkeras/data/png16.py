"""16-bit PNG reading and writing in NumPy + zlib (Pillow reduces 16-bit RGB/RGBA PNGs to 8 bits).

Follows the PNG specification (W3C PNG 2nd ed., ISO/IEC 15948): chunks are ``length, type, data,
CRC-32``; the image is the zlib stream of all IDAT chunks, one filter-type byte before each row, and
the five filters of sec. 9.2 act on bytes, with ``a`` the byte one pixel to the left, ``b`` the byte
above and ``c`` the byte above-left:

    None: x          Sub: x + a          Up: x + b          Average: x + floor((a + b) / 2)
    Paeth: x + PaethPredictor(a, b, c)  (p = a + b - c; nearest of a, b, c to p, ties in that order)

all modulo 256. Sub and Up are cumulative sums (vectorised per row). Average and Paeth are
recurrences along the row *and* down the columns; pixel (r, i) depends on (r, i-1), (r-1, i) and
(r-1, i-1) only, so all pixels on one anti-diagonal ``r + i = t`` are independent: the decoder
sweeps H + W - 1 anti-diagonals, each a vectorised NumPy step, instead of H * W Python steps.

A pure codec on bytes and arrays: it knows nothing of files' names or of :mod:`srkeras.data.io`
(which reads files through it and names the file in its errors); problems are :class:`PngError`.

Reading (:func:`decode`, :func:`decoded_pixels`): colour types 0 (grey), 2 (RGB), 4 (grey + alpha)
and 6 (RGBA) at 16 bits (8 bits too), non-interlaced (Adam7 files are refused with a message), tRNS
colour key, iCCP profile, raw eXIf block. Writing: 16-bit grey / grey+alpha / RGB / RGBA with an
optional iCCP chunk, per-row adaptive filter choice (libpng's minimum-sum-of-absolute-differences
heuristic), and a :class:`PngStreamWriter` that takes the image band by band so a huge output never
sits in memory. :func:`quantize` (float [0, 1] -> 8/16-bit samples) is the one rounding rule for
every writer (public as ``srkeras.data.quantize``).
"""

from __future__ import annotations

import struct
import sys
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Largest iCCP colour profile inflated (profiles are kilobytes, big LUT ones a few MB; libpng's
#: default limit is 8 MB).
MAX_ICC_BYTES = 8 << 20
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


class PngError(ValueError):
    """A PNG byte stream that this codec cannot decode; the message says why (not which file)."""


class PngTooLarge(PngError):
    """The image has more pixels than the caller's limit (decompression-bomb guard)."""

    def __init__(self, width: int, height: int, max_pixels: int):
        self.width, self.height, self.max_pixels = width, height, max_pixels
        super().__init__(f"{width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,}")


def _chunks(data: bytes):
    pos = len(SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise PngError("truncated or corrupt PNG (chunk header cut off)")
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise PngError(f"truncated or corrupt PNG ({ctype.decode('latin-1')} chunk cut off)")
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : end])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            raise PngError(f"corrupt PNG (CRC mismatch in {ctype.decode('latin-1')} chunk)")
        yield ctype, body
        if ctype == b"IEND":
            return
        pos = end
    raise PngError("truncated PNG (no IEND chunk)")


def paeth_predictor(a, b, c):
    """PaethPredictor of PNG sec. 9.4 on integer arrays (ties: a, then b, then c)."""
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def unfilter(raw: np.ndarray, height: int, width_units: int, bpp: int) -> np.ndarray:
    """Undo PNG filtering. ``raw``: (height, 1 + width_units * bpp) uint8 rows with filter bytes.

    Returns (height, width_units, bpp) uint8 (``bpp`` bytes per pixel, at least 1).
    """
    ftypes = raw[:, 0]
    if ftypes.size and ftypes.max() > 4:
        raise ValueError(f"unknown filter type {int(ftypes.max())}")
    data = raw[:, 1:].reshape(height, width_units, bpp)
    if not np.isin(ftypes, (3, 4)).any():
        out = np.empty_like(data)
        prev = np.zeros_like(data[0])
        for r in range(height):
            f = ftypes[r]
            row = data[r]
            if f == 1:
                row = np.cumsum(row, axis=0, dtype=np.uint8)  # wraps modulo 256
            elif f == 2:
                row = row + prev
            out[r] = row
            prev = out[r]
        return out
    # Anti-diagonal sweep on a zero-padded int32 canvas (row 0 and column 0 are the zero border).
    canvas = np.zeros((height + 1, width_units + 1, bpp), dtype=np.int32)
    x_all = data.astype(np.int32)
    ft_all = ftypes.astype(np.int32)
    for t in range(height + width_units - 1):
        r = np.arange(max(0, t - width_units + 1), min(height - 1, t) + 1)
        i = t - r
        a = canvas[r + 1, i]
        b = canvas[r, i + 1]
        c = canvas[r, i]
        f = ft_all[r][:, None]
        pred = np.where(
            f == 1,
            a,
            np.where(f == 2, b, np.where(f == 3, (a + b) >> 1, np.where(f == 4, paeth_predictor(a, b, c), 0))),
        )
        canvas[r + 1, i + 1] = (x_all[r, i] + pred) & 0xFF
    return canvas[1:, 1:].astype(np.uint8)


def _inflate(data: bytes, limit: int, what: str) -> bytes:
    """Inflate a zlib stream to at most ``limit`` bytes; a stream that holds more is refused before
    it is inflated further (a decompression bomb hides gigabytes in a few kilobytes)."""
    z = zlib.decompressobj()
    out = z.decompress(data, min(limit, sys.maxsize))
    if not z.eof and len(out) < limit:
        raise zlib.error("incomplete or truncated stream")
    if not z.eof and z.decompress(z.unconsumed_tail, 1):
        raise PngError(f"{what} inflates past the {limit:,} bytes it may hold (a decompression bomb?)")
    return out


def _ihdr(body: bytes, max_pixels) -> tuple:
    if len(body) != 13:
        raise PngError(f"corrupt PNG (IHDR chunk of {len(body)} bytes, not 13)")
    ihdr = struct.unpack(">IIBBBBB", body)
    w, h = ihdr[:2]
    if w == 0 or h == 0:
        raise PngError(f"corrupt PNG (IHDR declares {w}x{h} pixels)")
    if max_pixels is not None and w * h > max_pixels:
        raise PngTooLarge(w, h, max_pixels)
    return ihdr


def _read_chunks(data: bytes, max_pixels) -> dict:
    """IHDR fields and the ancillary chunks this codec uses, checking the size before any pixel data."""
    found = {"ihdr": None, "idat": [], "icc": None, "trns": None, "exif": None}
    for ctype, body in _chunks(data):
        if ctype == b"IHDR":
            found["ihdr"] = _ihdr(body, max_pixels)
        elif ctype == b"IDAT":
            found["idat"].append(body)
        elif ctype == b"iCCP":
            name_end = body.find(b"\0")
            try:
                found["icc"] = _inflate(body[name_end + 2 :], MAX_ICC_BYTES, "the iCCP colour profile")
            except zlib.error:
                found["icc"] = None  # a broken profile is dropped, the pixels are still fine
        elif ctype == b"tRNS":
            found["trns"] = body
        elif ctype == b"eXIf":
            found["exif"] = body
    if found["ihdr"] is None:
        raise PngError("corrupt PNG (no IHDR chunk)")
    return found


def decode(data: bytes, max_pixels=None) -> dict:
    """Parse a PNG byte string: samples as uint16/uint8 (H, W, channels) plus metadata.

    Returns {"samples", "depth", "color_type", "icc", "trns", "exif"} (the last three raw chunk
    bodies or None). Raises :class:`PngError` (:class:`PngTooLarge` over ``max_pixels``).
    """
    if data[:8] != SIGNATURE:
        raise PngError("not a PNG file")
    found = _read_chunks(data, max_pixels)
    w, h, depth, ctype_, _comp, _filt, interlace = found["ihdr"]
    if interlace:
        raise PngError("interlaced (Adam7) 16-bit PNG is not supported; re-save it non-interlaced")
    if ctype_ not in _CHANNELS or depth not in (8, 16):
        raise PngError(f"PNG colour type {ctype_} at {depth} bits is not supported by the 16-bit reader")
    ch = _CHANNELS[ctype_]
    bpp = ch * depth // 8
    expected = h * (1 + w * bpp)  # a filter byte, then the row's samples
    try:
        raw = _inflate(b"".join(found["idat"]), expected, f"the image data of a {w}x{h} PNG")
    except zlib.error as e:
        raise PngError(f"truncated or corrupt PNG image data ({e})") from None
    if len(raw) < expected:
        raise PngError(f"truncated PNG image data ({len(raw):,} of {expected:,} bytes)")
    rows = np.frombuffer(raw, dtype=np.uint8, count=expected).reshape(h, 1 + w * bpp)
    try:
        px = unfilter(rows, h, w, bpp)
    except ValueError as e:
        raise PngError(f"corrupt PNG ({e})") from None
    if depth == 16:
        samples = px.reshape(h, w, ch, 2).astype(np.uint16)
        samples = (samples[..., 0] << 8) | samples[..., 1]
    else:
        samples = px.reshape(h, w, ch)
    return {"samples": samples, "depth": depth, "color_type": ctype_} | {k: found[k] for k in ("icc", "trns", "exif")}


def decoded_pixels(decoded: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """(pixels float32 (H, W, 1 or 3), alpha float32 (H, W) or None) in [0, 1] of :func:`decode`'s result.

    Alpha comes from an alpha channel or a tRNS colour key (key colour -> 0, others -> 1).
    """
    s, ct = decoded["samples"], decoded["color_type"]
    top = float((1 << decoded["depth"]) - 1)
    colour = 3 if ct in (2, 6) else 1
    px = s[..., :colour].astype(np.float32) / top
    alpha = None
    if _CHANNELS[ct] in (2, 4):
        alpha = s[..., -1].astype(np.float32) / top
    elif decoded["trns"] is not None:
        key = np.frombuffer(decoded["trns"][: 2 * colour], dtype=">u2").astype(s.dtype)
        if key.size == colour:
            alpha = np.where(np.all(s == key, axis=-1), 0.0, 1.0).astype(np.float32)
    return np.ascontiguousarray(px), alpha


def mode_name(depth: int, color_type: int) -> str:
    """Pillow-style mode of a PNG: "RGB", "LA", ... at 8 bits, "I;16", "RGB;16", ... at 16."""
    if depth == 16:
        return {0: "I;16", 2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}[color_type]
    return {0: "L", 2: "RGB", 4: "LA", 6: "RGBA"}[color_type]


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


def filter_rows(px: np.ndarray, prev_row: np.ndarray | None, bpp: int) -> bytes:
    """Filter (H, W*bpp) uint8 rows, choosing per row the filter with the smallest sum of |signed bytes|.

    Encoding uses the *unfiltered* neighbours, so all five filters vectorise over the whole band.
    ``prev_row`` is the last row of the previous band (None at the top of the image).
    """
    h, n = px.shape
    x = px.astype(np.int16)
    up = np.zeros_like(x)
    up[1:] = x[:-1]
    if prev_row is not None:
        up[0] = prev_row.astype(np.int16)
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    upleft = np.zeros_like(x)
    upleft[:, bpp:] = up[:, :-bpp]
    cands = np.stack(
        [x, x - left, x - up, x - ((left + up) >> 1), x - paeth_predictor(left, up, upleft)]
    ).astype(np.uint8)  # (5, H, n), modulo 256
    cost = np.abs(cands.view(np.int8).astype(np.int32)).sum(axis=2)  # libpng heuristic
    best = np.argmin(cost, axis=0)
    chosen = cands[best, np.arange(h)]
    return np.concatenate([best.astype(np.uint8)[:, None], chosen], axis=1).tobytes()


def quantize(pixels: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """Round float [0, 1] pixels to integers of ``bit_depth`` bits (uint8 or uint16), clipping."""
    top = (1 << bit_depth) - 1
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.clip(np.round(np.asarray(pixels, dtype=np.float64) * top), 0, top).astype(dtype)


def _to_samples(pixels, alpha, bit_depth):
    px = np.asarray(pixels)
    if px.ndim == 2:
        px = px[..., None]
    if px.ndim != 3 or px.shape[-1] not in (1, 3):
        raise ValueError(f"pixels must be (H, W), (H, W, 1) or (H, W, 3), got {px.shape}")
    q = quantize(px, bit_depth)
    if alpha is not None:
        a = np.asarray(alpha)
        if a.ndim == 3:
            a = a[..., 0]
        if a.shape != px.shape[:2]:
            raise ValueError(f"alpha shape {a.shape} does not match pixels {px.shape[:2]}")
        q = np.concatenate([q, quantize(a, bit_depth)[..., None]], axis=-1)
    if bit_depth == 16:
        q = q.astype(">u2")
    return np.ascontiguousarray(q)


class PngStreamWriter:
    """Write a PNG band by band: ``w.write(band_pixels, band_alpha)`` top to bottom, then ``close()``.

    Only one band (plus the zlib window) is in memory at a time. The caller owns the file object
    (for atomicity, write to a temp file and rename it: :func:`srkeras.files.write_atomically`).
    """

    def __init__(self, fileobj, width, height, channels, has_alpha=False, bit_depth=16, icc_profile=None, level=6):
        if channels not in (1, 3):
            raise ValueError("channels must be 1 (grey) or 3 (RGB)")
        if bit_depth not in (8, 16):
            raise ValueError("bit_depth must be 8 or 16")
        self.f = fileobj
        self.width, self.height, self.depth = int(width), int(height), bit_depth
        self.samples = channels + int(has_alpha)
        self.has_alpha = has_alpha
        self.bpp = self.samples * bit_depth // 8
        ctype = {(1, False): 0, (1, True): 4, (3, False): 2, (3, True): 6}[(channels, bool(has_alpha))]
        self.f.write(SIGNATURE)
        self.f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", self.width, self.height, bit_depth, ctype, 0, 0, 0)))
        if icc_profile:
            self.f.write(_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile)))
        self.z = zlib.compressobj(level)
        self.prev = None
        self.rows = 0

    def write(self, pixels, alpha=None):
        q = _to_samples(pixels, alpha if self.has_alpha else None, self.depth)
        if q.shape[1] != self.width or q.shape[-1] != self.samples:
            raise ValueError(f"band of shape {q.shape} does not fit a {self.width}-wide {self.samples}-sample PNG")
        rows = q.view(np.uint8).reshape(q.shape[0], self.width * self.bpp)
        data = self.z.compress(filter_rows(rows, self.prev, self.bpp))
        if data:
            self.f.write(_chunk(b"IDAT", data))
        self.prev = rows[-1].copy()
        self.rows += q.shape[0]

    def close(self):
        if self.rows != self.height:
            raise ValueError(f"wrote {self.rows} rows of a {self.height}-row PNG")
        self.f.write(_chunk(b"IDAT", self.z.flush()))
        self.f.write(_chunk(b"IEND", b""))


def write_png16(path, pixels, alpha=None, icc_profile=None, bit_depth=16, band_rows=256):
    """Write float [0, 1] pixels (grey or RGB, optional alpha) as a 16-bit PNG (with iCCP if given)."""
    px = np.asarray(pixels)
    if px.ndim == 2:
        px = px[..., None]
    h, w = px.shape[:2]
    with open(path, "wb") as f:
        wr = PngStreamWriter(f, w, h, px.shape[-1], alpha is not None, bit_depth, icc_profile)
        for r in range(0, h, band_rows):
            wr.write(px[r : r + band_rows], None if alpha is None else np.asarray(alpha)[r : r + band_rows])
        wr.close()
    return path


def exif_orientation(exif_bytes) -> int:
    """EXIF orientation tag (0x0112, 1-8) of a raw EXIF block; 1 when absent or unreadable."""
    if not exif_bytes:
        return 1
    try:
        from PIL import Image

        ex = Image.Exif()
        ex.load(exif_bytes)
        return int(ex.get(0x0112, 1) or 1)
    except Exception:  # unreadable EXIF: leave the pixels as stored
        return 1


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip (H, W, ...) so that it displays upright (EXIF tag 0x0112, values 1-8)."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    fn = ops.get(orientation)
    return arr if fn is None else np.ascontiguousarray(fn(arr))
