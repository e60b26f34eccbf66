"""The model store: where models are found by name, and how they are installed there.

The models directory (``$SRKERAS_MODEL_DIR``, default ``~/.srkeras/models``) holds ``NAME.keras``
files with their JSON sidecars ``NAME.json`` (:mod:`srkeras.inference.sidecar`), training run
folders (``NAME/model.keras``) and the metric assets ``NAME.npz``
(:mod:`srkeras.pretrained.metric_assets`). ``python -m pipelines.pretrained fetch NAME`` installs
the pretrained models of the catalogue (``realesrgan_x4plus``...) there.

:func:`find_model` turns what a user typed (``--model``) into a model path: an existing path wins;
otherwise ``NAME`` is looked up as ``NAME.keras`` (or ``NAME/model.keras``) in the models
directory, and if absent the error says how to get it. A zoo *name* (``srresnet``, ``rrdbnet``...)
names an architecture, not weights: random weights are never used silently.

:func:`install` writes the file and then its sidecar, each atomically
(:func:`srkeras.files.write_atomically`); a run killed between the two leaves a new file beside
the old sidecar, whose sha256 no longer matches: it is ignored as stale.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path

from srkeras.files import write_atomically
from srkeras.inference.sidecar import ModelSidecar


class ModelNotFoundError(FileNotFoundError):
    """No usable model at the given spec; the message says what was looked for."""


def models_dir() -> Path:
    return Path(os.environ.get("SRKERAS_MODEL_DIR") or Path.home() / ".srkeras" / "models").expanduser()


def list_models(directory=None) -> list[Path]:
    """``*.keras`` files and run folders (with ``model.keras``) directly inside ``directory``
    (default the models directory), by name; temporaries of unfinished writes are not models."""
    d = Path(directory) if directory else models_dir()
    if not d.is_dir():
        return []
    found = []
    for p in sorted(d.iterdir()):
        if p.name.startswith("."):
            continue
        if p.suffix == ".keras" and p.is_file():
            found.append(p)
        elif p.is_dir() and (p / "model.keras").is_file():
            found.append(p)
    return found


def find_model(spec) -> Path:
    """Path of the model file/folder that ``spec`` (a path or an installed name) refers to (module docstring)."""
    p = Path(str(spec)).expanduser()
    if p.is_dir():
        if (p / "model.keras").is_file():
            return p / "model.keras"
        if (p / "saved_model.pb").is_file():
            return p
        raise ModelNotFoundError(f"{p}: folder has neither model.keras (a training run) nor saved_model.pb")
    if p.is_file():
        if p.suffix != ".keras":
            raise ModelNotFoundError(f"{p}: not a .keras model file")
        return p
    if p.suffix == ".keras" or os.sep in str(spec):
        raise ModelNotFoundError(f"{p}: no such model file or run folder")
    found = installed(str(spec))
    if found is not None:
        return found
    d = models_dir()
    raise ModelNotFoundError(
        f"model {spec!r} is not installed (no {d / (str(spec) + '.keras')}). A pretrained model of the "
        f"catalogue (`python -m pipelines.pretrained list`) is installed with `python -m pipelines.pretrained "
        f"fetch {spec}`. A trained one (`python -m pipelines.train ...`) is used by passing its run folder "
        f"or .keras path, or by copying its model.keras there as {spec}.keras (or set SRKERAS_MODEL_DIR to "
        f"a folder holding {spec}.keras)."
    )


def installed(name: str) -> Path | None:
    """The model installed in the models directory as ``name`` (``NAME.keras`` or ``NAME/model.keras``), or None."""
    d = models_dir()
    return next((p for p in (d / f"{name}.keras", d / name / "model.keras") if p.is_file()), None)


@contextlib.contextmanager
def _install_lock(folder: Path):
    """Exclusive POSIX ``flock`` on the models folder itself, held while a file and its sidecar are
    written: two installs at once (two ``fetch`` runs of one model) finish one after the other, so a
    sidecar always describes the file beside it; no lock file is left behind. No lock where ``fcntl``
    does not exist (Windows)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def install(name: str, write, sidecar: ModelSidecar, suffix: str = ".keras") -> Path:
    """Install ``NAME{suffix}`` in the models directory: ``write(tmp_path)`` writes the file, then
    ``sidecar`` (named ``name``, with the file's sha256) is written beside it; both atomically, and
    under the folder's lock (:func:`_install_lock`)."""
    folder = models_dir()
    with _install_lock(folder):
        final = write_atomically(folder / f"{name}{suffix}", write)
        dataclasses.replace(sidecar, name=name).write(final)
    return final


__all__ = ["ModelNotFoundError", "find_model", "install", "installed", "list_models", "models_dir"]
