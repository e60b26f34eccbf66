"""Reading and writing images as users have them, saying what was done and why something was refused.

Everything inside srkeras works on float32 arrays in [0, 1], channels last: (H, W, 3) colour or
(H, W, 1) grey. :func:`read_image` keeps what a faithful round trip needs (alpha, bit depth, ICC
profile, original mode); :func:`load_image` returns just the pixels. 16-bit PNGs (which Pillow
reduces to 8 bits) go through the codec :mod:`srkeras.data.png16`, whose errors are reported here
with the file's name. Every file is written through :func:`srkeras.files.write_atomically`.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from srkeras.data import png16
from srkeras.data.png16 import apply_orientation, exif_orientation, quantize
from srkeras.files import display_name, write_atomically

#: Default decompression-bomb guard: 16k x 16k pixels (about 4x Pillow's own 89.5 MP default).
DEFAULT_MAX_PIXELS = 16384 * 16384

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")


class ImageLoadError(ValueError):
    """An image file could not be used; the message names the file and the problem."""


class ImageTooLarge(ImageLoadError):
    """The image declares more pixels than the limit (read from its header, nothing decoded)."""

    def __init__(self, message: str, width: int, height: int, max_pixels: int):
        super().__init__(message)
        self.width, self.height, self.max_pixels = width, height, max_pixels


@dataclasses.dataclass
class LoadedImage:
    """Pixels plus what is needed to write a result back in the same form."""

    pixels: np.ndarray  # float32 (H, W, C) in [0, 1], C = 1 (grey) or 3 (colour)
    path: str
    source_mode: str  # Pillow mode of the file, e.g. "RGB", "L", "P", "I;16", "CMYK", "RGBA"
    bit_depth: int = 8  # 8 or 16 bits per sample
    alpha: np.ndarray | None = None  # float32 (H, W) in [0, 1]
    icc_profile: bytes | None = None
    notes: tuple[str, ...] = ()  # what was done to the file's pixels (EXIF rotation, CMYK -> RGB...)

    @property
    def is_grey(self) -> bool:
        return self.pixels.shape[-1] == 1

    @property
    def shape(self):
        return self.pixels.shape


def list_images(directory) -> list[Path]:
    """Image files directly inside ``directory`` sorted by name; a clear error if it is unusable."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"{display_name(d)}: not a directory")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"{display_name(d)}: contains no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def _png_ihdr(path) -> tuple[int, int] | None:
    """(bit depth, colour type) of a PNG file, or None for other formats."""
    with open(path, "rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _too_large(name, width: int, height: int, max_pixels: int) -> ImageTooLarge:
    return ImageTooLarge(
        f"{name}: {width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,} "
        "(decompression-bomb guard); raise it with --max-pixels if the file is trusted",
        width, height, max_pixels,
    )


def _cannot_read(name: str, e: OSError) -> ImageLoadError:
    """A file-system refusal (permission, I/O error...), said as such: not 'truncated or corrupt'."""
    why = "permission denied" if isinstance(e, PermissionError) else (e.strerror or str(e))
    return ImageLoadError(f"{name}: cannot read the file ({why})")


def read_image(
    path, max_pixels: int | None = DEFAULT_MAX_PIXELS, exif_transpose: bool = True, *, name: str | None = None
) -> LoadedImage:
    """Read an image file into a :class:`LoadedImage`.

    Handles RGB, grey (L, 1), grey+alpha, RGBA, palette (with or without transparency), 16-bit grey
    and colour PNG, CMYK (JPEG, incl. Adobe inverted) and YCbCr/LAB JPEG, applying EXIF orientation.
    Raises :class:`ImageLoadError` naming the file (``name``, default its :func:`display_name`) for
    unreadable (permission, I/O error), truncated or corrupt files, images over ``max_pixels``
    (:class:`ImageTooLarge`, from the header before decoding; ``None`` disables it) and unsupported modes.
    """
    path = str(path)
    name = name if name is not None else display_name(path)
    if not os.path.isfile(path):
        raise ImageLoadError(f"{name}: no such file")
    notes: list[str] = []
    try:
        ihdr = _png_ihdr(path)
        if ihdr is not None and ihdr[0] == 16 and ihdr[1] in (2, 4, 6):
            # Pillow reduces 16-bit colour / grey+alpha PNGs to 8 bits: decode them ourselves.
            return read_png16(path, max_pixels=max_pixels, name=name)
        old_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # our own guard below gives a message naming the flag
        try:
            with Image.open(path) as im:
                w, h = im.size
                if max_pixels is not None and w * h > max_pixels:
                    raise _too_large(name, w, h, max_pixels)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    im.load()
                icc = im.info.get("icc_profile")
                if exif_transpose:
                    orientation = im.getexif().get(0x0112, 1)
                    if orientation not in (None, 1):
                        im = ImageOps.exif_transpose(im)
                        notes.append(f"applied EXIF orientation {orientation}")
                return _from_pil(im, path, icc, notes, name)
        finally:
            Image.MAX_IMAGE_PIXELS = old_limit
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: not an image file Pillow can read") from None
    except OSError as e:
        if e.errno is not None:  # the file system refused (Pillow's decoding errors carry no errno)
            raise _cannot_read(name, e) from None
        raise ImageLoadError(f"{name}: truncated or corrupt image file ({e})") from None
    except (SyntaxError, ValueError, struct.error, EOFError) as e:
        raise ImageLoadError(f"{name}: truncated or corrupt image file ({e})") from None


def read_png16(path, max_pixels: int | None = None, *, name: str | None = None) -> LoadedImage:
    """Read a 16-bit (or 8-bit) grey/grey+alpha/RGB/RGBA PNG with :mod:`srkeras.data.png16`.

    EXIF orientation (an eXIf chunk) is applied; codec errors become :class:`ImageLoadError`
    naming the file (``name``, default its :func:`display_name`).
    """
    path = str(path)
    name = name if name is not None else display_name(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise _cannot_read(name, e) from None
    try:
        decoded = png16.decode(data, max_pixels)
    except png16.PngTooLarge as e:
        raise _too_large(name, e.width, e.height, e.max_pixels) from None
    except png16.PngError as e:
        raise ImageLoadError(f"{name}: {e}") from None
    px, alpha = png16.decoded_pixels(decoded)
    notes = []
    orient = exif_orientation(decoded["exif"])
    if orient != 1:
        px = apply_orientation(px, orient)
        alpha = None if alpha is None else apply_orientation(alpha, orient)
        notes.append(f"applied EXIF orientation {orient}")
    return LoadedImage(
        pixels=px,
        path=path,
        source_mode=png16.mode_name(decoded["depth"], decoded["color_type"]),
        bit_depth=decoded["depth"],
        alpha=alpha,
        icc_profile=decoded["icc"],
        notes=tuple(notes),
    )


def _from_pil(im: Image.Image, path: str, icc, notes: list[str], name: str) -> LoadedImage:
    mode = im.mode
    alpha = None
    bit_depth = 8
    if mode == "P" or mode == "PA":
        has_alpha = "transparency" in im.info or mode == "PA"
        im = im.convert("RGBA" if has_alpha else "RGB")
        notes.append("expanded palette to " + im.mode)
    elif mode == "1":
        im = im.convert("L")
        notes.append("converted 1-bit image to 8-bit grey")
    elif mode == "CMYK":
        im = im.convert("RGB")
        notes.append("converted CMYK to RGB")
        icc = None  # the CMYK profile no longer describes the pixels
    elif mode in ("YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
        notes.append(f"converted {mode} to RGB")
    elif mode == "La":
        im = im.convert("LA")
    elif mode == "RGBa":
        im = im.convert("RGBA")

    m = im.mode
    if m in ("RGB", "RGBX"):
        px = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    elif m == "RGBA":
        a = np.asarray(im, dtype=np.float32) / 255.0
        px, alpha = a[..., :3], a[..., 3]
    elif m == "L":
        px = np.asarray(im, dtype=np.float32)[..., None] / 255.0
    elif m == "LA":
        a = np.asarray(im, dtype=np.float32) / 255.0
        px, alpha = a[..., :1], a[..., 1]
    elif m.startswith("I;16") or m == "I":
        arr = np.asarray(im).astype(np.float64)
        if m == "I" and arr.max(initial=0) > 65535 or arr.min(initial=0) < 0:
            raise ImageLoadError(f"{name}: 32-bit integer image with values outside 0..65535 is not supported")
        px = (arr / 65535.0).astype(np.float32)[..., None]
        bit_depth = 16
    elif m == "F":
        arr = np.asarray(im, dtype=np.float32)
        if arr.min() < 0 or arr.max() > 1:
            raise ImageLoadError(f"{name}: float image with values outside [0, 1] is not supported")
        px = arr[..., None]
        notes.append("read 32-bit float grey image as is")
    else:
        raise ImageLoadError(f"{name}: unsupported image mode {mode!r}")
    return LoadedImage(
        pixels=np.ascontiguousarray(px, dtype=np.float32),
        path=path,
        source_mode=mode,
        bit_depth=bit_depth,
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
        icc_profile=icc,
        notes=tuple(notes),
    )


def load_image(path, channels: int | None = 3, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Pixels of an image file as float32 (H, W, C) in [0, 1].

    ``channels=3`` replicates grey to RGB; ``channels=1`` accepts grey images (or RGB files whose
    channels are equal) and refuses colour ones (use :func:`srkeras.data.color.rgb_to_y` for luma);
    ``channels=None`` keeps the file's own channels. Alpha is dropped (:func:`read_image` keeps it).
    """
    img = read_image(path, max_pixels=max_pixels)
    px = img.pixels
    if channels is None or px.shape[-1] == channels:
        return px
    if channels == 3 and px.shape[-1] == 1:
        return np.repeat(px, 3, axis=-1)
    if channels == 1 and px.shape[-1] == 3:
        if np.array_equal(px[..., 0], px[..., 1]) and np.array_equal(px[..., 1], px[..., 2]):
            return px[..., :1]
        raise ImageLoadError(f"{display_name(path)}: colour image where a single-channel image was asked for")
    raise ValueError(f"channels must be 1, 3 or None, got {channels}")


def to_pil(pixels: np.ndarray, alpha: np.ndarray | None = None) -> Image.Image:
    """8-bit Pillow image from float [0, 1] pixels (grey or RGB), with optional alpha."""
    q = quantize(pixels, 8)
    if q.ndim == 3 and q.shape[-1] == 1:
        q = q[..., 0]
    if alpha is not None:
        a = quantize(alpha, 8)
        q = np.dstack([q, a])
    return Image.fromarray(q)


def save_image(
    path,
    pixels: np.ndarray,
    alpha: np.ndarray | None = None,
    bit_depth: int = 8,
    icc_profile: bytes | None = None,
    overwrite: bool = False,
) -> Path:
    """Write float [0, 1] pixels atomically (temp file in the same folder, then rename).

    Grey stays grey, alpha is kept, ``bit_depth=16`` writes 16-bit PNG. Refuses to replace an
    existing file unless ``overwrite``; a failed write leaves any existing file untouched.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{display_name(path)}: exists (pass overwrite=True / --overwrite to replace it)")
    suffix = path.suffix.lower() or ".png"

    def write(tmp):
        if bit_depth == 16:
            if suffix != ".png":
                raise ValueError(f"{display_name(path)}: 16-bit output needs a .png file")
            png16.write_png16(tmp, pixels, alpha=alpha, icc_profile=icc_profile)
            return
        im = to_pil(pixels, alpha)
        kwargs = {}
        if icc_profile:
            kwargs["icc_profile"] = icc_profile
        fmt = Image.registered_extensions().get(suffix, "PNG")
        if fmt == "JPEG":
            if im.mode in ("RGBA", "LA"):
                raise ValueError(f"{display_name(path)}: JPEG cannot store alpha; write a .png")
            kwargs["quality"] = 95
        im.save(tmp, format=fmt, **kwargs)

    return write_atomically(path, write, overwrite=overwrite)


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so H and W are multiples of ``scale`` (MATLAB ``modcrop``)."""
    scale = int(scale)
    h, w = image.shape[0], image.shape[1]
    return image[: h - h % scale, : w - w % scale, ...]


# Pillow should never silently accept truncated files.
ImageFile.LOAD_TRUNCATED_IMAGES = False
