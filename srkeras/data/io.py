"""Reading and writing images as users have them, saying what was done and why something was refused.

Everything inside srkeras works on float32 arrays in [0, 1], channels last: (H, W, 3) colour or
(H, W, 1) grey. :func:`read_image` keeps what a faithful round trip needs (alpha, bit depth, ICC
profile, original mode); :func:`load_image` returns just the pixels. 16-bit PNGs (which Pillow
reduces to 8 bits) go through the codec :mod:`srkeras.data.png16`, whose errors are reported here
with the file's name. Every file is written through :func:`write_atomically`.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from srkeras.data import png16
from srkeras.data.png16 import quantize

#: Default decompression-bomb guard: 16k x 16k pixels (about 4x Pillow's own 89.5 MP default).
DEFAULT_MAX_PIXELS = 16384 * 16384

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")


class ImageLoadError(ValueError):
    """An image file could not be used; the message names the file and the problem."""


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
        raise FileNotFoundError(f"{d}: not a directory")
    files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"{d}: contains no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def _png_ihdr(path) -> tuple[int, int] | None:
    """(bit depth, colour type) of a PNG file, or None for other formats."""
    with open(path, "rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _too_large(path, width: int, height: int, max_pixels: int) -> ImageLoadError:
    return ImageLoadError(
        f"{path}: {width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,} "
        "(decompression-bomb guard); raise it with --max-pixels if the file is trusted"
    )


def read_image(path, max_pixels: int | None = DEFAULT_MAX_PIXELS, exif_transpose: bool = True) -> LoadedImage:
    """Read an image file into a :class:`LoadedImage`.

    Handles RGB, grey (L, 1), grey+alpha, RGBA, palette (with or without transparency), 16-bit grey
    and colour PNG, CMYK (JPEG, incl. Adobe inverted) and YCbCr/LAB JPEG, applying EXIF orientation.
    Raises :class:`ImageLoadError` naming the file for truncated or unreadable files, images over
    ``max_pixels`` (decompression-bomb guard; ``None`` disables it) and unsupported modes.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise ImageLoadError(f"{path}: no such file")
    notes: list[str] = []
    try:
        ihdr = _png_ihdr(path)
        if ihdr is not None and ihdr[0] == 16 and ihdr[1] in (2, 4, 6):
            # Pillow reduces 16-bit colour / grey+alpha PNGs to 8 bits: decode them ourselves.
            return read_png16(path, max_pixels=max_pixels)
        old_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # our own guard below gives a message naming the flag
        try:
            with Image.open(path) as im:
                w, h = im.size
                if max_pixels is not None and w * h > max_pixels:
                    raise _too_large(path, w, h, max_pixels)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    im.load()
                icc = im.info.get("icc_profile")
                if exif_transpose:
                    orientation = im.getexif().get(0x0112, 1)
                    if orientation not in (None, 1):
                        im = ImageOps.exif_transpose(im)
                        notes.append(f"applied EXIF orientation {orientation}")
                return _from_pil(im, path, icc, notes)
        finally:
            Image.MAX_IMAGE_PIXELS = old_limit
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as e:
        raise ImageLoadError(f"{path}: truncated or corrupt image file ({e})") from None


def read_png16(path, max_pixels: int | None = None) -> LoadedImage:
    """Read a 16-bit (or 8-bit) grey/grey+alpha/RGB/RGBA PNG with :mod:`srkeras.data.png16`.

    EXIF orientation (an eXIf chunk) is applied; codec errors become :class:`ImageLoadError`
    naming the file.
    """
    path = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ImageLoadError(f"{path}: cannot read file ({e})") from None
    try:
        decoded = png16.decode(data, max_pixels)
    except png16.PngTooLarge as e:
        raise _too_large(path, e.width, e.height, e.max_pixels) from None
    except png16.PngError as e:
        raise ImageLoadError(f"{path}: {e}") from None
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


def exif_orientation(exif_bytes) -> int:
    """EXIF orientation tag (0x0112, 1-8) of a raw EXIF block; 1 when absent or unreadable."""
    if not exif_bytes:
        return 1
    try:
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


def _from_pil(im: Image.Image, path: str, icc, notes: list[str]) -> LoadedImage:
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
            raise ImageLoadError(f"{path}: 32-bit integer image with values outside 0..65535 is not supported")
        px = (arr / 65535.0).astype(np.float32)[..., None]
        bit_depth = 16
    elif m == "F":
        arr = np.asarray(im, dtype=np.float32)
        if arr.min() < 0 or arr.max() > 1:
            raise ImageLoadError(f"{path}: float image with values outside [0, 1] is not supported")
        px = arr[..., None]
        notes.append("read 32-bit float grey image as is")
    else:
        raise ImageLoadError(f"{path}: unsupported image mode {mode!r}")
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
        raise ImageLoadError(f"{path}: colour image where a single-channel image was asked for")
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
        raise FileExistsError(f"{path}: exists (pass overwrite=True / --overwrite to replace it)")
    suffix = path.suffix.lower() or ".png"

    def write(tmp):
        if bit_depth == 16:
            if suffix != ".png":
                raise ValueError(f"{path}: 16-bit output needs a .png file")
            png16.write_png16(tmp, pixels, alpha=alpha, icc_profile=icc_profile)
            return
        im = to_pil(pixels, alpha)
        kwargs = {}
        if icc_profile:
            kwargs["icc_profile"] = icc_profile
        fmt = Image.registered_extensions().get(suffix, "PNG")
        if fmt == "JPEG":
            if im.mode in ("RGBA", "LA"):
                raise ValueError(f"{path}: JPEG cannot store alpha; write a .png")
            kwargs["quality"] = 95
        im.save(tmp, format=fmt, **kwargs)

    return write_atomically(path, write, overwrite=overwrite)


def _new_temp_file(path: Path) -> Path:
    """A new empty file beside ``path`` with the permissions of any new file (0666 minus umask)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"{path}: could not create a temporary file beside it")


def write_atomically(path, write, overwrite: bool = True) -> Path:
    """Run ``write(tmp_path)`` on a temp file beside ``path``, then rename it onto ``path``.

    Readers see the old file or the whole new one, never a partial file; on failure the temp file is
    removed and an existing ``path`` is untouched. The file gets the permissions of any new file
    (0666 minus the umask; ``mkstemp`` would make it 0600). ``overwrite=False``: refuse (with
    FileExistsError) when ``path`` exists once the new file is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_file(path)
    try:
        write(str(tmp))
        if not overwrite and path.exists():
            raise FileExistsError(f"{path}: exists (pass overwrite=True / --overwrite to replace it)")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so H and W are multiples of ``scale`` (MATLAB ``modcrop``)."""
    scale = int(scale)
    h, w = image.shape[0], image.shape[1]
    return image[: h - h % scale, : w - w % scale, ...]


# Pillow should never silently accept truncated files.
ImageFile.LOAD_TRUNCATED_IMAGES = False
