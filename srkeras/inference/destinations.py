"""Which image files to upscale, and where each result goes, decided before any work.

Inputs are files, folders (their images) and globs (:func:`expand_inputs`). An output keeps its
input's name and format (:data:`KEEP_SUFFIXES`; 16-bit non-PNG inputs and other formats are
written as PNG). Inputs that would be written to the same output file (``a.png`` from two folders,
``b.png`` and ``b.gif``) or onto themselves are refused by name, never written one over the other
(:func:`plan_outputs`). Non-UTF-8 file names are shown with ``\\xNN`` escapes.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from srkeras.data.io import IMAGE_EXTENSIONS, list_images
from srkeras.files import display_name

KEEP_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def expand_inputs(items):
    """-> (files, errors): files in order without duplicates; errors as (item, message)."""
    files, errors, seen = [], [], set()

    def add(p):
        p = Path(p)
        if p not in seen:
            seen.add(p)
            files.append(p)

    for item in items:
        p = Path(item)
        if p.is_dir():
            try:
                for f in list_images(p):
                    add(f)
            except OSError as e:
                errors.append((item, str(e) if isinstance(e, FileNotFoundError) else f"{display_name(item)}: {e.strerror}"))
        elif p.is_file():
            add(p)
        elif any(ch in item for ch in "*?["):
            matches = sorted(m for m in glob.glob(item, recursive=True) if Path(m).is_file())
            matches = [m for m in matches if Path(m).suffix.lower() in IMAGE_EXTENSIONS]
            if not matches:
                errors.append((item, f"{display_name(item)}: glob matches no image files"))
            for m in matches:
                add(m)
        else:
            errors.append((item, f"{display_name(item)}: no such file or folder"))
    return files, errors


def output_path(src: Path, out_dir: Path, bit_depth: int) -> Path:
    suffix = src.suffix.lower()
    if suffix not in KEEP_SUFFIXES or (bit_depth == 16 and suffix != ".png"):
        suffix = ".png"
    return out_dir / (src.stem + suffix)


def _bit_depth(src: Path) -> int:
    """16 for a 16-bit grey file that is not a PNG (written as PNG), from its header; else 8."""
    if src.suffix.lower() == ".png" or src.suffix.lower() not in KEEP_SUFFIXES:
        return 8  # written as PNG either way
    from PIL import Image

    try:
        with Image.open(src) as im:  # the header only
            return 16 if im.mode.startswith("I;16") or im.mode == "I" else 8
    except Exception:  # unreadable: it fails by name when it is read
        return 8


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def plan_outputs(files, out_dir: Path, overwrite: bool):
    """-> (jobs [(src, dst)], skipped [(src, why)], refused [(src, why)]), before any work.

    Inputs sharing a destination are all refused (none is written over another), as is an input
    that is its own destination; an existing destination is skipped without ``overwrite``.
    """
    dests = [output_path(Path(f), out_dir, _bit_depth(Path(f))) for f in files]
    by_dst: dict[Path, list] = {}
    for src, dst in zip(files, dests):
        by_dst.setdefault(dst, []).append(src)
    jobs, skipped, refused = [], [], []
    for src, dst in zip(files, dests):
        others = [display_name(o) for o in by_dst[dst] if o != src]
        if others:
            why = f"{display_name(src)}: would be written to {display_name(dst)} like {', '.join(others)}"
            refused.append((src, why + "; rename one or upscale them into separate --out folders"))
        elif _same_file(src, dst):
            refused.append((src, f"{display_name(src)}: is its own output {display_name(dst)}; choose another --out"))
        elif dst.is_dir():
            refused.append((src, f"{display_name(src)}: its output {display_name(dst)} is a folder"))
        elif dst.exists() and not overwrite:
            skipped.append((src, f"{display_name(dst)} exists (use --overwrite)"))
        else:
            jobs.append((src, dst))
    return jobs, skipped, refused


__all__ = ["KEEP_SUFFIXES", "expand_inputs", "output_path", "plan_outputs"]
