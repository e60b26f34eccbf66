"""Blind stimulus storage of a MOS study: content-addressed 8-bit PNGs without metadata, staged all or nothing.

A stimulus is written as a PNG named by the SHA-256 of its bytes (:func:`file_name`) with no
ancillary chunks (only IHDR, IDAT, IEND: :func:`png_chunks`), so nothing in a file or its name
reveals the method that made it. :func:`store` writes one atomically and leaves an identical file
alone; :class:`Staging` collects a run's new files in a temporary folder and moves them in at once,
so a failed run leaves no file behind. What goes into the files (methods, calibration, metrics) is
:mod:`srkeras.stimulus_set`'s business.

Errors: :class:`StudyInputError` is the family of everything that stops a study from being made
(:mod:`srkeras.stimulus_set` derives the others from it), so one ``except`` maps them all to a
message; storage raises :class:`OutputFailed`, naming the path and the reason.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from pathlib import Path

import numpy as np

from srkeras.files import temp_path, write_atomically, write_error


class StudyInputError(ValueError):
    """The study cannot be made from these inputs; the message says which one and why."""


class OutputFailed(StudyInputError):
    """A stimulus could not be written (disk full, folder not writable); the message names the path."""


def file_name(sha256: str) -> str:
    """The stimulus file name for the SHA-256 of its PNG bytes (``db.models.Stimulus.file_name``)."""
    return f"{sha256}.png"


def png_bytes(pixels: np.ndarray) -> bytes:
    """8-bit PNG of float [0, 1] pixels (H, W, 3) or (H, W, 1) with no ancillary chunks at all."""
    from PIL import Image

    from srkeras.data.io import quantize

    q = quantize(np.clip(pixels, 0.0, 1.0), 8)
    if q.shape[-1] == 1:
        q = q[..., 0]
    buf = io.BytesIO()
    # A fresh image has empty .info: Pillow then writes IHDR/IDAT/IEND only (no tEXt, iCCP, eXIf, tIME).
    Image.fromarray(q).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def png_chunks(data: bytes) -> list[str]:
    """Chunk types of a PNG byte string, in order (used to prove stimuli carry no metadata)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    out, i = [], 8
    while i < len(data):
        n = int.from_bytes(data[i : i + 4], "big")
        out.append(data[i + 4 : i + 8].decode("ascii"))
        i += 12 + n
    return out


def store(stimuli_dir, data: bytes, into=None) -> str:
    """Write ``data`` as ``<sha256>.png`` in ``into`` (default ``stimuli_dir``) unless ``stimuli_dir``
    has it already (same name, same bytes). Atomic; raises :class:`OutputFailed` naming the path."""
    sha = hashlib.sha256(data).hexdigest()
    path = Path(into if into is not None else stimuli_dir) / file_name(sha)
    if not (Path(stimuli_dir) / file_name(sha)).exists() and not path.exists():
        try:
            write_atomically(path, lambda tmp: Path(tmp).write_bytes(data))
        except OSError as e:
            raise OutputFailed(write_error(path, e)) from None
    return sha


class Staging:
    """A run's stimuli in a temporary folder inside ``stimuli_dir`` (:data:`~srkeras.files.TEMP_MARK`
    in its name): :meth:`commit` moves them in, :meth:`rollback` removes what :meth:`commit` added,
    :meth:`close` removes the temporary folder. Raises :class:`OutputFailed` if it cannot be made."""

    def __init__(self, stimuli_dir):
        self.stimuli_dir = Path(stimuli_dir)
        self.dir = temp_path(self.stimuli_dir / "staging")
        self.added: list[Path] = []
        try:
            self.dir.mkdir(parents=True)
        except OSError as e:
            raise OutputFailed(f"--stimuli-dir: {write_error(self.dir.parent, e)}") from None

    def commit(self) -> list[Path]:
        """Move the staged files in (a file already there is identical: left alone); the added paths."""
        for f in sorted(self.dir.iterdir()):
            dst = self.stimuli_dir / f.name
            try:
                os.link(f, dst)  # fails if dst exists: a concurrent run's file is never counted as ours
            except FileExistsError:
                continue
            except OSError:  # no hard links on this file system
                if dst.exists():
                    continue
                os.replace(f, dst)
            self.added.append(dst)
        return self.added

    def rollback(self) -> None:
        """Remove the files :meth:`commit` moved in, and the temporary folder."""
        for f in self.added:
            try:
                f.unlink()
            except FileNotFoundError:
                pass
        self.added = []
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


__all__ = ["OutputFailed", "Staging", "StudyInputError", "file_name", "png_bytes", "png_chunks", "store"]
